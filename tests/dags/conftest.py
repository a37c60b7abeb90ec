"""DAG tests parse the real dags/ folder with Airflow configured for a throwaway home."""

from __future__ import annotations

import os
import sys
import tempfile

# Before Airflow is imported: no examples, a private home, and the plugins folder importable
# (Airflow puts it on sys.path itself when it runs).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airloop-dagtest-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airloop.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "plugins"))

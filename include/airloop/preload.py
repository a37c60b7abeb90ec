"""Import, once, the libraries Airloop's tasks use, so that processes forked afterwards start warm.

Airflow runs each task in a process forked from its executor's worker. A fresh task process
imports pandas, scikit-learn, MLflow, Great Expectations and Evidently again: 5 to 20 seconds on
a small machine, paid by every task of every run. Importing this module in the process tasks are
forked from makes those imports free: the child shares the parent's modules copy-on-write.

Airflow's settings make the process that forks the task processes import it (with Airflow's
API app, which loading the plugins folder imports): `airloop.stack.embedded.TASK_PRELOAD` and
`WARM_TASKS`, which the embedded stack, docker-compose and the Helm values set.

Nothing here starts a thread, opens a file or reads settings: it imports and nothing else.
"""

from __future__ import annotations

import importlib

from airloop.quiet_logs import quiet_library_noise

#: What the tasks import, heaviest first; each task then finds it in `sys.modules`.
MODULES = (
    "evidently",
    "evidently.presets",
    "evidently.ui.workspace",
    "great_expectations",
    "sklearn.ensemble",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.isotonic",
    "sklearn.metrics",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.tracking",
    "skops.io",
    "scipy.stats",
    "pandas",
    "pyarrow.parquet",
    "airloop.pipeline",
    "airloop.validation.checks",
    "airloop.training.train",
    "airloop.registry.promotion",
    "airloop.deploy.service",
    "airloop.monitoring.monitor",
)

quiet_library_noise()  # the imports below are where the libraries' import-time floods come from
for _name in MODULES:
    importlib.import_module(_name)

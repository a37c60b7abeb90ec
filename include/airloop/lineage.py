"""Lineage: who produced an artifact and from what, recorded as MLflow tags."""

from __future__ import annotations

import os
import subprocess
from functools import cache

from pydantic import BaseModel

from airloop.settings import PROJECT_ROOT

TAG_PREFIX = "airloop."


@cache
def git_commit() -> str:
    """The code's commit: AIRLOOP_GIT_COMMIT, else `git rev-parse HEAD`, else "unknown"."""
    if commit := os.environ.get("AIRLOOP_GIT_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


class Lineage(BaseModel):
    """The orchestrator run a stage belongs to (empty when called by hand)."""

    dag_id: str | None = None
    run_id: str | None = None
    reason: str | None = None

    def tags(self) -> dict[str, str]:
        tags = {
            "git_commit": git_commit(),
            "airflow_dag_id": self.dag_id,
            "airflow_run_id": self.run_id,
            "trigger_reason": self.reason,
        }
        return {TAG_PREFIX + k: v for k, v in tags.items() if v}

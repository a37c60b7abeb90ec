"""What every Airloop DAG shares: its start date, default task arguments and tags."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum

from airloop.stack.airflow_api import AIRLOOP_TAG, SERVING_POOL

__all__ = ["SERVING_POOL", "START_DATE", "dag_tags", "task_defaults"]  # SERVING_POOL: see airloop.stack.airflow_api

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


def task_defaults(execution_timeout: dt.timedelta) -> dict[str, Any]:
    """One retry after 30 s (a flaky service), and a timeout so nothing hangs forever."""
    return {"retries": 1, "retry_delay": dt.timedelta(seconds=30), "execution_timeout": execution_timeout}


def dag_tags(stage: str) -> list[str]:
    """`airloop`, `pipeline:<name>` (the pipeline config file's name, `AIRLOOP_CONFIG`) and `stage:<stage>`.

    Filter the Airflow UI's DAG list by any of them: every DAG of one pipeline, or one stage of all.
    """
    from airloop.settings import load_settings

    return [AIRLOOP_TAG, f"pipeline:{load_settings().config.stem}", f"stage:{stage}"]

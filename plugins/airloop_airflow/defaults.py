"""What every Airloop DAG shares: its start date and default task arguments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum

from airloop.stack.airflow_api import SERVING_POOL

__all__ = ["SERVING_POOL", "START_DATE", "task_defaults"]  # SERVING_POOL: see airloop.stack.airflow_api

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


def task_defaults(execution_timeout: dt.timedelta) -> dict[str, Any]:
    """One retry after 30 s (a flaky service), and a timeout so nothing hangs forever."""
    return {"retries": 1, "retry_delay": dt.timedelta(seconds=30), "execution_timeout": execution_timeout}

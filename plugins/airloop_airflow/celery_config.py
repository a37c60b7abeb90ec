"""Airflow's Celery configuration, plus one import: workers fork their task processes warm.

Named by ``[celery] celery_config_options = airloop_airflow.celery_config.CELERY_CONFIG`` (the
embedded stack, docker-compose and the Helm values set it). Celery imports its ``imports`` in the
worker's main process before it forks its pool, so every task process starts with
the libraries of `airloop.stack.embedded.TASK_PRELOAD`
already imported.

`CELERY_CONFIG` is built when it is first read: Airflow imports every module of the plugins
folder in every process, and Airflow's Celery defaults log warnings when they are built.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name != "CELERY_CONFIG":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from airloop.stack.embedded import TASK_PRELOAD

    return {**DEFAULT_CELERY_CONFIG, "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), *TASK_PRELOAD)}

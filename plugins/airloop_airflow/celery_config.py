"""Airflow's Celery configuration, plus one import: workers fork their task processes warm.

Named by ``[celery] celery_config_options = airloop_airflow.celery_config.CELERY_CONFIG`` (the
embedded stack and docker-compose set it). Celery imports its ``imports`` in the worker's main
process before it forks its pool, so every task process starts with :mod:`airloop.preload`'s
libraries already imported.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG: dict[str, Any] = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), "airloop.preload"),
}

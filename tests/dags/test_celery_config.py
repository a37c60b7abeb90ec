"""The Celery configuration the stack names: Airflow's defaults, plus the preload its workers import."""

from __future__ import annotations

import sys

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from airloop.stack.embedded import TASK_PRELOAD, WARM_TASKS


def _named_config():
    module, _, name = WARM_TASKS["CeleryExecutor"]["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"].rpartition(".")
    __import__(module)
    return getattr(sys.modules[module], name)


def test_celery_workers_import_the_preload_and_keep_airflows_settings():
    config = _named_config()
    assert set(TASK_PRELOAD) <= set(config["imports"])
    assert {k: v for k, v in config.items() if k != "imports"} == {
        k: v for k, v in DEFAULT_CELERY_CONFIG.items() if k != "imports"
    }

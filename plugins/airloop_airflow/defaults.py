"""What every Airloop DAG file shares: the pipelines it builds DAGs for, start date, default task arguments, tags."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import pendulum

from airloop.stack.airflow_api import AIRLOOP_TAG, SERVING_POOL

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline

__all__ = [  # SERVING_POOL: see airloop.stack.airflow_api
    "SERVING_POOL",
    "START_DATE",
    "BrokenPipelineFiles",
    "check_pipeline_files",
    "dag_tags",
    "pipelines",
    "task_defaults",
]

log = logging.getLogger(__name__)

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


def task_defaults(execution_timeout: dt.timedelta) -> dict[str, Any]:
    """One retry after 30 s (a flaky service), and a timeout so nothing hangs forever."""
    return {"retries": 1, "retry_delay": dt.timedelta(seconds=30), "execution_timeout": execution_timeout}


def dag_tags(pipeline: Pipeline, stage: str) -> list[str]:
    """`airloop`, `pipeline:<name>` (the pipeline file's name) and `stage:<stage>`.

    Filter the Airflow UI's DAG list by any of them: every DAG of one pipeline, or one stage of all.
    """
    return [AIRLOOP_TAG, f"pipeline:{pipeline.name}", f"stage:{stage}"]


def pipelines() -> list[Pipeline]:
    """The pipelines each DAG file builds its stage's DAG for: every valid file of AIRLOOP_PIPELINES.

    A broken file is skipped here, with a log line; `airloop_pipelines_check.py` reports it as its
    import error, so the UI names the file and the field while the other pipelines' DAGs stay.
    """
    from airloop.settings import load_settings

    found = load_settings().load_pipelines()
    for broken in found.broken:
        log.warning("pipeline file %s is broken, its DAGs are not built: %s", broken.path, broken.error)
    return list(found)


class BrokenPipelineFiles(ValueError):
    """Pipeline files that are not pipelines: `airloop_pipelines_check.py`'s import error."""


def check_pipeline_files() -> None:
    """Raise :class:`BrokenPipelineFiles` naming each broken file of AIRLOOP_PIPELINES and why."""
    from airloop.settings import load_settings

    found = load_settings().load_pipelines()
    if found.broken:
        lines = "\n".join(f"  {b.path}: {b.error}" for b in found.broken)
        raise BrokenPipelineFiles(
            f"{len(found.broken)} pipeline file(s) in {found.folder} are broken; their DAGs are not built "
            f"(the other pipelines' are):\n{lines}"
        )

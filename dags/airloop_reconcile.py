"""
### airloop_&lt;pipeline&gt;_reconcile

One per pipeline of the pipelines folder (`airloop_flights_reconcile`, ...).

Every 10 minutes: does the serving endpoint serve the version `champion` names? If it serves
another version, or nothing (a container died, or someone moved `champion` in the MLflow UI to roll
back), the champion is deployed through the same servability gate as a promotion. A champion
that fails the gate is tagged `airloop.servable=false` with the reason, the run fails and alerts,
and what serves keeps serving; a champion already tagged so is reported in the log, not retried.
Runs in the `airloop_serving` pool with every other task that changes what serves.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, task

from airloop_airflow import stages
from airloop_airflow.defaults import SERVING_POOL, START_DATE, dag_tags, pipelines, task_defaults
from airloop_airflow.notifiers import AirloopNotifier

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline


def reconcile_dag(pipeline: Pipeline) -> None:
    @dag(
        dag_id=pipeline.dag_id("reconcile"),
        description=f"{pipeline.name}: serve the version `champion` names",
        schedule="*/10 * * * *",
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dt.timedelta(minutes=30),
        default_args=task_defaults(execution_timeout=dt.timedelta(minutes=20)),
        on_failure_callback=AirloopNotifier(),
        tags=dag_tags(pipeline, "reconcile"),
        doc_md=__doc__,
    )
    def airloop_reconcile() -> None:
        @task(pool=SERVING_POOL, retries=0)  # the next run, minutes later, is the retry
        def reconcile() -> dict[str, Any]:
            return stages.reconcile()

        reconcile()

    airloop_reconcile()


for each in pipelines():
    reconcile_dag(each)

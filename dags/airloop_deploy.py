"""
### airloop_&lt;pipeline&gt;_deploy

One per pipeline of the pipelines folder (`airloop_flights_deploy`, ...).

Deploy, or roll back to, a chosen model version on demand, through the same gate as training:
the version starts in the target's candidate slot and must pass health, the contract test and
the latency budget (`promotion.servability`) before traffic switches to it and (with
`make_champion`, the default) `champion` moves to it, in one step. If it fails, alias and
traffic stay on the version serving now, the version is tagged `airloop.servable=false` with
the reason, and this task fails with that reason.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, task

from airloop_airflow import stages
from airloop_airflow.defaults import SERVING_POOL, START_DATE, dag_tags, pipelines, task_defaults
from airloop_airflow.notifiers import AirloopNotifier
from airloop_airflow.params import DEPLOY_PARAMS

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline


def deploy_dag(pipeline: Pipeline) -> None:
    @dag(
        dag_id=pipeline.dag_id("deploy"),
        description=f"{pipeline.name}: deploy or roll back a chosen version of {pipeline.config.model_name}",
        schedule=None,  # on demand only: from the UI form or the REST API
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dt.timedelta(minutes=30),
        params=DEPLOY_PARAMS,
        default_args=task_defaults(execution_timeout=dt.timedelta(minutes=20)),
        on_failure_callback=AirloopNotifier(),
        tags=dag_tags(pipeline, "deploy"),
        doc_md=__doc__,
    )
    def airloop_deploy() -> None:
        @task(pool=SERVING_POOL)  # never interleaved with a promotion or a reconcile
        def deploy() -> dict[str, Any]:
            return stages.deploy_chosen()

        deploy()

    airloop_deploy()


for each in pipelines():
    deploy_dag(each)

"""
### airloop_&lt;pipeline&gt;_readmit

One per pipeline of the pipelines folder (`airloop_flights_readmit`, ...).

On demand, from the trigger form: re-admit a quarantined batch once its source was fixed. The
window is read from the source again and validated with the same expectation suite. If it passes,
the training run the batch blocked is cleared from `ingest` on and goes on to train; if it fails
again, it stays quarantined with its new report and this run fails with each failed expectation.
Who asked (the Airflow user who triggered the run) and why are kept with every attempt
(`airloop quarantine show <batch>`; the Airloop page). An unchanged source is refused. The same
as `airloop quarantine readmit <batch> --why ...` on the command line.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, task

from airloop_airflow import stages
from airloop_airflow.defaults import START_DATE, dag_tags, pipelines, task_defaults
from airloop_airflow.notifiers import AirloopNotifier
from airloop_airflow.params import READMIT_PARAMS

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline


def readmit_dag(pipeline: Pipeline) -> None:
    @dag(
        dag_id=pipeline.dag_id("readmit"),
        description=f"{pipeline.name}: re-admit a quarantined {pipeline.config.dataset.name} batch",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # one re-admission at a time: two of the same batch would race
        dagrun_timeout=dt.timedelta(hours=1),
        params=READMIT_PARAMS,
        default_args=task_defaults(execution_timeout=dt.timedelta(minutes=30)),
        on_failure_callback=AirloopNotifier(),
        tags=dag_tags(pipeline, "readmit"),
        doc_md=__doc__,
    )
    def airloop_readmit() -> None:
        @task(retries=0)  # the same data fails the same way: a person fixes the source and asks again
        def readmit() -> dict[str, Any]:
            return stages.readmit()

        readmit()

    airloop_readmit()


for each in pipelines():
    readmit_dag(each)

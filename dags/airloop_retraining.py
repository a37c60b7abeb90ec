"""
### airloop_&lt;pipeline&gt;_retraining

One per pipeline of the pipelines folder (`airloop_flights_retraining`, ...).

Always one run waiting: **wait_for_degradation** defers to the triggerer (no worker slot) until
monitoring raises a degradation signal. **apply_storm_guards** decides: a stale signal, a
duplicate of the same reason, a signal inside the cooldown, or one while training already runs is
skipped with its reason; after too many retrained challengers in a row lost to the champion, the
circuit breaker opens and an alert goes out instead. Otherwise **trigger_training** starts
the pipeline's training DAG with the reason, window and report in its conf (and its note), waits for it in
the triggerer, and **record_outcome** notes whether the challenger won.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, task
from airflow.task.trigger_rule import TriggerRule

from airloop_airflow import monitoring
from airloop_airflow.defaults import START_DATE, dag_tags, pipelines, task_defaults
from airloop_airflow.notifiers import AirloopNotifier
from airloop_airflow.sensors import DegradationSensor
from airloop_airflow.trigger_training import TriggerTrainingOperator

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline

Json = dict[str, Any]


def retraining_dag(pipeline: Pipeline) -> None:
    @dag(
        dag_id=pipeline.dag_id("retraining"),
        description=f"{pipeline.name}: wait for a degradation signal, retrain under the storm guards",
        schedule="@continuous",
        start_date=START_DATE,
        catchup=False,
        dagrun_timeout=dt.timedelta(hours=12),  # the sensor soft-fails after 6 h; training may take 2 h
        max_active_runs=1,  # with @continuous: one run waits at a time, so one retraining at a time
        render_template_as_native_obj=True,
        default_args=task_defaults(execution_timeout=dt.timedelta(hours=3)),
        on_failure_callback=AirloopNotifier(),
        tags=dag_tags(pipeline, "retraining"),
        doc_md=__doc__,
    )
    def airloop_retraining() -> None:
        signal = DegradationSensor(task_id="wait_for_degradation", soft_fail=True, retries=0)

        @task(multiple_outputs=True, retries=0)
        def apply_storm_guards(signal: Json) -> Json:
            return monitoring.apply_storm_guards(signal)

        guarded = apply_storm_guards(signal.output)
        trigger_training = TriggerTrainingOperator(
            task_id="trigger_training",
            trigger_dag_id=pipeline.dag_id("training"),
            trigger_run_id=guarded["run_id"],
            conf=guarded["conf"],
            note=guarded["note"],
            logical_date=None,
            wait_for_completion=True,
            deferrable=True,
            poke_interval=10,
            retries=0,
        )

        @task(trigger_rule=TriggerRule.NONE_SKIPPED, retries=0)
        def record_outcome(training_run_id: str, training_conf: Json) -> Json:
            return monitoring.record_outcome({"run_id": training_run_id, "conf": training_conf})

        outcome = record_outcome(guarded["run_id"], guarded["conf"])
        trigger_training >> outcome

    airloop_retraining()


for each in pipelines():
    retraining_dag(each)

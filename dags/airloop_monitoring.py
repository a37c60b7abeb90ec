"""
### airloop_&lt;pipeline&gt;_monitoring

One per pipeline of the pipelines folder (`airloop_flights_monitoring`, ...).

Daily, and on demand for a chosen window (Params `window_start`/`window_end`): **monitor** the
predictions the deployed model served in the window against the data it was trained on — data
drift per feature and for the dataset, prediction drift, data quality, and the label task's metrics
once labels have landed (ROC AUC, precision and recall of a binary label; F1 and accuracy of a
multiclass one; RMSE, MAE and R² of a regression) — into the window's record and an MLflow
monitoring run. **report** adds Evidently's reports of it (HTML/JSON, on that run) and snapshots
in the Evidently workspace, beside the signals: the loop's decisions never wait for them.
**backfill_late_labels** recomputes past windows that labels have reached since.
**raise_signals** raises a retraining signal (and an alert) when the pipeline's `retraining`
policy calls for one: a concept shift (a segment's outcomes leaving the model's predictions, day
after day) or the champion's age, counted in days of data landed since its training window
(nothing landed: no retraining by age); drift is reported, not acted on by default.
The pipeline's retraining DAG takes it from there. **judge_shadow** judges a challenger that lost on
held-out rows again on the live requests labelled since (`promotion.shadow`): one that beats the
champion on those same rows is served and made champion through the servability gate.
**check_serving** reads the endpoint's `/metrics`:
its p50/p99 latency and 5xx rate since the last window (`monitoring/serving/<model>/<window>.json`),
alerted against `monitoring.serving_health`, never a reason to retrain.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, task

from airloop_airflow import monitoring
from airloop_airflow.assets import degradation
from airloop_airflow.defaults import SERVING_POOL, START_DATE, dag_tags, pipelines, task_defaults
from airloop_airflow.notifiers import AirloopNotifier
from airloop_airflow.params import MONITORING_PARAMS

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline

Json = dict[str, Any]


def monitoring_dag(pipeline: Pipeline) -> None:
    @dag(
        dag_id=pipeline.dag_id("monitoring"),
        description=f"{pipeline.name}: drift, quality and performance of what {pipeline.config.model_name} served",
        schedule=pipeline.config.monitoring.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dt.timedelta(hours=2),
        params=MONITORING_PARAMS,
        default_args=task_defaults(execution_timeout=dt.timedelta(minutes=45)),
        on_failure_callback=AirloopNotifier(),
        tags=dag_tags(pipeline, "monitoring"),
        doc_md=__doc__,
    )
    def airloop_monitoring() -> None:
        @task
        def monitor() -> Json:
            return monitoring.monitor_window()

        @task
        def report(current: Json) -> dict[str, str]:
            return monitoring.report_window(current)

        @task
        def backfill_late_labels(current: Json) -> list[Json]:
            return monitoring.backfill_late_labels(current)

        @task(outlets=[degradation(pipeline.name)])
        def raise_signals(current: Json, backfilled: list[Json]) -> list[str]:
            return monitoring.raise_signals(current, backfilled)

        @task(pool=SERVING_POOL)  # a win deploys: never interleaved with a promotion or a reconcile
        def judge_shadow() -> Json | None:
            return monitoring.judge_shadow()

        @task(trigger_rule="all_done")  # the endpoint is checked even when the window could not be monitored
        def check_serving() -> Json | None:
            return monitoring.check_serving()

        current = monitor()
        report(current)  # Evidently's reports, for people: nothing downstream waits for them
        backfilled = backfill_late_labels(current)
        raise_signals(current, backfilled)
        backfilled >> judge_shadow()  # once the late labels are in
        current >> check_serving()

    airloop_monitoring()


for each in pipelines():
    monitoring_dag(each)

"""
### airloop_&lt;pipeline&gt;_training

One per pipeline of the pipelines folder (`airloop_flights_training`, ...). On demand: started by
the pipeline's retraining DAG when the pipeline's `retraining` policy says so (the
champion's age, or a degradation signal, each with its reason in the run's note), or by a person
with the form's Params; no calendar schedule beside that policy. **ingest** a window of data into
an immutable snapshot, **validate** it with the Great Expectations suite (a bad batch is quarantined and
nothing downstream runs), **train** the config's scikit-learn estimator (`training.model`), logged
to MLflow, **register** it as the `challenger`, **evaluate** it against the `champion` on the
same held-out rows (a decision only: nothing moves), **approve** when the pipeline wants a person
to (`promotion.approval: required`, or the Param `require_approval`: the question waits in Required Actions, answered
there or through the REST API; Reject or a timeout leaves the champion serving), then
**deploy_and_promote**: a winner starts in the target's candidate slot and must pass health, the
contract test and the latency budget (`promotion.servability`); only then does traffic switch to
it and `champion` move to it, in one step. A winner that is not
servable is tagged `airloop.servable=false` with the reason, fails the run, and alias and
traffic stay on the old version. A loser changes nothing (the champion keeps, or starts, serving).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, task

from airloop_airflow import stages
from airloop_airflow.defaults import SERVING_POOL, START_DATE, dag_tags, pipelines, task_defaults
from airloop_airflow.notifiers import AirloopNotifier
from airloop_airflow.operators import ApprovePromotionOperator
from airloop_airflow.params import training_params
from airloop_airflow.pod import train_pod_options

TRAIN_POD = train_pod_options()

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline

Json = dict[str, Any]


def training_dag(pipeline: Pipeline) -> None:
    @dag(
        dag_id=pipeline.dag_id("training"),
        description=f"{pipeline.name}: train, register, evaluate and promote {pipeline.config.model_name}",
        schedule=None,  # one source of training: the `retraining` policy, through the retraining DAG
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=dt.timedelta(hours=2),
        params=training_params(pipeline.config),
        default_args=task_defaults(execution_timeout=dt.timedelta(hours=1)),
        on_failure_callback=AirloopNotifier(),
        tags=dag_tags(pipeline, "training"),
        doc_md=__doc__,
    )
    def airloop_training() -> None:
        _training_tasks()

    airloop_training()


def _training_tasks() -> None:
    @task
    def ingest() -> Json:
        return stages.ingest()

    @task
    def validate(snapshot: Json) -> Json:
        return stages.validate(snapshot)

    if TRAIN_POD is None:

        @task
        def train(validated: Json) -> Json:
            return stages.train(validated)

    else:  # AIRLOOP_TRAIN_IN_POD: the same stage in its own pod (KubernetesPodOperator)

        @task.kubernetes(**TRAIN_POD)
        def train_in_pod(validated: Json, params_json: str, dag_id: str, run_id: str) -> Json:
            from airloop.pipeline import train_from_json

            return train_from_json(validated, params_json, dag_id=dag_id, run_id=run_id)

        def train(validated: Json) -> Any:
            return train_in_pod.override(task_id="train")(
                validated, "{{ params | tojson }}", "{{ dag.dag_id }}", "{{ run_id }}"
            )

    @task
    def register(trained: Json) -> Json:
        return stages.register(trained)

    @task
    def evaluate(candidate: Json) -> Json:
        return stages.evaluate(candidate)

    @task(pool=SERVING_POOL)  # never interleaved with a deploy or a reconcile
    def deploy_and_promote(evaluation: Json) -> Json:
        return stages.deploy_and_promote(evaluation)

    snapshot = ingest()
    validated = validate(snapshot)
    trained = train(validated)
    candidate = register(trained)
    evaluation = evaluate(candidate)
    # Asks a person only when the challenger wins and promotion.approval (or the Param) wants it.
    approve = ApprovePromotionOperator(task_id="approve", retries=0)
    evaluation >> approve >> deploy_and_promote(evaluation)


for each in pipelines():
    training_dag(each)

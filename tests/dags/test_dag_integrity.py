"""Every DAG file imports fast, stays light, and declares what operators need to run it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from airloop.settings import PROJECT_ROOT
from tests.conftest import FLIGHTS_CONFIG

DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))
HEAVY = ["mlflow", "sklearn", "great_expectations", "evidently", "pandas", "numpy"]
# Each DAG's schedule is a decision: training and deployments on demand (training's one source is
# the `retraining` policy, through airloop_flights_retraining), monitoring daily, and one retraining run
# always waiting for a signal.
EXPECTED_SCHEDULES = {
    "airloop_flights_training": None,
    "airloop_flights_deploy": None,
    "airloop_flights_monitoring": "0 3 * * *",
    "airloop_flights_retraining": "@continuous",
    "airloop_flights_reconcile": "*/10 * * * *",
    "airloop_flights_readmit": None,
}
# Tasks that must not retry: each acts once per signal (a retry would be judged a duplicate of
# itself, or trigger the same training run twice); the sensor soft-fails into the next run.
NO_RETRY = {
    ("airloop_flights_retraining", "wait_for_degradation"),
    ("airloop_flights_retraining", "apply_storm_guards"),
    ("airloop_flights_retraining", "trigger_training"),
    ("airloop_flights_retraining", "record_outcome"),
    ("airloop_flights_reconcile", "reconcile"),  # the next run, minutes later, is its retry
    ("airloop_flights_training", "approve"),  # a retry would ask the reviewer again
    ("airloop_flights_readmit", "readmit"),  # the same data fails the same way: a person fixes it and asks again
}
EXPECTED_DAGS = set(EXPECTED_SCHEDULES)

# Runs in a fresh interpreter. Airflow itself is imported first, as it already is in the
# dag-processor: the budget is for what the DAG file adds.
PROBE = """
import json, runpy, sys, time
sys.path.insert(0, {plugins!r})
import airflow.sdk
started = time.perf_counter()
runpy.run_path({path!r}, run_name="dag_file")
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_dag_files_exist():
    assert DAG_FILES


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_heavy_libraries(path, tmp_path):
    code = PROBE.format(plugins=str(PROJECT_ROOT / "plugins"), path=str(path), heavy=HEAVY)
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"{path.name} imports {report['heavy']} at parse time"
    # How long parsing takes is measured by `make bench` (pipeline.max_parse_s), not asserted here.


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_the_public_dag_ids_exist(dagbag):
    assert set(dagbag.dag_ids) >= EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_has_tags_retries_timeouts_and_its_schedule(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    # Find a pipeline's DAGs, or one stage of all, in the UI: `airloop`, `pipeline:<file name>`, `stage:<stage>`.
    assert set(dag.tags) == {"airloop", "pipeline:flights", f"stage:{dag_id.removeprefix('airloop_flights_')}"}
    expected = EXPECTED_SCHEDULES[dag_id]
    if expected is None:
        assert type(dag.timetable).__name__ == "NullTimetable"
    elif expected == "@continuous":
        assert type(dag.timetable).__name__ == "ContinuousTimetable"
    else:
        assert dag.timetable.expression == expected
    assert dag.dagrun_timeout is not None
    assert not dag.catchup
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        if (dag_id, task.task_id) in NO_RETRY:
            assert task.retries == 0, f"{task.task_id} must act once"
        else:
            assert task.retries >= 1, f"{task.task_id} has no retries"
        # A human-in-the-loop wait is bounded by its response timeout (promotion.approval_timeout_hours).
        timeout = task.execution_timeout or getattr(task, "response_timeout", None)
        assert timeout is not None, f"{task.task_id} has no execution_timeout"


def test_every_airloop_dag_alerts_when_it_fails(dagbag):
    from airloop_airflow.notifiers import AirloopNotifier

    airloop_dags = {dag_id: dag for dag_id, dag in dagbag.dags.items() if "airloop" in dag.tags}
    assert set(airloop_dags) >= EXPECTED_DAGS
    silent = [
        dag_id
        for dag_id, dag in airloop_dags.items()
        if not any(isinstance(cb, AirloopNotifier) for cb in _callbacks(dag.on_failure_callback))
    ]
    assert silent == [], f"no AirloopNotifier in on_failure_callback of {silent}"


def _callbacks(callback) -> list:
    if callback is None:
        return []
    return list(callback) if isinstance(callback, list | tuple) else [callback]


def test_training_dag_reads_as_the_pipeline(dagbag):
    dag = dagbag.dags["airloop_flights_training"]
    chain = ["ingest", "validate", "train", "register", "evaluate", "approve", "deploy_and_promote"]
    assert [t.task_id for t in dag.topological_sort()] == chain
    for upstream, downstream in itertools.pairwise(chain[:-1]):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    # The evaluation is deploy_and_promote's input; approval (when asked) must come first.
    assert dag.get_task("deploy_and_promote").upstream_task_ids == {"evaluate", "approve"}


def test_every_task_that_changes_what_serves_shares_one_pool_slot(dagbag):
    from airloop.stack.airflow_api import SERVING_POOL

    changers = {
        (f"airloop_{name}_{stage}", task)
        for name in ("flights", "arrival_delay")  # the shipped pipelines
        for stage, task in (
            ("training", "deploy_and_promote"),
            ("deploy", "deploy"),
            ("reconcile", "reconcile"),
            ("monitoring", "judge_shadow"),  # a shadow win deploys
        )
    }
    pooled = {(d.dag_id, t.task_id) for d in dagbag.dags.values() for t in d.tasks if t.pool == SERVING_POOL}
    assert pooled == changers


def test_training_params_render_as_a_typed_form(dagbag):
    params = dagbag.dags["airloop_flights_training"].params
    assert params["force_promote"] is False
    schema = {name: params.get_param(name).schema for name in params}
    assert schema["force_promote"]["type"] == "boolean"
    assert schema["window_days"]["type"] == "integer"
    assert schema["window_days"]["minimum"] == 1
    assert schema["learning_rate"]["type"] == "number"
    assert all("title" in s for s in schema.values())


def test_the_training_form_offers_the_configured_estimators_tunable_parameters(tmp_path):
    import yaml

    from airloop.config import load_config
    from airloop_airflow.params import training_params

    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    raw["training"]["model"] = {"estimator": "sklearn.linear_model.LogisticRegression", "C": 0.5, "tunable": ["C"]}
    raw["training"]["window_days"] = 14
    path = tmp_path / "logistic.yaml"
    path.write_text(yaml.safe_dump(raw))
    form = training_params(load_config(path))
    assert list(form)[:3] == ["window_days", "window_end", "C"]
    assert form["window_days"].value == 14  # the pipeline's own window is the form's default
    assert "learning_rate" not in form
    assert (form["C"].value, form["C"].schema["type"]) == (0.5, "number")
    assert "LogisticRegression `C`" in form["C"].description

    raw["training"]["model"] = {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "reason": "x",
        "tunable": ["reason"],
    }
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="'reason' is already a field of the training run's form"):
        load_config(path)  # the pipeline file is broken, not the DAG file


def test_deploy_params_offer_a_version_and_a_target(dagbag):
    params = dagbag.dags["airloop_flights_deploy"].params
    assert params["version"] == "champion"
    assert params.get_param("target").schema["enum"] == ["auto", "docker", "kubernetes", "local"]
    assert params["make_champion"] is True


def test_training_can_run_in_a_kubernetes_pod(tmp_path):
    # Parsed in a fresh interpreter with the option on: `train` becomes a KubernetesPodOperator.
    code = (
        "import sys; sys.path.insert(0, {plugins!r});"
        "from airflow.dag_processing.dagbag import DagBag;"
        "bag = DagBag(dag_folder={dags!r});"
        "assert not bag.import_errors, bag.import_errors;"
        "op = bag.dags['airloop_flights_training'].get_task('train');"
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator as K;"
        "print([e.secret_ref.name for e in op.env_from], 'PASSWORD' in str(op.env_vars));"
        "print(isinstance(op, K), op.image, op.namespace)"
    ).format(plugins=str(PROJECT_ROOT / "plugins"), dags=str(PROJECT_ROOT / "dags"))
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PATH": "/usr/bin:/bin",
        "AIRLOOP_TRAIN_IN_POD": "true",
        "AIRLOOP_TRAIN_POD_IMAGE": "registry.example.com/airloop/airflow:1",
        "AIRLOOP_TRAIN_POD_SECRET_NAME": "airloop-mlflow-client",
        "MLFLOW_TRACKING_PASSWORD": "must-not-reach-the-dag",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "['airloop-mlflow-client'] False"  # credentials from a Secret, not the DAG
    assert lines[-1].split() == ["True", "registry.example.com/airloop/airflow:1", "airloop"]


def test_retraining_waits_in_the_triggerer_and_hands_the_reason_to_training(dagbag):
    dag = dagbag.dags["airloop_flights_retraining"]
    sensor = dag.get_task("wait_for_degradation")
    assert type(sensor).__name__ == "DegradationSensor"
    assert sensor.soft_fail
    trigger = dag.get_task("trigger_training")
    assert trigger.trigger_dag_id == "airloop_flights_training"
    assert trigger.wait_for_completion
    assert trigger.deferrable
    assert [t.task_id for t in dag.topological_sort()] == [
        "wait_for_degradation",
        "apply_storm_guards",
        "trigger_training",
        "record_outcome",
    ]


def test_monitoring_params_choose_a_window(dagbag):
    params = dagbag.dags["airloop_flights_monitoring"].params
    assert params["window_start"] is None
    assert params.get_param("window_end").schema["format"] == "date-time"

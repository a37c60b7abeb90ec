"""Three tasks side by side on one real stack: each file of the pipelines folder trains through
its own DAG, triggered over the REST API, and serves on its own port; a broken fourth file is an
import error naming it, and stops none.

Beside flights (binary), the shipped regression example `arrival_delay.yaml` (minutes late) and
a multiclass label written here (which airport a flight leaves from) read the same landing zone
under their own dataset names: a new pipeline of any task is a YAML file, no code (issue 12).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
import yaml

from airloop.data.replay import fill_landing_zone
from airloop.settings import AirloopSettings
from airloop.stack.airflow_api import AirflowClient
from airloop.stack.embedded import EmbeddedStack
from tests.conftest import FLIGHTS_CONFIG, PIPELINES, origin_pipeline

from .conftest import free_ports, landing_day, stack_env

pytestmark = pytest.mark.integration

PASSWORD = "side-by-side-admin-password"
WINDOW_END = dt.date(2026, 3, 8)


@pytest.fixture(scope="module")
def side_settings(tmp_path_factory: pytest.TempPathFactory) -> AirloopSettings:
    airflow, mlflow, worker_log, trigger_log, flights_port, minutes_port, origin_port, evidently = free_ports(8)
    root = tmp_path_factory.mktemp("side-by-side")
    folder = root / "pipelines"
    folder.mkdir()
    (folder / "flights.yaml").write_text(FLIGHTS_CONFIG.read_text())
    # The shipped regression example, as it ships but for its port.
    minutes = yaml.safe_load((PIPELINES / "arrival_delay.yaml").read_text())
    minutes["serving"]["port"] = minutes_port
    (folder / "arrival_delay.yaml").write_text(yaml.safe_dump(minutes))
    # A multiclass label on the same landing zone, read under its own name.
    (folder / "origin.yaml").write_text(yaml.safe_dump(origin_pipeline(origin_port)))
    (folder / "typo.yaml").write_text(FLIGHTS_CONFIG.read_text().replace("window_days:", "window_dayz:", 1))
    return AirloopSettings(
        home=root / ".airloop",
        pipelines=folder,
        airflow_port=airflow,
        mlflow_port=mlflow,
        mlflow_tracking_uri=f"http://127.0.0.1:{mlflow}",
        evidently_port=evidently,
        worker_log_port=worker_log,
        trigger_log_port=trigger_log,
        serving_port=flights_port,
        deploy_target="local",
        admin_password=PASSWORD,
    )


@pytest.fixture(scope="module")
def side_airflow(side_settings: AirloopSettings) -> Iterator[AirflowClient]:
    stack = EmbeddedStack(side_settings)
    fill_landing_zone(side_settings.state.landing / "flights", WINDOW_END - dt.timedelta(days=7), WINDOW_END)
    try:
        stack.up(timeout=420)
        with AirflowClient(side_settings.airflow_url, side_settings.admin_user, PASSWORD) as client:
            yield client
    finally:
        print(f"stopped {stack.down()}; logs in {side_settings.home / 'logs'}")


def test_three_tasks_train_and_serve_side_by_side_through_the_rest_api(side_settings, side_airflow):
    client = side_airflow
    found = side_settings.load_pipelines()
    ports = {name: found.get(name).serving_port for name in ("flights", "arrival_delay", "origin")}
    runs = {}
    for name in ports:
        dag_id = f"airloop_{name}_training"
        client.wait_for_dag(dag_id)
        client.unpause(dag_id)
        run = client.trigger(
            dag_id,
            logical_date=f"{WINDOW_END.isoformat()}T00:00:00+00:00",
            conf={"window_days": 7, "reason": f"side by side: {name}"},
        )
        runs[name] = (dag_id, run["dag_run_id"])
    for name, (dag_id, run_id) in runs.items():  # both were queued before either was followed
        final = client.follow(dag_id, run_id, timeout=900)
        states = {ti["task_id"]: ti["state"] for ti in client.task_instances(dag_id, run_id)}
        assert final["state"] == "success", (name, states)

    # Each serves its own model on its own port, and answers as its task does.
    rows = pd.read_parquet(landing_day(side_settings, WINDOW_END - dt.timedelta(days=1))).head(5)
    answers = {}
    for name, port in ports.items():
        decision = client.xcom(*runs[name], "deploy_and_promote")["decision"]
        assert decision["decision"] == "promoted"
        assert decision["metric"] == {"flights": "roc_auc", "arrival_delay": "rmse", "origin": "roc_auc_ovr"}[name]
        version = httpx.get(f"http://127.0.0.1:{port}/version", timeout=10).json()
        assert (version["name"], str(version["version"])) == (decision["model_name"], str(decision["version"]))
        features = found.get(name).config.dataset.features
        body = {"dataframe_records": json.loads(rows[features].to_json(orient="records"))}
        for method in ("predict", "predict_proba"):
            answers[name, method] = httpx.post(
                f"http://127.0.0.1:{port}/invocations", json={**body, "params": {"predict_method": method}}, timeout=30
            )
    assert set(answers["flights", "predict"].json()["predictions"]) <= {0, 1}
    assert all(len(p) == 2 for p in answers["flights", "predict_proba"].json()["predictions"])
    minutes = answers["arrival_delay", "predict"].json()["predictions"]
    assert len(minutes) == 5
    assert all(isinstance(m, float) for m in minutes)  # minutes late
    assert answers["arrival_delay", "predict_proba"].status_code == 422
    assert "regression model has no probabilities" in answers["arrival_delay", "predict_proba"].text
    assert set(answers["origin", "predict"].json()["predictions"]) <= {"EWR", "JFK", "LGA"}
    assert all(len(p) == 3 for p in answers["origin", "predict_proba"].json()["predictions"])

    # The Airflow UI's filters: each pipeline's DAGs by its tag; the broken file is an import error naming it.
    tagged = {d["dag_id"] for d in client.dags(tag="pipeline:arrival_delay")}
    assert tagged == {
        f"airloop_arrival_delay_{s}" for s in ("training", "deploy", "monitoring", "retraining", "reconcile", "readmit")
    }
    errors = client.request("GET", "/api/v2/importErrors")["import_errors"]
    assert [e["filename"].rsplit("/", 1)[-1] for e in errors] == ["airloop_pipelines_check.py"]
    assert "typo.yaml: training.window_dayz: Extra inputs are not permitted" in errors[0]["stack_trace"]

    # `airloop status --json` lists both, with their DAG ids, champions and serving URLs.
    done = subprocess.run(
        [sys.executable, "-m", "airloop.cli", "status", "--json"],
        env={**stack_env(side_settings), "AIRLOOP_ADMIN_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = {p["pipeline"]: p for p in json.loads(done.stdout)["pipelines"]}
    assert set(listed) == {"flights", "arrival_delay", "origin"}
    for name, port in ports.items():
        assert listed[name]["dags"]["training"] == f"airloop_{name}_training"
        assert listed[name]["champion"] is not None
        assert listed[name]["serving_url"] == f"http://127.0.0.1:{port}"
        assert listed[name]["answering"] == f"{listed[name]['model_name']} v{listed[name]['champion']}"
    assert [b["file"].rsplit("/", 1)[-1] for b in json.loads(done.stdout)["broken_pipelines"]] == ["typo.yaml"]

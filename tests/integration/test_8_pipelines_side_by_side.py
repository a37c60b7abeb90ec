"""Two pipelines side by side on one real stack: each file of the pipelines folder trains through
its own DAG, triggered over the REST API, and serves on its own port; a broken third file is an
import error naming it, and stops neither.

The second pipeline is the flights data read under another dataset name, with another label rule
(30 minutes late, not 15) and another estimator: a new pipeline is a YAML file, no code.
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
from tests.conftest import FLIGHTS_CONFIG

from .conftest import free_ports, landing_day, stack_env

pytestmark = pytest.mark.integration

PASSWORD = "side-by-side-admin-password"
WINDOW_END = dt.date(2026, 3, 8)


@pytest.fixture(scope="module")
def side_settings(tmp_path_factory: pytest.TempPathFactory) -> AirloopSettings:
    airflow, mlflow, worker_log, trigger_log, flights_port, delays_port, evidently = free_ports(7)
    root = tmp_path_factory.mktemp("side-by-side")
    folder = root / "pipelines"
    folder.mkdir()
    (folder / "flights.yaml").write_text(FLIGHTS_CONFIG.read_text())
    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    raw["model_name"] = raw["experiment"] = "airloop-long-delays"
    raw["dataset"]["name"] = "long_delays"  # the same landing zone, read under its own name
    raw["dataset"]["label"]["threshold"] = 30
    raw["training"]["model"] = {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "C": 0.5,
        "max_iter": 500,
        "tunable": ["C"],
    }
    raw["monitoring"]["concept_shift"]["segments"] = ["carrier", "origin"]
    raw["monitoring"]["drift"]["key_features"] = ["carrier"]
    raw["serving"]["port"] = delays_port
    (folder / "long_delays.yaml").write_text(yaml.safe_dump(raw))
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


def test_two_pipelines_train_and_serve_side_by_side_through_the_rest_api(side_settings, side_airflow):
    client = side_airflow
    ports = {
        "flights": side_settings.serving_port,
        "long_delays": side_settings.load_pipelines().get("long_delays").serving_port,
    }
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

    # Each serves its own model on its own port, and answers with its own label rule's model.
    rows = pd.read_parquet(landing_day(side_settings, WINDOW_END - dt.timedelta(days=1))).head(5)
    features = side_settings.load_pipelines().get("flights").config.dataset.features
    body = {"dataframe_records": json.loads(rows[features].to_json(orient="records"))}
    for name, port in ports.items():
        decision = client.xcom(*runs[name], "deploy_and_promote")["decision"]
        assert decision["decision"] == "promoted"
        version = httpx.get(f"http://127.0.0.1:{port}/version", timeout=10).json()
        assert (version["name"], str(version["version"])) == (decision["model_name"], str(decision["version"]))
        answer = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            json={**body, "params": {"predict_method": "predict_proba"}},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 5
    assert version["name"] == "airloop-long-delays"

    # The Airflow UI's filters: each pipeline's DAGs by its tag; the broken file is an import error naming it.
    tagged = {d["dag_id"] for d in client.dags(tag="pipeline:long_delays")}
    assert tagged == {
        f"airloop_long_delays_{s}" for s in ("training", "deploy", "monitoring", "retraining", "reconcile", "readmit")
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
    found = {p["pipeline"]: p for p in json.loads(done.stdout)["pipelines"]}
    assert set(found) == {"flights", "long_delays"}
    for name, port in ports.items():
        assert found[name]["dags"]["training"] == f"airloop_{name}_training"
        assert found[name]["champion"] is not None
        assert found[name]["serving_url"] == f"http://127.0.0.1:{port}"
        assert found[name]["answering"] == f"{found[name]['model_name']} v{found[name]['champion']}"
    assert [b["file"].rsplit("/", 1)[-1] for b in json.loads(done.stdout)["broken_pipelines"]] == ["typo.yaml"]

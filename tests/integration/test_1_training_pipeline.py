"""airloop_flights_training on the real services, driven through Airflow's REST API as a user would.

This module runs first (hence its name): the deployment tests use the versions it registers.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from airloop.data.replay import fill_landing_zone
from airloop.monitoring.alerts import Alert, read_alerts

from .conftest import landing_day, stack_env

pytestmark = pytest.mark.integration

DAG = "airloop_flights_training"
#: The DAGs the later modules drive themselves, from a paused start (see test_6_closed_loop).
LOOP_DAGS = ("airloop_flights_monitoring", "airloop_flights_retraining", "airloop_flights_reconcile")
RECONCILE = "airloop_flights_reconcile"
READMIT = "airloop_flights_readmit"
GOOD_WINDOW = (dt.date(2026, 3, 1), dt.date(2026, 3, 8))
BAD_WINDOW = (dt.date(2026, 3, 15), dt.date(2026, 3, 22))
CORRUPT_DAY = dt.date(2026, 3, 18)
#: The week after GOOD_WINDOW: a normal run, judged against GOOD_WINDOW's champion.
NEXT_WINDOW = (dt.date(2026, 3, 8), dt.date(2026, 3, 15))
#: A window no other run uses: a dry run of it must leave no trace.
DRY_WINDOW = (dt.date(2026, 11, 1), dt.date(2026, 11, 8))
#: The most lines a task's log may have (issue 13): short enough to read top to bottom.
MAX_LOG_LINES = 60
AIRLOOP = (sys.executable, "-m", "airloop.cli")


def _run(airflow, end: dt.date, **conf):
    run = airflow.trigger(
        DAG,
        logical_date=f"{end.isoformat()}T00:00:00+00:00",
        conf={"window_days": 7, "reason": "integration test", **conf},
    )
    final = airflow.follow(DAG, run["dag_run_id"], timeout=900)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG, run["dag_run_id"])}
    return run["dag_run_id"], final["state"], states


def test_unauthenticated_api_requests_are_refused(stack_settings, stack):
    response = httpx.get(f"{stack_settings.airflow_url}/api/v2/dags", timeout=10)
    assert response.status_code == 401
    wrong = httpx.post(f"{stack_settings.airflow_url}/auth/token", json={"username": "admin", "password": "nope"})
    assert wrong.status_code == 401


def test_training_run_registers_a_champion_with_lineage(stack_settings, airflow, mlflow_client):
    fill_landing_zone(stack_settings.state.landing / "flights", GOOD_WINDOW[0], GOOD_WINDOW[1])
    run_id, state, tasks = _run(airflow, GOOD_WINDOW[1])
    assert state == "success", tasks
    assert set(tasks.values()) == {"success"}

    evaluation = airflow.xcom(DAG, run_id, "evaluate")
    assert (evaluation["promote"], evaluation["reason"]) == (True, "no champion yet")
    outcome = airflow.xcom(DAG, run_id, "deploy_and_promote")
    decision, deployment = outcome["decision"], outcome["deployment"]
    name, version = decision["model_name"], decision["version"]
    assert decision["decision"] == "promoted"
    model_version = mlflow_client.get_model_version(name, version)
    assert model_version.tags["airloop.airflow_run_id"] == run_id
    assert model_version.tags["airloop.airflow_dag_id"] == DAG
    assert model_version.tags["airloop.trigger_reason"] == "integration test"
    assert model_version.tags["airloop.promotion.decision"] == "promoted"
    assert str(mlflow_client.get_model_version_by_alias(name, "champion").version) == version
    assert str(mlflow_client.get_model_version_by_alias(name, "challenger").version) == version

    assert (deployment["target"], deployment["version"]) == ("local", version)
    served = httpx.get(f"{deployment['endpoint']}/version", timeout=10).json()
    assert (served["name"], served["version"]) == (name, version)
    assert mlflow_client.get_model_version(name, version).tags["airloop.deploy.target"] == "local"

    snapshot = airflow.xcom(DAG, run_id, "ingest")
    assert snapshot["snapshot_id"] == "2026-03-01_2026-03-08"
    assert model_version.tags["airloop.snapshot_hash"] == snapshot["content_hash"]
    train_run = mlflow_client.get_run(model_version.run_id)
    assert (train_run.data.params["window_start"], train_run.data.params["window_end"]) == ("2026-03-01", "2026-03-08")
    validation_run = train_run.data.tags["airloop.validation_run_id"]
    artifacts = {a.path for a in mlflow_client.list_artifacts(validation_run, "validation")}
    assert artifacts == {"validation/validation.json", "validation/validation.html"}
    assert (stack_settings.state.lake / "validation" / "flights" / snapshot["snapshot_id"] / "validation.json").exists()


def test_corrupted_partition_fails_validation_and_leaves_the_champion(stack_settings, airflow, mlflow_client):
    fill_landing_zone(stack_settings.state.landing / "flights", BAD_WINDOW[0], BAD_WINDOW[1])
    path = landing_day(stack_settings, CORRUPT_DAY)
    day = pd.read_parquet(path)
    good = day.copy()
    day.loc[day.index[:25], "carrier"] = None  # nulls
    day.loc[day.index[:9], "distance"] = -40  # out of range
    day.drop(columns=["tailnum"]).to_parquet(path, index=False)  # a missing column

    name = "airloop-flights-delay"
    champion = str(mlflow_client.get_model_version_by_alias(name, "champion").version)
    versions = len(mlflow_client.search_model_versions(f"name = '{name}'"))

    run_id, state, tasks = _run(airflow, BAD_WINDOW[1])
    assert state == "failed"
    assert tasks == {
        "ingest": "success",
        "validate": "failed",
        "train": "upstream_failed",
        "register": "upstream_failed",
        "evaluate": "upstream_failed",
        "approve": "upstream_failed",
        "deploy_and_promote": "upstream_failed",
    }
    log = airflow.task_log(DAG, run_id, "validate")
    assert len(log.splitlines()) <= MAX_LOG_LINES, log
    for fragment in (
        "expect_column_values_to_not_be_null(carrier): 25 of",
        "expect_column_values_to_be_between(distance): 9 of",
        "expect_table_columns_to_match_set: observed {'missing': ['tailnum']}",
        "quarantined",
    ):
        assert fragment in log

    quarantine = stack_settings.state.lake / "quarantine" / "flights" / "2026-03-15_2026-03-22"
    assert {"data.parquet", "manifest.json", "validation.json", "validation.html"} <= {
        p.name for p in quarantine.iterdir()
    }
    assert not (stack_settings.state.lake / "snapshots" / "flights" / "2026-03-15_2026-03-22").exists()
    assert len(mlflow_client.search_model_versions(f"name = '{name}'")) == versions
    assert str(mlflow_client.get_model_version_by_alias(name, "champion").version) == champion

    # The DAG's failure alert (sent by the dag-processor) says which batch and why.
    alert = _wait_for_alert(stack_settings.home, "flights batch 2026-03-15_2026-03-22 quarantined", run_id)
    assert "expect_column_values_to_not_be_null(carrier): 25 of" in alert.detail
    assert "expect_column_values_to_be_between(distance): 9 of" in alert.detail
    assert alert.context == {"dag_id": DAG, "run_id": run_id, "task_id": "validate"}

    # Unchanged at the source: `airloop quarantine readmit` refuses it, and the run stays failed.
    refused = _airloop(stack_settings, "quarantine", "readmit", "2026-03-15_2026-03-22", "--why", "retry", "--by", "ci")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "fix it at the source first" in refused.stdout
    assert airflow.dag_run(DAG, run_id)["state"] == "failed"

    # The source is fixed; re-admitted from the UI's trigger form (airloop_flights_readmit), the window is
    # validated again and the run it blocked goes on.
    good.to_parquet(path, index=False)
    airflow.unpause(READMIT)
    conf = {"snapshot_id": "2026-03-15_2026-03-22", "why": "re-sent 3/18"}
    readmit = airflow.trigger(READMIT, logical_date=None, conf=conf)
    assert airflow.follow(READMIT, readmit["dag_run_id"], timeout=600)["state"] == "success"
    log = airflow.task_log(READMIT, readmit["dag_run_id"], "readmit")
    assert "2026-03-15_2026-03-22 re-admitted by admin: re-sent 3/18" in log, log
    assert f"resumed {DAG} run {run_id}: cleared " in log, log
    final = airflow.follow(DAG, run_id, timeout=900)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG, run_id)}
    assert final["state"] == "success", states
    assert not quarantine.exists()
    assert (stack_settings.state.lake / "snapshots" / "flights" / "2026-03-15_2026-03-22").is_dir()
    assert len(mlflow_client.search_model_versions(f"name = '{name}'")) == versions + 1


def _airloop(stack_settings, *args: str) -> subprocess.CompletedProcess:
    env = stack_env(stack_settings)
    return subprocess.run([*AIRLOOP, *args], env=env, capture_output=True, text=True, check=False, timeout=600)


def _wait_for_alert(home, title: str, run_id: str, timeout: float = 120) -> Alert:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in read_alerts(home):
            if alert.title == title and alert.context.get("run_id") == run_id:
                return alert
        time.sleep(2)
    raise AssertionError(f"no alert {title!r} for {run_id} within {timeout:.0f}s: {read_alerts(home)}")


def test_a_dry_run_says_what_it_would_do_and_changes_nothing(stack_settings, airflow, mlflow_client):
    name = "airloop-flights-delay"
    fill_landing_zone(stack_settings.state.landing / "flights", DRY_WINDOW[0], DRY_WINDOW[1])
    days = [DRY_WINDOW[0] + dt.timedelta(days=n) for n in range(7)]
    rows = sum(len(pd.read_parquet(landing_day(stack_settings, day))) for day in days)
    before = (_snapshots(stack_settings), _versions(mlflow_client, name))

    run_id, state, tasks = _run(airflow, DRY_WINDOW[1], dry_run=True)

    assert state == "success", tasks
    assert set(tasks.values()) == {"skipped"}, tasks  # ingest said the plan; nothing after it ran
    log = airflow.task_log(DAG, run_id, "ingest")
    assert len(log.splitlines()) <= MAX_LOG_LINES, log
    for line in (
        f"plan for {name} (a dry run: nothing is written, trained, registered or deployed)",
        f"window     {DRY_WINDOW[0]} to {DRY_WINDOW[1]} (end exclusive), 7 days from ",
        f"rows       {rows}",
        "target     local",
        "gate 1     validate: ",
        "guards     circuit breaker: closed",
        "dry run: the plan is above; every later task is skipped",
    ):
        assert line in log, log
    assert (_snapshots(stack_settings), _versions(mlflow_client, name)) == before


def _snapshots(settings) -> list[str]:
    folder = settings.state.lake / "snapshots" / "flights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _versions(mlflow_client, name: str) -> list[str]:
    return sorted(str(v.version) for v in mlflow_client.search_model_versions(f"name = '{name}'"))


def test_every_task_log_of_a_run_is_short_and_says_what_happened(stack_settings, airflow, mlflow_client):
    from airloop.registry.promotion import champion_version

    name = "airloop-flights-delay"
    fill_landing_zone(stack_settings.state.landing / "flights", GOOD_WINDOW[0], NEXT_WINDOW[1])
    if champion_version(name, tracking_uri=stack_settings.tracking_uri) is None:
        _, state, tasks = _run(airflow, GOOD_WINDOW[1])  # run alone: first a champion to compare with
        assert state == "success", tasks
    run_id, state, tasks = _run(airflow, NEXT_WINDOW[1])
    assert state == "success", tasks

    logs = {
        ti["task_id"]: airflow.task_log(DAG, run_id, ti["task_id"], ti["try_number"])
        for ti in airflow.task_instances(DAG, run_id)
    }
    lines = {task: len(log.splitlines()) for task, log in logs.items()}
    assert max(lines.values()) <= MAX_LOG_LINES, lines
    everything = "\n".join(logs.values())
    for flood in ("is deprecated", "Skipping registering function", "Downloading artifacts:"):
        assert flood not in everything, flood
    # A run that succeeded logs no error: MLflow's INFO, which it writes to stderr, is logged as INFO
    errors = [
        (ti["task_id"], event.get("logger"), event.get("event"))
        for ti in airflow.task_instances(DAG, run_id)
        for event in airflow.task_log_events(DAG, run_id, ti["task_id"], ti["try_number"])
        if isinstance(event, dict) and event.get("level") in ("error", "critical")
    ]
    assert errors == [], errors
    # Each task process was forked from the scheduler's forkserver, which had imported
    # airloop.preload: no task imported pandas, scikit-learn, MLflow or GX itself (`approve`
    # too: Airloop's operator asks `stages.approval_request` whether to ask at all).
    for task, log in logs.items():
        assert "started warm" in log, (task, log[-2000:])

    # What a person needs: rows read, metrics, the decision with both scores, where the model serves.
    rows = airflow.xcom(DAG, run_id, "ingest")["rows"]
    assert f"read {rows} rows for {NEXT_WINDOW[0]} to {NEXT_WINDOW[1]}" in logs["ingest"]
    assert re.search(r"all \d+ expectations met", logs["validate"]), logs["validate"]
    assert "fitting on " in logs["train"]
    assert "held-out metrics: roc_auc=" in logs["train"]
    version = airflow.xcom(DAG, run_id, "register")["version"]
    tags = mlflow_client.get_model_version(name, version).tags
    metric, champion = tags["airloop.promotion.metric"], tags["airloop.promotion.champion_version"]
    decision = re.search(rf"version {version} .*: {metric} (\S+) vs champion v{champion} (\S+)", everything)
    assert decision, everything
    logged = [float(score) for score in decision.groups()]
    tagged = [float(tags[f"airloop.promotion.{k}_score"]) for k in ("challenger", "champion")]
    assert logged == pytest.approx(tagged, abs=1e-4)
    assert f"serves at http://127.0.0.1:{stack_settings.serving_port}" in everything


def test_demo_command_reuses_the_running_stack_and_prints_the_champion(stack_settings, airflow):
    done = subprocess.run(
        [sys.executable, "-m", "airloop.cli", "demo", "--timeout", "900"],
        env=stack_env(stack_settings),
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "mlflow is already running" in done.stderr
        assert ": success in" in done.stdout
        assert "champion: airloop-flights-delay version" in done.stdout
        assert f"curl -s -X POST http://127.0.0.1:{stack_settings.serving_port}/invocations" in done.stdout
        assert '-> HTTP 200 {"predictions":[' in done.stdout
        assert stack_settings.airflow_url in done.stdout
        assert stack_settings.tracking_uri in done.stdout
        # The loop is live: every Airloop DAG unpaused, and the demo says when each runs.
        dags = airflow.dags(tag="airloop")
        assert {d["dag_id"] for d in dags} >= {DAG, "airloop_flights_deploy", *LOOP_DAGS}
        assert [d["dag_id"] for d in dags if d["is_paused"]] == []
        assert "Airloop DAGs (all unpaused: the loop is live):" in done.stdout
        (monitoring,) = [
            line for line in done.stdout.splitlines() if line.strip().startswith("airloop_flights_monitoring ")
        ]
        assert "next run 20" in monitoring, monitoring  # a date: the run unpausing made due has started
    finally:
        _pause_the_loop_again(airflow)


def _pause_the_loop_again(airflow) -> None:
    """Back to the paused loop the later modules start from; stop the runs unpausing started."""
    for dag_id in LOOP_DAGS:
        airflow.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})
        for run in airflow.dag_runs(dag_id):
            if run["state"] in {"queued", "running"}:
                path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}"
                airflow.request("PATCH", path, json={"state": "failed"})


def test_champion_moved_by_hand_is_served_after_the_next_reconcile(stack_settings, airflow, mlflow_client):
    """A rollback (or roll-forward) done in the MLflow UI: move the alias, and reconcile serves it."""
    from airloop.deploy.checks import serving_model

    model = "airloop-flights-delay"
    endpoint = f"http://127.0.0.1:{stack_settings.serving_port}"
    before = mlflow_client.get_model_version_by_alias(model, "champion").version
    assert serving_model(endpoint) == (model, str(before))
    other = next(v.version for v in mlflow_client.search_model_versions(f"name = '{model}'") if v.version != before)
    airflow.unpause(RECONCILE)
    try:
        for champion in (other, before):  # there and back: later modules start from `before` serving
            mlflow_client.set_registered_model_alias(model, "champion", champion)
            run = airflow.trigger(RECONCILE, logical_date=None)
            final = airflow.follow(RECONCILE, run["dag_run_id"], timeout=600)
            log = airflow.task_log(RECONCILE, run["dag_run_id"], "reconcile")
            assert final["state"] == "success", log
            found = airflow.xcom(RECONCILE, run["dag_run_id"], "reconcile")
            # Unpausing starts the latest interval's scheduled run too: whichever ran first repaired it.
            assert found["outcome"] in ("repaired", "in_sync"), found["message"]
            assert found["champion"] == str(champion)
            assert serving_model(endpoint) == (model, str(champion))
            assert f"champion version {champion} serves at {endpoint}" in log
    finally:
        _pause_the_loop_again(airflow)

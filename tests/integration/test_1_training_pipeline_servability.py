"""The servability gate of airloop_flights_training on the real services: a winner that cannot serve within
its latency budget never takes traffic or the `champion` alias.

Runs right after test_1_training_pipeline (its name sorts there), which leaves a champion
serving on the local target.
"""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest
import yaml

from airloop.data.replay import fill_landing_zone
from airloop.monitoring.alerts import Alert, read_alerts
from tests.conftest import flights_file

pytestmark = pytest.mark.integration

DAG = "airloop_flights_training"
MODEL = "airloop-flights-delay"
WINDOW = (dt.date(2026, 4, 1), dt.date(2026, 4, 8))


@pytest.fixture
def no_latency_budget(stack_settings):
    """The stack's config with a p95 budget of 0 ms, which no serving instance meets; restored after."""
    original = flights_file(stack_settings).read_text()
    raw = yaml.safe_load(original)
    raw["promotion"]["servability"] = {"requests": 20, "p95_latency_ms": 0}
    flights_file(stack_settings).write_text(yaml.safe_dump(raw))
    yield
    flights_file(stack_settings).write_text(original)


def test_a_winner_that_fails_its_checks_leaves_alias_and_traffic_on_the_champion(
    stack_settings, airflow, mlflow_client, no_latency_budget
):
    endpoint = f"http://127.0.0.1:{stack_settings.serving_port}"
    champion = str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version)
    assert httpx.get(f"{endpoint}/version", timeout=10).json()["version"] == champion
    fill_landing_zone(stack_settings.state.landing / "flights", *WINDOW)

    run = airflow.trigger(
        DAG,
        logical_date=f"{WINDOW[1].isoformat()}T00:00:00+00:00",
        conf={"window_days": 7, "force_promote": True, "reason": "integration test: no latency budget"},
    )
    run_id = run["dag_run_id"]
    final = airflow.follow(DAG, run_id, timeout=900)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG, run_id)}
    assert final["state"] == "failed"
    assert states["evaluate"] == "success"
    assert states["deploy_and_promote"] == "failed"

    challenger = airflow.xcom(DAG, run_id, "evaluate")
    assert challenger["promote"]
    assert challenger["version"] != champion
    assert str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version) == champion
    assert httpx.get(f"{endpoint}/version", timeout=10).json()["version"] == champion
    tags = mlflow_client.get_model_version(MODEL, challenger["version"]).tags
    assert tags["airloop.servable"] == "false"
    assert (
        f"version {challenger['version']} is not servable on local: latency: p95" in tags["airloop.not_servable_reason"]
    )
    assert tags["airloop.promotion.decision"] == "not_servable"
    log = airflow.task_log(DAG, run_id, "deploy_and_promote")
    assert f"version {champion} keeps serving" in log
    assert f"champion stays version {champion}" in log

    alert = _wait_for_alert(stack_settings.home, f"{MODEL} version {challenger['version']} is not servable", run_id)
    assert "promotion.servability.p95_latency_ms" in alert.detail
    assert alert.context["task_id"] == "deploy_and_promote"


def _wait_for_alert(home, title: str, run_id: str, timeout: float = 120) -> Alert:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in read_alerts(home):
            if alert.title == title and alert.context.get("run_id") == run_id:
                return alert
        time.sleep(2)
    raise AssertionError(f"no alert {title!r} for {run_id} within {timeout:.0f}s: {read_alerts(home)}")

"""The real embedded stack — Airflow api-server, scheduler, dag-processor, triggerer and an
MLflow server — on free ports in a temporary state folder, started once per session."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from airloop.data.replay import fill_landing_zone
from airloop.settings import AirloopSettings
from airloop.stack.airflow_api import AirflowClient
from airloop.stack.embedded import EmbeddedStack

from ..conftest import FLIGHTS_CONFIG

PASSWORD = "integration-test-password"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _write_loop_config(path: Path) -> None:
    """The default config, with guards, a concept-shift wait and a shadow the closed-loop tests reach in minutes."""
    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    raw["monitoring"] = {
        **raw.get("monitoring", {}),
        "guards": {"cooldown_minutes": 0, "dedupe_hours": 24, "circuit_breaker_after": 2},
        "concept_shift": {**raw["monitoring"]["concept_shift"], "retrain_after_days": 2},
    }
    # A challenger shadowing the champion is judged on its first labelled day of live requests.
    raw["promotion"] = {**raw["promotion"], "shadow": {**raw["promotion"]["shadow"], "days": 1}}
    path.write_text(yaml.safe_dump(raw))


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> AirloopSettings:
    airflow, mlflow, worker_log, trigger_log, serving, evidently = free_ports(6)
    home = tmp_path_factory.mktemp("stack") / ".airloop"
    pipelines = home.parent / "pipelines"  # the flights pipeline, with the loop tests' guards
    pipelines.mkdir()
    _write_loop_config(pipelines / "flights.yaml")
    # Training deploys locally here; the Docker tests choose their target per run.
    return AirloopSettings(
        signal_poll_seconds=2,
        serving_port=serving,
        deploy_target="local",
        home=home,
        pipelines=pipelines,
        airflow_port=airflow,
        mlflow_port=mlflow,
        mlflow_tracking_uri=f"http://127.0.0.1:{mlflow}",  # never an MLFLOW_TRACKING_URI left in the env
        evidently_port=evidently,
        worker_log_port=worker_log,
        trigger_log_port=trigger_log,
        admin_password=PASSWORD,
    )


@pytest.fixture(scope="session")
def stack(stack_settings: AirloopSettings) -> Iterator[EmbeddedStack]:
    # The loop's tests replay 2013: serving logs each request at the flight's own time.
    os.environ["AIRLOOP_SERVING_REPLAY_CLOCK"] = "true"
    embedded = EmbeddedStack(stack_settings)
    # Unpausing a nightly DAG starts a run for the latest night: give it data too.
    today = dt.datetime.now(dt.UTC).date()
    fill_landing_zone(stack_settings.state.landing / "flights", today - dt.timedelta(days=31), today)
    try:
        embedded.up(timeout=300)
        yield embedded
    finally:
        stopped = embedded.down()
        print(f"stopped {stopped}; logs in {stack_settings.home / 'logs'}")


@pytest.fixture(scope="session")
def airflow(stack: EmbeddedStack, stack_settings: AirloopSettings) -> Iterator[AirflowClient]:
    with AirflowClient(stack_settings.airflow_url, stack_settings.admin_user, PASSWORD) as client:
        for dag_id in ("airloop_flights_training", "airloop_flights_deploy"):
            client.wait_for_dag(dag_id)
            client.unpause(dag_id)
        yield client


@pytest.fixture(scope="session")
def mlflow_client(stack: EmbeddedStack, stack_settings: AirloopSettings):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=stack_settings.tracking_uri)


def stack_env(settings: AirloopSettings) -> dict[str, str]:
    """Environment that points the `airloop` command at this stack."""
    return {
        **os.environ,
        "AIRLOOP_HOME": str(settings.home),
        "AIRLOOP_PIPELINES": str(settings.pipelines),
        "AIRLOOP_AIRFLOW_PORT": str(settings.airflow_port),
        "AIRLOOP_MLFLOW_PORT": str(settings.mlflow_port),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "AIRLOOP_EVIDENTLY_PORT": str(settings.evidently_port),
        "AIRLOOP_ADMIN_PASSWORD": PASSWORD,
        "AIRLOOP_WORKER_LOG_PORT": str(settings.worker_log_port),
        "AIRLOOP_TRIGGER_LOG_PORT": str(settings.trigger_log_port),
        "AIRLOOP_SERVING_PORT": str(settings.serving_port),
        "AIRLOOP_DEPLOY_TARGET": settings.deploy_target,
    }


def landing_day(settings: AirloopSettings, day: dt.date) -> Path:
    return settings.state.landing / "flights" / f"date={day:%Y-%m-%d}" / "flights.parquet"


def stack_logs(home: Path) -> list[Path]:
    """Every service and task log a stack wrote under its state folder."""
    return [p for folder in (home / "logs", home / "airflow" / "logs") for p in folder.rglob("*") if p.is_file()]


def secrets_in_logs(logs: list[Path], secrets: dict[str, str]) -> list[str]:
    """`<secret name> in <log>` for every secret value found in a log; empty when none leaked."""
    return [
        f"{name} in {path}"
        for path in logs
        for name, value in secrets.items()
        if value in path.read_text(errors="replace")
    ]

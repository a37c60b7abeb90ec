"""The scale-out shape for real: Postgres and Redis from Debian's packages, Airflow with the
CeleryExecutor and a Celery worker, MLflow on Postgres behind its basic-auth login.

The same EmbeddedStack code as the other integration tests, configured rather than copied. In CI
(`CI=true`) missing packages fail these tests; elsewhere they skip with the install command.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airloop.data.replay import fill_landing_zone
from airloop.settings import AirloopSettings
from airloop.stack.airflow_api import AirflowClient
from airloop.stack.embedded import EmbeddedStack
from airloop.stack.native import BackendUrls, NativeBackends
from tests.conftest import unavailable

from .conftest import free_ports, secrets_in_logs, stack_logs

pytestmark = pytest.mark.integration

DAG = "airloop_flights_training"
AIRFLOW_PASSWORD = "celery-airflow-admin-secret"
MLFLOW_PASSWORD = "celery-mlflow-admin-secret"
WINDOW_END = dt.date(2026, 3, 8)


def _require_packages() -> None:
    missing = [
        name for name, binary in (("postgresql", "pg_ctl"), ("redis-server", "redis-server")) if not _has(binary)
    ]
    if not missing:
        return
    message = f"the Celery stack test needs Debian packages: apt-get install {' '.join(missing)}"
    unavailable(message)


def _has(binary: str) -> bool:
    return shutil.which(binary) is not None or any(Path("/usr/lib/postgresql").glob(f"*/bin/{binary}"))


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[NativeBackends, BackendUrls]]:
    _require_packages()
    # Not under pytest's 0700 temp folder: Postgres runs as the `postgres` user and must reach it.
    root = Path(tempfile.mkdtemp(prefix="airloop-native-"))
    root.chmod(0o711)
    postgres_port, redis_port = free_ports(2)
    native = NativeBackends(root, postgres_port=postgres_port, redis_port=redis_port)
    try:
        yield native, native.up()
    finally:
        print(f"stopped {native.down()}")
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def celery_settings(backends, tmp_path_factory: pytest.TempPathFactory) -> AirloopSettings:
    _, urls = backends
    airflow, mlflow, worker_log, trigger_log, serving, evidently = free_ports(6)
    return AirloopSettings(
        home=tmp_path_factory.mktemp("celery-stack") / ".airloop",
        airflow_port=airflow,
        mlflow_port=mlflow,
        # Named outright: an earlier test's mlflow.set_tracking_uri() leaves MLFLOW_TRACKING_URI in
        # this process's environment, pointing at the other stack's server.
        mlflow_tracking_uri=f"http://127.0.0.1:{mlflow}",
        evidently_port=evidently,
        worker_log_port=worker_log,
        trigger_log_port=trigger_log,
        serving_port=serving,
        deploy_target="none",
        admin_password=AIRFLOW_PASSWORD,
        executor="CeleryExecutor",
        database_url=urls.database_url,
        broker_url=urls.broker_url,
        mlflow_backend_uri=urls.mlflow_backend_uri,
        mlflow_auth=True,
        mlflow_admin_password=MLFLOW_PASSWORD,
        mlflow_auth_database_uri=urls.mlflow_auth_database_uri,
    )


@pytest.fixture(scope="module")
def celery_stack(celery_settings: AirloopSettings) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(celery_settings)
    fill_landing_zone(celery_settings.state.landing / "flights", WINDOW_END - dt.timedelta(days=7), WINDOW_END)
    try:
        stack.up(timeout=420)
        yield stack
    finally:
        print(f"stopped {stack.down()}; logs in {celery_settings.home / 'logs'}")


@pytest.fixture(scope="module")
def airflow(celery_stack: EmbeddedStack, celery_settings: AirloopSettings) -> Iterator[AirflowClient]:
    with AirflowClient(celery_settings.airflow_url, celery_settings.admin_user, AIRFLOW_PASSWORD) as client:
        client.wait_for_dag(DAG)
        yield client


def _query(url: str, statement: str, *params: object) -> list[tuple]:
    import psycopg2

    connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()
    finally:
        connection.close()


def test_training_runs_on_the_celery_worker_with_postgres_behind_airflow_and_mlflow(
    celery_stack, celery_settings, airflow, backends
):
    assert set(celery_stack.status()) >= {"celery-worker-1", "scheduler", "api-server", "mlflow"}
    logical_date = f"{WINDOW_END.isoformat()}T00:00:00+00:00"
    # Triggered while paused and dated before the latest night, so the scheduler starts this run
    # before the nightly one that unpausing creates (queued runs start in `run_after` order).
    run = airflow.request(
        "POST",
        f"/api/v2/dags/{DAG}/dagRuns",
        json={"logical_date": logical_date, "run_after": logical_date, "conf": {"window_days": 7, "reason": "celery"}},
    )
    airflow.unpause(DAG)
    run_id = run["dag_run_id"]
    final = airflow.follow(DAG, run_id, timeout=900)
    instances = airflow.task_instances(DAG, run_id)
    assert final["state"] == "success", {ti["task_id"]: ti["state"] for ti in instances}
    assert {ti["task_id"] for ti in instances} == {
        "ingest",
        "validate",
        "train",
        "register",
        "evaluate",
        "approve",
        "deploy_and_promote",
    }
    assert {ti["state"] for ti in instances} == {"success"}

    # Each task reached the worker through the broker: the worker logged it, and its result is
    # in the Celery result backend (the Airflow database) with state SUCCESS.
    worker_log = (celery_settings.home / "logs" / "celery-worker-1.log").read_text()
    executed = [line for line in worker_log.splitlines() if "Executing workload in Celery" in line]
    for ti in instances:
        path = f"log_path='dag_id={DAG}/run_id={run_id}/task_id={ti['task_id']}/attempt=1.log'"
        assert any(path in line for line in executed), f"{ti['task_id']} did not run on the Celery worker"
        assert ti["queue"] == "default"
    scheduler_log = (celery_settings.home / "logs" / "scheduler.log").read_text()
    assert "CeleryExecutor" in scheduler_log
    # Each task's process was forked from a worker that had imported airloop.preload (Celery's
    # `imports`), so no task paid for importing pandas, scikit-learn, MLflow and GX itself.
    for ti in instances:
        log = airflow.task_log(DAG, run_id, ti["task_id"], ti["try_number"])
        assert "started warm" in log, (ti["task_id"], log[-2000:])
    _, urls = backends
    # The worker stores a task's result just after the task told Airflow it succeeded: the last
    # one can land a moment after the run is done (seen in CI: 6 of 7 right after the run ended).
    statement = "SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'"
    deadline = time.monotonic() + 60
    while (succeeded := _query(urls.database_url, statement)[0][0]) < len(instances) and time.monotonic() < deadline:
        time.sleep(1)
    assert succeeded >= len(instances)
    # Airflow's metadata and MLflow's registry are in Postgres.
    assert _query(urls.database_url, "SELECT state FROM dag_run WHERE run_id = %s", run_id) == [("success",)]
    decision = airflow.xcom(DAG, run_id, "deploy_and_promote")["decision"]
    versions = _query(
        urls.mlflow_backend_uri,
        "SELECT version FROM model_versions WHERE name = %s ORDER BY version",
        decision["model_name"],
    )
    assert (int(decision["version"]),) in versions
    run_tags = _query(
        urls.mlflow_backend_uri,
        "SELECT value FROM tags WHERE key = 'airloop.airflow_run_id' AND value = %s",
        run_id,
    )
    assert run_tags, "the train run in MLflow's Postgres store is tagged with the Airflow run"


def test_mlflow_refuses_anonymous_and_the_default_password_and_accepts_the_configured_one(
    celery_stack, celery_settings
):
    url = f"{celery_settings.tracking_uri}/api/2.0/mlflow/experiments/search"
    body = {"max_results": 10}
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    assert httpx.post(url, json=body, auth=("admin", "password1234"), timeout=10).status_code == 401
    assert httpx.post(url, json=body, auth=("admin", "wrong-password-123"), timeout=10).status_code == 401
    accepted = httpx.post(url, json=body, auth=("admin", MLFLOW_PASSWORD), timeout=10)
    assert accepted.status_code == 200, accepted.text
    # The check the compose file runs after `mlflow server`, from its environment.
    check = subprocess.run(
        [sys.executable, "-m", "airloop.stack.mlflow_auth", "check", "--tracking-uri", celery_settings.tracking_uri],
        env={**os.environ, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD},
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "airloop.stack.mlflow_auth", "check", "--tracking-uri", celery_settings.tracking_uri],
        env={**os.environ, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "password1234"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1
    assert "does not accept the configured password" in refused.stderr


def test_airflow_api_refuses_unauthenticated_requests(celery_stack, celery_settings):
    base = celery_settings.airflow_url
    assert httpx.get(f"{base}/api/v2/dags", timeout=10).status_code == 401
    trigger = httpx.post(f"{base}/api/v2/dags/{DAG}/dagRuns", json={"logical_date": None}, timeout=10)
    assert trigger.status_code == 401
    forged = httpx.get(f"{base}/api/v2/dags", headers={"Authorization": "Bearer not-a-token"}, timeout=10)
    assert forged.status_code == 403


def test_no_secret_appears_in_the_service_or_task_logs(celery_stack, celery_settings, backends):
    native, _ = backends
    home = celery_settings.home
    secrets = {
        "airflow admin password": AIRFLOW_PASSWORD,
        "mlflow admin password": MLFLOW_PASSWORD,
        "jwt secret": (home / "secrets" / "jwt_secret").read_text().strip(),
        "fernet key": (home / "secrets" / "fernet_key").read_text().strip(),
        "mlflow flask secret": (home / "secrets" / "mlflow_flask_secret_key").read_text().strip(),
        **{f"native {p.name}": p.read_text().strip() for p in (native.root / "secrets").iterdir()},
    }
    logs = stack_logs(home)
    assert any(p.name == "celery-worker-1.log" for p in logs)
    assert any(p.suffix == ".log" and "task_id=train" in str(p) for p in logs), "task logs were written"
    assert secrets_in_logs(logs, secrets) == []

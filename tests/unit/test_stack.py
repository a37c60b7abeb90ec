"""The stack's configuration: executor and databases as settings, MLflow's auth config and secrets."""

from __future__ import annotations

import configparser
import os
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from airloop.processes import alive, spawn, terminate_groups
from airloop.settings import AirloopSettings
from airloop.stack import mlflow_auth
from airloop.stack.embedded import EmbeddedStack, StackError

POSTGRES = "postgresql+psycopg2://airloop:pw@127.0.0.1:5432/airflow"
REDIS = "redis://:pw@127.0.0.1:6379/0"


def _settings(tmp_path: Path, **overrides) -> AirloopSettings:
    return AirloopSettings(home=tmp_path / ".airloop", admin_password="admin-password", **overrides)


def test_default_stack_is_local_executor_on_sqlite_with_evidently(tmp_path):
    settings = _settings(tmp_path)
    stack = EmbeddedStack(settings)
    env = stack.environment()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    database = settings.home / "airflow" / "airflow.db"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{database}?timeout=30"  # waits out a busy lock
    assert not any(key.startswith("AIRFLOW__CELERY__") for key in env)
    assert "MLFLOW_TRACKING_PASSWORD" not in env
    assert stack.services == ("mlflow", "evidently", "api-server", "scheduler", "dag-processor", "triggerer")
    assert settings.evidently_port == 8001
    assert settings.state.evidently_workspace == settings.home / "monitoring" / "evidently"


def test_task_processes_are_forked_from_one_that_imported_the_preload(tmp_path, monkeypatch):
    local = EmbeddedStack(_settings(tmp_path)).environment()
    assert local["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "forkserver"
    assert local["AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"].split(",") == [
        "airloop.preload",
        "airflow.api_fastapi.app",
    ]
    celery = EmbeddedStack(_settings(tmp_path, executor="CeleryExecutor", broker_url=REDIS)).environment()
    assert "AIRFLOW__SCHEDULER__MP_START_METHOD" not in celery
    # What that config holds: tests/dags/test_celery_config.py (the plugins folder is importable there).
    assert celery["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == "airloop_airflow.celery_config.CELERY_CONFIG"
    # An operator who chose otherwise keeps their choice.
    monkeypatch.setenv("AIRFLOW__SCHEDULER__MP_START_METHOD", "fork")
    assert EmbeddedStack(_settings(tmp_path)).environment()["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "fork"


def test_celery_executor_and_postgres_are_configuration_of_the_same_stack(tmp_path):
    settings = _settings(tmp_path, executor="CeleryExecutor", database_url=POSTGRES, broker_url=REDIS, celery_workers=2)
    stack = EmbeddedStack(settings)
    env = stack.environment()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == POSTGRES
    assert env["AIRFLOW__CELERY__BROKER_URL"] == REDIS
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{POSTGRES}"
    assert stack.services[-2:] == ("celery-worker-1", "celery-worker-2")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"database_url": POSTGRES}, "AIRLOOP_BROKER_URL", id="no-broker"),
        pytest.param({"broker_url": REDIS}, "AIRLOOP_DATABASE_URL", id="sqlite-database"),
    ],
)
def test_celery_stack_refuses_to_start_without_broker_or_shared_database(tmp_path, overrides, message):
    stack = EmbeddedStack(_settings(tmp_path, executor="CeleryExecutor", **overrides))
    with pytest.raises(StackError, match=message):
        stack.up(timeout=1)
    assert not (tmp_path / ".airloop" / "run").exists(), "nothing was started"


def test_generated_mlflow_admin_password_is_private_stable_and_not_the_default(tmp_path):
    settings = _settings(tmp_path, mlflow_auth=True)
    first = mlflow_auth.admin_password(settings)
    stored = settings.home / "secrets" / "mlflow_admin_password"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert mlflow_auth.admin_password(settings) == first
    assert first != mlflow_auth.MLFLOW_LEGACY_DEFAULT_PASSWORD
    assert len(first) >= mlflow_auth.MLFLOW_MIN_PASSWORD_LENGTH
    assert mlflow_auth.client_environment(settings) == {
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": first,
    }


@pytest.mark.parametrize(
    ("password", "message"),
    [
        pytest.param("password1234", "public default", id="mlflow-default"),
        pytest.param("short", "at least 12", id="too-short"),
        pytest.param("", "no MLflow admin password", id="empty"),
    ],
)
def test_unsafe_mlflow_admin_passwords_are_refused(password, message):
    with pytest.raises(mlflow_auth.MlflowAuthError, match=message):
        mlflow_auth.check_password(password)


def test_server_environment_passes_the_password_by_environment_never_in_the_config_file(tmp_path):
    settings = _settings(tmp_path, mlflow_auth=True, mlflow_admin_password="configured-admin-pw")
    env = mlflow_auth.server_environment(settings)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "configured-admin-pw"
    config_path = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
    text = config_path.read_text()
    assert "configured-admin-pw" not in text
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    parsed = configparser.ConfigParser()
    parsed.read_string(text)
    assert parsed["mlflow"]["admin_username"] == "admin"
    assert parsed["mlflow"]["default_permission"] == "READ"
    assert parsed["mlflow"]["database_uri"] == f"sqlite:///{settings.home / 'mlflow' / 'basic_auth.db'}"
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == mlflow_auth.flask_secret_key(settings)
    # Airflow's tasks get client credentials, not the server's secrets.
    task_env = EmbeddedStack(settings).environment()
    assert task_env["MLFLOW_TRACKING_PASSWORD"] == "configured-admin-pw"
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in task_env


@pytest.mark.parametrize(
    ("password", "exit_code"),
    [
        pytest.param(None, 1, id="unset"),
        pytest.param("password1234", 1, id="mlflow-default"),
        pytest.param("a-strong-admin-password", 0, id="strong"),
    ],
)
def test_write_config_command_needs_a_safe_admin_password(tmp_path, monkeypatch, password, exit_code):
    if password is None:
        monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", password)
    path = tmp_path / "basic_auth.ini"
    argv = ["write-config", "--path", str(path), "--database-uri", "sqlite:///auth.db", "--admin-user", "root"]
    assert mlflow_auth.main(argv) == exit_code
    assert path.exists() == (exit_code == 0)
    if exit_code == 0:
        assert "admin_username = root" in path.read_text()


def test_terminate_groups_stops_all_together_and_kills_what_ignores_sigterm(tmp_path, monkeypatch):
    from airloop import processes

    polite = spawn(["sleep", "60"], dict(os.environ), tmp_path / "polite.log")
    # A child that ignores SIGTERM, like a Celery worker finishing its task.
    stubborn = spawn(["bash", "-c", "trap '' TERM; sleep 60 & wait"], dict(os.environ), tmp_path / "stubborn.log")
    time.sleep(0.3)
    events: list[tuple] = []
    real_killpg, real_wait = os.killpg, processes._wait_for_groups

    def killpg(pid: int, sig: int) -> None:
        if sig:
            events.append(("signal", pid, sig))
        real_killpg(pid, sig)

    def wait(remaining: set[int], timeout: float) -> None:
        events.append(("wait", frozenset(remaining), timeout))
        real_wait(remaining, timeout)

    monkeypatch.setattr(processes.os, "killpg", killpg)
    monkeypatch.setattr(processes, "_wait_for_groups", wait)
    terminate_groups([polite, stubborn], grace=2)
    assert not alive(polite)
    assert not alive(stubborn)
    # One grace period for both, not one each: both are asked first, then waited for together,
    # and only the one that ignored SIGTERM is killed.
    assert events == [
        ("signal", polite, signal.SIGTERM),
        ("signal", stubborn, signal.SIGTERM),
        ("wait", frozenset({polite, stubborn}), 2),
        ("signal", stubborn, signal.SIGKILL),
        ("wait", frozenset({stubborn}), 5.0),
    ]


def test_up_refuses_a_port_another_process_holds(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        stack = EmbeddedStack(AirloopSettings(home=tmp_path / ".airloop", mlflow_port=port))
        with pytest.raises(StackError, match=f"port {port} .* in use"):
            stack._start("mlflow", ["true"], {}, port=port)
    assert not (tmp_path / ".airloop" / "run" / "mlflow.pid").exists()

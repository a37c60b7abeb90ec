"""Security of the embedded stack (LocalExecutor, SQLite): no anonymous Airflow API, no secret in
any log. Runs after the training and deployment tests, so their task logs are searched too; the
Celery stack's counterparts are in test_4_celery_stack.py."""

from __future__ import annotations

import httpx
import pytest

from .conftest import PASSWORD, secrets_in_logs, stack_logs

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/api/v2/dags", None, id="list-dags"),
        pytest.param("POST", "/api/v2/dags/airloop_flights_training/dagRuns", {"logical_date": None}, id="trigger"),
        pytest.param("PATCH", "/api/v2/dags/airloop_flights_training", {"is_paused": False}, id="unpause"),
        pytest.param("GET", "/api/v2/config", None, id="config"),
    ],
)
def test_airflow_api_refuses_requests_without_a_valid_token(stack_settings, stack, method, path, body):
    url = f"{stack_settings.airflow_url}{path}"
    anonymous = httpx.request(method, url, json=body, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    forged = httpx.request(method, url, json=body, headers={"Authorization": "Bearer forged.jwt.token"}, timeout=10)
    assert forged.status_code == 403, forged.text


def test_evidently_ui_runs_beside_airflow_and_mlflow(stack_settings, stack):
    assert stack.status()["evidently"]
    version = httpx.get(f"{stack_settings.evidently_url}/api/version", timeout=10)
    assert version.status_code == 200
    assert version.json()["application"] == "Evidently UI"
    assert stack_settings.state.evidently_workspace.is_dir()


def test_no_secret_appears_in_the_service_or_task_logs(stack_settings, stack):
    home = stack_settings.home
    secrets = {
        "airflow admin password": PASSWORD,
        "jwt secret": (home / "secrets" / "jwt_secret").read_text().strip(),
        "fernet key": (home / "secrets" / "fernet_key").read_text().strip(),
    }
    logs = stack_logs(home)
    assert {"api-server.log", "scheduler.log", "mlflow.log", "evidently.log"} <= {p.name for p in logs}
    assert secrets_in_logs(logs, secrets) == []

"""The Airloop page's app on the real API server: Airflow serves it, and it refuses whoever Airflow would.

Airflow mounts a plugin's FastAPI app without authenticating it; these requests check that the
app itself asks Airflow's auth manager, with a bearer token as with the UI's `_token` cookie.
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration

PAGES = [
    "/airloop/",
    "/airloop/dags/airloop_flights_training",
    "/airloop/api/pipelines",
    "/airloop/api/pipelines/flights",
]


def _token(settings, password: str) -> str:
    response = httpx.post(
        f"{settings.airflow_url}/auth/token", json={"username": settings.admin_user, "password": password}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.mark.parametrize("path", PAGES)
def test_an_anonymous_request_is_refused(stack_settings, stack, path):
    response = httpx.get(f"{stack_settings.airflow_url}{path}", timeout=30)
    assert response.status_code == 401
    if "/api/" in path:
        assert response.json()["detail"] == "Not authenticated"
    else:
        assert "Log in to Airflow" in response.text  # a page, with the way to the login page


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"headers": {"Authorization": "Bearer not-a-jwt"}}, id="forged-bearer-token"),
        pytest.param({"cookies": {"_token": "not-a-jwt"}}, id="forged-cookie"),
    ],
)
def test_a_token_airflow_did_not_sign_is_refused(stack_settings, stack, credentials):
    with httpx.Client(base_url=stack_settings.airflow_url, timeout=30, **credentials) as client:
        for path in PAGES:
            assert client.get(path).status_code == 403, path


def test_a_logged_in_user_gets_the_health_of_the_pipeline(stack_settings, stack):
    from .conftest import PASSWORD

    token = _token(stack_settings, PASSWORD)
    for credentials in ({"headers": {"Authorization": f"Bearer {token}"}}, {"cookies": {"_token": token}}):
        with httpx.Client(base_url=stack_settings.airflow_url, timeout=120, **credentials) as client:
            [health] = client.get("/airloop/api/pipelines").json()
            assert (health["pipeline"], health["model_name"]) == ("flights", "airloop-flights-delay")
            assert health["registry_error"] is None
            assert set(health["dags"].values()) >= {"airloop_flights_training", "airloop_flights_monitoring"}
            page = client.get("/airloop/dags/airloop_flights_monitoring")
            assert page.status_code == 200
            assert "airloop_flights_monitoring is the monitoring DAG of pipeline flights" in page.text
            assert client.get("/airloop/dags/not_airloops").text.count("Not an Airloop DAG") >= 1
            assert client.get("/airloop/api/pipelines/no-such-pipeline").status_code == 404
            assert client.get("/airloop/pipelines/flights/windows/..%2F..%2Fsecrets/drift").status_code in {
                404,
                422,
            }


def test_the_plugin_shows_its_views_to_the_ui(stack_settings, stack, airflow):
    plugins = airflow.request("GET", "/api/v2/plugins")["plugins"]
    [airloop] = [p for p in plugins if p["name"] == "airloop"]
    assert [a["url_prefix"] for a in airloop["fastapi_apps"]] == ["/airloop"]
    views = {v["destination"]: v for v in airloop["external_views"]}
    assert views["nav"]["href"] == "/airloop/"
    assert views["dag"]["href"] == "/airloop/dags/{DAG_ID}"

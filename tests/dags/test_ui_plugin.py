"""The Airloop page's plugin declarations: light to load, and what the Airflow UI needs to show them."""

from __future__ import annotations

import json
import subprocess
import sys

from airloop.settings import PROJECT_ROOT

PROBE = """
import json, sys
sys.path.insert(0, {plugins!r})
import airloop_plugin
print(json.dumps([m for m in {modules!r} if m in sys.modules]))
"""


def test_loading_the_plugin_imports_neither_the_app_nor_heavy_libraries():
    # Every Airflow component loads plugins, task processes included: the app is built on its first request.
    modules = ["fastapi", "airflow.api_fastapi.core_api.security", "mlflow", "pandas", "sklearn", "airloop.health"]
    code = PROBE.format(plugins=str(PROJECT_ROOT / "plugins"), modules=modules)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_views_point_at_the_app_under_its_prefix():
    sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    from airloop_airflow.ui import AIRLOOP_APP, DAG_VIEW, NAV_VIEW, URL_PREFIX
    from airloop_plugin import AirloopPlugin

    assert AirloopPlugin.fastapi_apps == [AIRLOOP_APP]
    assert AirloopPlugin.external_views == [NAV_VIEW, DAG_VIEW]
    assert AIRLOOP_APP["url_prefix"] == URL_PREFIX
    assert (NAV_VIEW["destination"], DAG_VIEW["destination"]) == ("nav", "dag")
    assert str(NAV_VIEW["href"]).startswith(f"{URL_PREFIX}/")
    assert DAG_VIEW["href"] == f"{URL_PREFIX}/dags/{{DAG_ID}}"  # the UI fills in the DAG
    assert NAV_VIEW["url_route"] != DAG_VIEW["url_route"]  # the UI drops a view whose route is taken


def test_the_app_built_on_first_request_serves_every_page():
    sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    from airloop_airflow.ui import AIRLOOP_APP

    app = AIRLOOP_APP["app"].build()
    paths = {route.path for route in app.routes}
    assert {
        "/",
        "/dags/{dag_id}",
        "/api/pipelines",
        "/api/pipelines/{name}",
        "/pipelines/{name}/windows/{window_id}/{kind}",
        "/pipelines/{name}/quarantine/{snapshot_id}",
    } <= paths
    assert AIRLOOP_APP["app"].build() is app  # built once

"""Reconcile: the endpoint ends up serving what `champion` names, or says why not (real local target, real MLflow).

Each row starts from version 1 serving on a stable port (or nothing serving), moves `champion`
as a person would in the MLflow UI, reconciles, and checks what serves, what the alias names and
what reconciling reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from airloop.deploy.checks import ServingCheck, serving_model
from airloop.deploy.local import LocalDeployer
from airloop.deploy.reconcile import reconcile_serving
from airloop.registry.versions import ModelRegistry
from airloop.settings import AirloopSettings

from .conftest import TOKEN, free_port

QUICK = ServingCheck(requests=20, p95_latency_ms=60_000, token=TOKEN)


@pytest.fixture
def settings(store, tmp_path, monkeypatch) -> AirloopSettings:
    """Version 1 serves on a free port with the token and is `champion`; stopped afterwards."""
    monkeypatch.setenv("AIRLOOP_SERVING_TOKEN", TOKEN)
    found = AirloopSettings(
        home=tmp_path / "home",
        mlflow_tracking_uri=store.tracking_uri,
        serving_port=free_port(),
        deploy_target="local",
    )
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    for version in ("1", "2", "3"):
        registry.untag(version, ["servable", "not_servable_reason"])
    registry.move_champion("1")
    local = LocalDeployer(found.home, found.serving_port, health_timeout=180, token=TOKEN)
    local._serve(store.model_dirs["1"])  # the starting point
    yield found
    local.stop()


@dataclass(frozen=True)
class Row:
    champion: str  #: where a person moved the alias, from version 1 serving
    outcome: str
    serves: str | None  #: after reconciling
    attempted: bool
    stopped: bool = False  #: the serving process died before reconciling
    repair: bool = True


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(Row("1", "in_sync", "1", attempted=False), id="in-sync-nothing-moves"),
        pytest.param(Row("2", "repaired", "2", attempted=True), id="alias-moved-by-hand-is-served"),
        pytest.param(Row("1", "repaired", "1", attempted=True, stopped=True), id="dead-endpoint-serves-again"),
        pytest.param(Row("3", "not_servable", "1", attempted=True), id="broken-champion-old-keeps-serving"),
        pytest.param(Row("2", "drifted", "1", attempted=False, repair=False), id="check-only-reports"),
    ],
)
def test_reconcile_serves_the_champion_or_says_why_not(store, settings, row):
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    registry.move_champion(row.champion)
    local = LocalDeployer(settings.home, settings.serving_port)
    if row.stopped:
        local.stop()

    found = reconcile_serving(settings, store.model_name, check=QUICK, repair=row.repair)

    assert (found.outcome, found.attempted) == (row.outcome, row.attempted)
    assert found.champion == row.champion
    assert found.served == (None if row.stopped else "1")
    assert registry.champion() == row.champion  # reconciling never moves the alias
    assert local.serving_version(store.model_name) == row.serves
    assert found.needs_attention == (row.outcome in ("not_servable", "drifted"))
    if row.outcome == "not_servable":
        assert f"champion is version 3, but version 1 serves at {local.url}" in found.message
        assert registry.tags("3")["servable"] == "false"


def test_a_champion_known_not_to_serve_is_reported_not_retried(store, settings):
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    registry.move_champion("3")
    first = reconcile_serving(settings, store.model_name, check=QUICK)
    again = reconcile_serving(settings, store.model_name, check=QUICK)

    assert (first.outcome, first.attempted) == ("not_servable", True)
    assert (again.outcome, again.attempted) == ("not_servable", False)
    assert "is tagged not servable" in again.message
    assert "delete the tag airloop.servable on version 3" in again.message
    assert serving_model(f"http://127.0.0.1:{settings.serving_port}") == (store.model_name, "1")

    registry.untag("3", ["servable"])  # a person asks for another try: the gate runs again
    assert reconcile_serving(settings, store.model_name, check=QUICK).attempted


def test_nothing_to_reconcile_without_a_target(store, settings):
    found = reconcile_serving(settings.model_copy(update={"deploy_target": "none"}), store.model_name)
    assert (found.outcome, found.target, found.needs_attention) == ("unmanaged", "none", False)

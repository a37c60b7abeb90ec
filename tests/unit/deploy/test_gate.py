"""The servability gate's order of steps, on the real local target and a real MLflow registry.

Each row starts from version 1 serving on a stable port and named `champion`, asks the gate
for something, and checks the steps it took (recorded by thin wrappers that call through to
the real `LocalDeployer` and `ModelRegistry`), then where alias and traffic ended up and what
is tagged on the version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from airloop.deploy import Candidate, DeploymentError, NotServableError
from airloop.deploy.checks import ServingCheck, serving_model
from airloop.deploy.gate import promote_when_servable
from airloop.deploy.local import LocalDeployer
from airloop.registry.versions import ModelRegistry
from airloop.serving.model import ModelInfo

from .conftest import TOKEN, free_port, version_info

QUICK = ServingCheck(requests=20, p95_latency_ms=60_000)  # a budget no healthy instance misses


class RecordingDeployer:
    """The real LocalDeployer, with each step it is asked for written down (a trailing ! when it raised)."""

    def __init__(self, real: LocalDeployer, steps: list[str]) -> None:
        self.real, self.steps, self.target = real, steps, real.target

    def _call(self, step: str, *args: Any) -> Any:
        try:
            result = getattr(self.real, step)(*args)
        except Exception:
            self.steps.append(step + "!")
            raise
        self.steps.append(step)
        return result

    def endpoint(self, model_name: str) -> str:
        return self.real.endpoint(model_name)

    def serving_version(self, model_name: str) -> str | None:
        return self.real.serving_version(model_name)

    def start_candidate(self, model_dir: Path, info: ModelInfo) -> Candidate:
        return self._call("start_candidate", model_dir, info)

    def discard(self, candidate: Candidate) -> None:
        self._call("discard", candidate)

    def switch(self, candidate: Candidate) -> None:
        self._call("switch", candidate)

    def switch_back(self) -> None:
        self._call("switch_back")

    def retire_previous(self) -> None:
        self._call("retire_previous")


class RecordingRegistry(ModelRegistry):
    """The real MLflow registry, with each change it is asked for written down."""

    def __init__(self, model_name: str, *, tracking_uri: str, steps: list[str]) -> None:
        super().__init__(model_name, tracking_uri=tracking_uri)
        self.steps = steps

    def move_champion(self, version: str) -> None:
        try:
            super().move_champion(version)
        except Exception:
            self.steps.append("move_champion!")
            raise
        self.steps.append("move_champion")

    def mark_servable(self, version: str) -> None:
        super().mark_servable(version)
        self.steps.append("mark_servable")

    def mark_not_servable(self, version: str, reason: str) -> None:
        super().mark_not_servable(version, reason)
        self.steps.append("mark_not_servable")


@pytest.fixture
def serving(store, tmp_path):
    """Version 1 serves on a free port (with the token) and is `champion`; stopped afterwards."""
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    for version in ("1", "2", "3"):
        registry.untag(version, ["servable", "not_servable_reason"])
    registry.move_champion("1")
    local = LocalDeployer(tmp_path / "home", free_port(), health_timeout=180, token=TOKEN)
    local._serve(store.model_dirs["1"])  # the starting point, without a gate of its own to test
    yield local
    local.stop()


@dataclass(frozen=True)
class Row:
    version: str  #: asked to serve and become champion, from version 1 serving as champion
    steps: list[str]  #: what the gate did, in order
    champion: str  #: after
    serves: str  #: after
    raises: type[Exception] | None = None
    budget_ms: float = QUICK.p95_latency_ms


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(
            Row("2", ["start_candidate", "switch", "move_champion", "retire_previous", "mark_servable"], "2", "2"),
            id="winner-takes-traffic-then-the-alias",
        ),
        pytest.param(
            Row("3", ["start_candidate!", "mark_not_servable"], "1", "1", NotServableError),
            id="unfitted-model-never-takes-traffic",
        ),
        pytest.param(
            Row("2", ["start_candidate", "discard", "mark_not_servable"], "1", "1", NotServableError, budget_ms=0),
            id="over-the-latency-budget",
        ),
        pytest.param(
            Row(
                "99",
                ["start_candidate", "switch", "move_champion!", "switch_back", "discard"],
                "1",
                "1",
                DeploymentError,
            ),
            id="alias-move-fails-traffic-switches-back",
        ),
        pytest.param(Row("1", ["move_champion"], "1", "1"), id="already-serving-moves-only-the-alias"),
    ],
)
def test_the_gate_moves_alias_and_traffic_together_or_neither(store, serving, row):
    taken: list[str] = []
    deployer = RecordingDeployer(serving, taken)
    registry = RecordingRegistry(store.model_name, tracking_uri=store.tracking_uri, steps=taken)
    check = ServingCheck(requests=QUICK.requests, p95_latency_ms=row.budget_ms, token=TOKEN)
    version, raises = row.version, row.raises

    def gate():
        return promote_when_servable(
            deployer, registry, store.model_dirs[version], version_info(store, version), check=check, make_champion=True
        )

    if raises is None:
        deployment = gate()
        assert (deployment.version, deployment.unchanged) == (version, version == "1")
    else:
        with pytest.raises(raises) as failed:
            gate()
        assert "version 1 keeps serving" in str(failed.value) or "switched back: version 1" in str(failed.value)
        assert "champion stays version 1" in str(failed.value)
    assert taken == row.steps
    assert registry.champion() == row.champion
    assert serving_model(serving.url) == (store.model_name, row.serves)


def test_a_version_that_fails_its_checks_is_tagged_with_why(store, serving):
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    with pytest.raises(NotServableError, match="not servable on local"):
        promote_when_servable(
            serving, registry, store.model_dirs["3"], version_info(store, "3"), check=QUICK, make_champion=True
        )
    tags = registry.tags("3")
    assert tags["servable"] == "false"
    assert "cannot become healthy" in tags["not_servable_reason"]
    assert "NotFittedError" in tags["not_servable_reason"]

    with pytest.raises(NotServableError, match="latency: p95"):
        promote_when_servable(
            serving,
            registry,
            store.model_dirs["2"],
            version_info(store, "2"),
            check=ServingCheck(requests=20, p95_latency_ms=0, token=TOKEN),
            make_champion=True,
        )
    assert "promotion.servability.p95_latency_ms" in registry.tags("2")["not_servable_reason"]
    # Passing later clears the reason.
    promote_when_servable(
        serving,
        registry,
        store.model_dirs["2"],
        version_info(store, "2"),
        check=ServingCheck(requests=20, p95_latency_ms=60_000, token=TOKEN),
        make_champion=True,
    )
    assert registry.tags("2")["servable"] == "true"
    assert "not_servable_reason" not in registry.tags("2")
    assert registry.champion() == "2"


def test_the_checks_and_the_served_version_use_the_serving_token(store, serving):
    example = json.loads((store.model_dirs["1"] / "serving_input_example.json").read_text())
    url = f"{serving.url}/invocations"
    body, json_type = json.dumps(example), {"Content-Type": "application/json"}
    assert httpx.post(url, content=body, headers=json_type, timeout=30).status_code == 401
    authorized = httpx.post(url, content=body, headers={**json_type, "Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert authorized.status_code == 200

    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    without = ServingCheck(requests=5, p95_latency_ms=60_000, token=None)
    # A checker that does not know the token is refused by the candidate, which then never serves.
    with pytest.raises(NotServableError, match="HTTP 401"):
        promote_when_servable(
            serving, registry, store.model_dirs["2"], version_info(store, "2"), check=without, make_champion=True
        )
    assert registry.champion() == "1"
    assert serving_model(serving.url) == (store.model_name, "1")


def test_nothing_serving_and_a_failed_alias_move_leaves_nothing_serving(store, tmp_path):
    local = LocalDeployer(tmp_path / "empty", free_port(), health_timeout=180)
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    registry.move_champion("1")
    try:
        with pytest.raises(DeploymentError, match="switched back: nothing serves"):
            promote_when_servable(
                local, registry, store.model_dirs["99"], version_info(store, "99"), check=QUICK, make_champion=True
            )
        assert local.serving_version(store.model_name) is None
        assert registry.champion() == "1"
    finally:
        local.stop()

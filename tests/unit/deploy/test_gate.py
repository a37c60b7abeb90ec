"""The servability gate's order of steps, on the real local target and a real MLflow registry.

Each row starts from version 1 serving on a stable port and named `champion`, asks the gate
for something, and checks the steps it took (recorded by thin wrappers that call through to
the real `LocalDeployer` and `ModelRegistry`), then where alias and traffic ended up and what
is tagged on the version.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from airloop import pipeline
from airloop.deploy import Candidate, DeploymentError, NotServableError
from airloop.deploy.checks import ServingCheck, serving_model
from airloop.deploy.gate import promote_when_servable
from airloop.deploy.local import LocalDeployer
from airloop.lineage import Lineage
from airloop.registry.versions import ModelRegistry
from airloop.serving.model import MODEL_INFO_FILE, ModelInfo, fetch_model

QUICK = ServingCheck(requests=20, p95_latency_ms=60_000)  # a budget no healthy instance misses
TOKEN = "gate-test-token"


@dataclass
class Store:
    tracking_uri: str
    model_name: str
    model_dirs: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="module")
def store(tmp_path_factory, landing_home) -> Store:
    """Versions 1 and 2 (the same good model), 3 (never fitted), and a copy of 1 that calls itself 99
    (a version the registry does not have, so moving the alias to it fails for real)."""
    import os

    from airloop.settings import AirloopSettings

    from ...conftest import FLIGHTS_CONFIG

    root = tmp_path_factory.mktemp("gate")
    home = root / "home"
    home.mkdir()
    (home / "landing").symlink_to(landing_home / "landing")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    settings = AirloopSettings(home=home, config=FLIGHTS_CONFIG, mlflow_tracking_uri=tracking)
    cwd = Path.cwd()
    os.chdir(root)  # the SQLite store keeps artifacts under the working directory
    try:
        decision = pipeline.run_in_process(
            settings, pipeline.RunOptions(window_days=7, max_iter=30), dt.date(2026, 3, 8), Lineage(run_id="gate")
        )
        name = decision.model_name
        again = _register_again(tracking, name, decision.version)
        broken = _register_unfitted(settings, tracking, name, root / "fitted")
        found = Store(tracking, name)
        for version in ("1", again, broken):
            found.model_dirs[version] = root / "models" / f"v{version}"
            fetch_model(f"models:/{name}/{version}", found.model_dirs[version], tracking_uri=tracking)
    finally:
        os.chdir(cwd)
    assert (decision.version, again, broken) == ("1", "2", "3")
    phantom = root / "models" / "v99"
    shutil.copytree(found.model_dirs["1"], phantom)
    info = json.loads((phantom / MODEL_INFO_FILE).read_text())
    (phantom / MODEL_INFO_FILE).write_text(json.dumps({**info, "version": "99"}))
    found.model_dirs["99"] = phantom
    return found


def _register_again(tracking: str, name: str, version: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    source = client.get_model_version(name, version)
    created = client.create_model_version(name, source.source, run_id=source.run_id)
    return str(created.version)


def _register_unfitted(settings: Any, tracking: str, name: str, scratch: Path) -> str:
    """A pipeline that was never fitted: it loads, but its warm-up prediction fails."""
    import mlflow
    import pandas as pd
    import yaml
    from mlflow.models import ModelSignature

    from airloop.config import load_config
    from airloop.training.model import SKOPS_TRUSTED_TYPES, build_pipeline

    good = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(scratch), tracking_uri=tracking))
    example = pd.DataFrame(**json.loads((good / "input_example.json").read_text()))
    raw = yaml.safe_load((good / "MLmodel").read_text())["signature"]
    signature = ModelSignature.from_dict({k: v for k, v in raw.items() if k in ("inputs", "outputs")})
    config = load_config(settings.config)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name="never fitted"):
        logged = mlflow.sklearn.log_model(
            build_pipeline(config.dataset, config.training.model),
            name="model",
            signature=signature,
            input_example=example,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    return str(mlflow.register_model(logged.model_uri, name).version)


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
    local = LocalDeployer(tmp_path / "home", _free_port(), health_timeout=180, token=TOKEN)
    local._serve(store.model_dirs["1"])  # the starting point, without a gate of its own to test
    yield local
    local.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _info(store: Store, version: str) -> ModelInfo:
    return ModelInfo(**json.loads((store.model_dirs[version] / MODEL_INFO_FILE).read_text()))


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
            deployer, registry, store.model_dirs[version], _info(store, version), check=check, make_champion=True
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
            serving, registry, store.model_dirs["3"], _info(store, "3"), check=QUICK, make_champion=True
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
            _info(store, "2"),
            check=ServingCheck(requests=20, p95_latency_ms=0, token=TOKEN),
            make_champion=True,
        )
    assert "promotion.servability.p95_latency_ms" in registry.tags("2")["not_servable_reason"]
    # Passing later clears the reason.
    promote_when_servable(
        serving,
        registry,
        store.model_dirs["2"],
        _info(store, "2"),
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
            serving, registry, store.model_dirs["2"], _info(store, "2"), check=without, make_champion=True
        )
    assert registry.champion() == "1"
    assert serving_model(serving.url) == (store.model_name, "1")


def test_nothing_serving_and_a_failed_alias_move_leaves_nothing_serving(store, tmp_path):
    local = LocalDeployer(tmp_path / "empty", _free_port(), health_timeout=180)
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    registry.move_champion("1")
    try:
        with pytest.raises(DeploymentError, match="switched back: nothing serves"):
            promote_when_servable(
                local, registry, store.model_dirs["99"], _info(store, "99"), check=QUICK, make_champion=True
            )
        assert local.serving_version(store.model_name) is None
        assert registry.champion() == "1"
    finally:
        local.stop()

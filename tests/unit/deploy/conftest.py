"""What the deploy tests share: a real MLflow registry with good, broken and phantom versions."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airloop.serving.model import MODEL_INFO_FILE, ModelInfo, fetch_model
from tests.conftest import flights_file, free_port, register_unfitted, sqlite_champion

__all__ = ["TOKEN", "free_port", "version_info"]

TOKEN = "gate-test-token"


@dataclass
class Store:
    tracking_uri: str
    model_name: str
    model_dirs: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="package")
def store(tmp_path_factory, landing_home) -> Store:
    """Versions 1 and 2 (the same good model), 3 (never fitted), and a copy of 1 that calls itself 99
    (a version the registry does not have, so moving the alias to it fails for real)."""
    import os

    root = tmp_path_factory.mktemp("gate")
    settings, decision = sqlite_champion(root, landing_home, max_iter=30, run_id="gate")
    tracking = settings.tracking_uri
    cwd = Path.cwd()
    os.chdir(root)  # the SQLite store keeps artifacts under the working directory
    try:
        name = decision.model_name
        again = _register_again(tracking, name, decision.version)
        broken = register_unfitted(flights_file(settings), tracking, name, "1", root / "fitted")
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


def version_info(store: Store, version: str) -> ModelInfo:
    return ModelInfo(**json.loads((store.model_dirs[version] / MODEL_INFO_FILE).read_text()))

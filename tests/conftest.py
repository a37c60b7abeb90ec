"""Shared fixtures: real replayed flights in a temporary state folder."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import yaml

from airloop.config import PipelineConfig, load_config
from airloop.settings import PROJECT_ROOT, AirloopSettings

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline
    from airloop.registry.promotion import PromotionDecision

PIPELINES = PROJECT_ROOT / "include" / "pipelines"
FLIGHTS_CONFIG = PIPELINES / "flights.yaml"


def flights(settings: AirloopSettings) -> Pipeline:
    """The flights pipeline of the settings' pipelines folder."""
    return settings.load_pipelines().get("flights")


def origin_pipeline(port: int) -> dict[str, Any]:
    """A multiclass pipeline on the flights landing zone (which of New York's airports a flight leaves
    from: EWR, JFK or LGA), as the parsed YAML a user would write from flights.yaml."""
    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    raw["model_name"] = raw["experiment"] = "airloop-origin"
    raw["dataset"]["name"] = "origin"
    raw["dataset"]["label"] = {"column": "origin", "task": "multiclass"}
    raw["dataset"]["categorical_features"] = ["carrier", "dest"]
    raw["training"]["model"] = {"max_iter": 50, "tunable": ["max_iter"]}  # the multiclass default estimator
    del raw["promotion"]["metric"], raw["monitoring"]["performance"]["metric"]  # the task's defaults
    raw["promotion"]["shadow"]["days"] = 0  # a multiclass log keeps no per-class probabilities
    raw["monitoring"]["concept_shift"]["segments"] = ["carrier"]
    raw["serving"]["port"] = port
    return raw


def land_synthetic(
    folder: Path, partition: str, make_day: Callable[[dt.date, Any], Any], *, end: dt.date, days: int, seed: int
) -> None:
    """`days` daily Parquet partitions of a synthetic dataset before `end`, each `make_day(day, rng)`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for offset in range(days):
        day = end - dt.timedelta(days=days - offset)
        (folder / partition.format(date=day)).mkdir(parents=True)
        make_day(day, rng).to_parquet(folder / partition.format(date=day) / "part.parquet")


def flights_file(settings: AirloopSettings) -> Path:
    """The flights pipeline's file in the settings' pipelines folder."""
    return settings.pipelines / "flights.yaml"


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sqlite_champion(
    root: Path, landing_home: Path, *, max_iter: int, run_id: str
) -> tuple[AirloopSettings, PromotionDecision]:
    """A SQLite MLflow store under `root` whose flights model, trained on a week of `landing_home`, is champion."""
    from airloop import pipeline
    from airloop.lineage import Lineage

    home = root / "home"
    home.mkdir()
    (home / "landing").symlink_to(landing_home / "landing")
    settings = AirloopSettings(home=home, mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    cwd = Path.cwd()
    os.chdir(root)  # the SQLite store keeps artifacts under the working directory
    try:
        decision = pipeline.run_in_process(
            settings,
            flights(settings),
            pipeline.RunOptions(window_days=7, model={"max_iter": max_iter}),
            dt.date(2026, 3, 8),
            Lineage(run_id=run_id),
        )
    finally:
        os.chdir(cwd)
    assert decision.decision == "promoted"
    return settings, decision


def unavailable(reason: str) -> NoReturn:
    """Skip a test this machine cannot run; in CI (`CI=true`, the one switch) fail: there it must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: this test must run; .ci/run installs what it needs)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def flights_config() -> PipelineConfig:
    return load_config(FLIGHTS_CONFIG)


@pytest.fixture(scope="session")
def landing_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder whose landing zone holds 2026-03-01 to 2026-03-14 (replayed March 2013)."""
    from airloop.data.replay import fill_landing_zone

    home = tmp_path_factory.mktemp("airloop-home")
    fill_landing_zone(home / "landing" / "flights", dt.date(2026, 3, 1), dt.date(2026, 3, 14))
    return home


@pytest.fixture
def settings(landing_home: Path, tmp_path: Path) -> AirloopSettings:
    """Settings over the shared landing zone, with a lake of this test's own."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "landing").symlink_to(landing_home / "landing")
    return AirloopSettings(home=home, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def register_unfitted(config_path: Path, tracking_uri: str, name: str, like_version: str, scratch: Path) -> str:
    """Register a pipeline that was never fitted, with version `like_version`'s signature and input example.

    It loads and passes the signature, but its warm-up prediction fails: a version that must never serve.
    """
    import json

    import mlflow
    import pandas as pd
    import yaml
    from mlflow.models import ModelSignature

    from airloop.training.model import build_pipeline, skops_trusted_types

    mlflow.set_tracking_uri(tracking_uri)  # models:/ URIs resolve through the registry it names
    good = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{name}/{like_version}", dst_path=str(scratch), tracking_uri=tracking_uri
        )
    )
    example = pd.DataFrame(**json.loads((good / "input_example.json").read_text()))
    raw = yaml.safe_load((good / "MLmodel").read_text())["signature"]
    signature = ModelSignature.from_dict({k: v for k, v in raw.items() if k in ("inputs", "outputs")})
    config = load_config(config_path)
    mlflow.set_experiment(config.experiment)
    unfitted = build_pipeline(config.dataset, config.training.model)
    with mlflow.start_run(run_name="never fitted"):
        logged = mlflow.sklearn.log_model(
            unfitted,
            name="model",
            signature=signature,
            input_example=example,
            skops_trusted_types=skops_trusted_types(unfitted),
        )
    return str(mlflow.register_model(logged.model_uri, name).version)

"""Shared fixtures: real replayed flights in a temporary state folder."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import NoReturn

import pytest

from airloop.config import PipelineConfig, load_config
from airloop.settings import PROJECT_ROOT, AirloopSettings

FLIGHTS_CONFIG = PROJECT_ROOT / "include" / "config" / "flights.yaml"


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
    return AirloopSettings(home=home, config=FLIGHTS_CONFIG, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")

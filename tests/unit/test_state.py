"""The state folder's layout: one object names every folder and file, and the rest build on it."""

from __future__ import annotations

from pathlib import Path

import airloop.state as state_module
from airloop.config import load_config
from airloop.monitoring.paths import MonitoringPaths
from airloop.settings import AirloopSettings
from airloop.state import StateLayout

from ..conftest import FLIGHTS_CONFIG


def test_every_named_place_is_its_own_and_under_the_state_folder(tmp_path):
    state = StateLayout(tmp_path / ".airloop")
    named = {
        name: getattr(state, name) for name in dir(StateLayout) if isinstance(getattr(StateLayout, name), property)
    }
    named |= {
        "secret": state.secret("fernet_key"),
        "service_log": state.service_log("scheduler"),
        "served_model": state.served_model("m", "3"),
        "build_context": state.build_context("airloop/m:v3"),
    }
    assert len(set(named.values())) == len(named), named
    assert all(path.is_relative_to(state.home) for path in named.values())
    assert state.build_context("airloop/m:v3").name == "airloop_m_v3"  # one folder, whatever the tag
    assert state.served_model("m", "3").parts[-2:] == ("m", "v3")
    # The docstring's map of the folder lists every name.
    assert all(f"`{name}" in state_module.__doc__ for name in named)


def test_config_paths_are_under_the_state_folder_unless_absolute(tmp_path):
    state = StateLayout(tmp_path)
    assert state.resolve(Path("labels/flights")) == tmp_path / "labels" / "flights"
    assert state.resolve(Path("/data/labels")) == Path("/data/labels")


def test_settings_and_monitoring_build_on_the_layout(tmp_path):
    settings = AirloopSettings(home=tmp_path / ".airloop", config=FLIGHTS_CONFIG)
    state = settings.state
    assert (settings.state.landing, settings.state.lake, settings.state.evidently_workspace) == (
        state.landing,
        state.lake,
        state.evidently_workspace,
    )
    paths = MonitoringPaths(settings, load_config(FLIGHTS_CONFIG))
    assert paths.inference == state.inference
    assert paths.shadow_slot.is_relative_to(state.inference)
    assert paths.ledger.is_relative_to(state.monitoring)
    assert paths.labels == state.resolve(Path("labels/flights"))

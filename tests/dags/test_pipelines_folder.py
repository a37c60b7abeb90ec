"""The DAG factory: every file of the pipelines folder gets its DAGs; a broken file is reported, not fatal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airloop.pipelines import STAGES
from airloop.settings import PROJECT_ROOT
from tests.conftest import FLIGHTS_CONFIG


def _write(folder: Path, name: str, **changes: object) -> None:
    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))


def _dagbag(folder: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRLOOP_PIPELINES", str(folder))
    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


@pytest.fixture
def two_pipelines(tmp_path: Path) -> Path:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    _write(folder, "flights")
    _write(
        folder,
        "delays",
        model_name="airloop-delays",
        experiment="airloop-delays",
        dataset__name="delays",
        serving__port=8010,
        monitoring__schedule="30 4 * * *",
        monitoring__labels_path="labels/delays",
    )
    return folder


def test_each_pipeline_file_gets_every_stage_dag_named_and_tagged_by_the_convention(two_pipelines, monkeypatch):
    bag = _dagbag(two_pipelines, monkeypatch)

    assert bag.import_errors == {}
    for pipeline in ("flights", "delays"):
        for stage in STAGES:
            dag = bag.dags[f"airloop_{pipeline}_{stage}"]
            assert set(dag.tags) == {"airloop", f"pipeline:{pipeline}", f"stage:{stage}"}
            assert dag.description.startswith(f"{pipeline}: ")
        # Each pipeline's loop closes on itself: its retraining triggers its own training.
        trigger = bag.dags[f"airloop_{pipeline}_retraining"].get_task("trigger_training")
        assert trigger.trigger_dag_id == f"airloop_{pipeline}_training"
    # Each pipeline has its own schedule and its own degradation asset.
    assert bag.dags["airloop_delays_monitoring"].timetable.expression == "30 4 * * *"
    assert bag.dags["airloop_flights_monitoring"].timetable.expression == "0 3 * * *"
    outlets = {
        p: [a.uri for a in bag.dags[f"airloop_{p}_monitoring"].get_task("raise_signals").outlets]
        for p in ("flights", "delays")
    }
    assert outlets == {
        "flights": ["airloop://flights/monitoring/degradation"],
        "delays": ["airloop://delays/monitoring/degradation"],
    }


def test_a_broken_pipeline_file_is_an_import_error_naming_it_and_the_others_still_load(two_pipelines, monkeypatch):
    _write(two_pipelines, "typo", model_name="airloop-typo", serving__port=8020, training__window_dayz=3)
    # A copy of delays: its model and port are taken (by delays, first in name order).
    (two_pipelines / "delays_copy.yaml").write_text((two_pipelines / "delays.yaml").read_text())

    bag = _dagbag(two_pipelines, monkeypatch)

    # One import error, the check file's, naming each broken file and why; no other file failed.
    assert [Path(f).name for f in bag.import_errors] == ["airloop_pipelines_check.py"]
    (error,) = bag.import_errors.values()
    assert "2 pipeline file(s)" in error
    assert f"{two_pipelines / 'typo.yaml'}: training.window_dayz: Extra inputs are not permitted" in error
    assert f"{two_pipelines / 'delays_copy.yaml'}: model_name 'airloop-delays' is pipeline delays's" in error
    # The good pipelines keep every DAG; the broken ones have none.
    ids = set(bag.dag_ids)
    assert {f"airloop_{p}_{s}" for p in ("flights", "delays") for s in STAGES} <= ids
    assert not {d for d in ids if d.startswith(("airloop_typo_", "airloop_delays_copy_"))}


def test_an_empty_pipelines_folder_builds_no_dag_and_reports_nothing(tmp_path, monkeypatch):
    (tmp_path / "pipelines").mkdir()
    bag = _dagbag(tmp_path / "pipelines", monkeypatch)
    assert bag.import_errors == {}
    assert not [d for d in bag.dag_ids if d.startswith("airloop_")]

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from airloop.config import FilesSource, SqlSource, load_config

from ..conftest import FLIGHTS_CONFIG


def test_default_config_loads_with_files_source(flights_config):
    assert isinstance(flights_config.dataset.source, FilesSource)
    assert flights_config.dataset.suite_path.exists()
    assert flights_config.model_name == "airloop-flights-delay"


def test_features_never_include_what_is_known_only_after_the_flight(flights_config):
    after_the_fact = {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"}
    assert not after_the_fact & set(flights_config.dataset.features)


def test_overrides_merge_key_by_key():
    config = load_config(FLIGHTS_CONFIG, {"training": {"window_days": 7, "model": {"max_iter": 10}}})
    assert config.training.window_days == 7
    assert config.training.model.max_iter == 10
    assert config.training.model.learning_rate == 0.1  # untouched sibling


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    mutate(raw)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(
            lambda r: r["dataset"]["numeric_features"].append("arr_delay"), "known only after", id="label-as-feature"
        ),
        pytest.param(
            lambda r: r["dataset"]["numeric_features"].append("dep_delay"), "known only after", id="leaky-feature"
        ),
        pytest.param(lambda r: r["dataset"]["source"].update(type="ftp"), "source", id="unknown-source-type"),
        pytest.param(lambda r: r["training"].update(holdout_fraction=1.5), "holdout_fraction", id="bad-holdout"),
        pytest.param(lambda r: r.update(surprise=1), "surprise", id="unknown-key"),
    ],
)
def test_bad_config_is_refused_with_the_field_named(tmp_path, mutate, message):
    with pytest.raises(ValidationError, match=message):
        load_config(_write(tmp_path, mutate))


def test_sql_source_is_chosen_by_config(tmp_path):
    def to_sql(raw):
        raw["dataset"]["source"] = {"type": "sql", "url": "sqlite:///x.db", "query": "SELECT 1"}

    assert isinstance(load_config(_write(tmp_path, to_sql)).dataset.source, SqlSource)

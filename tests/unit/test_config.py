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
    assert config.training.model.parameters["max_iter"] == 10
    assert config.training.model.parameters["learning_rate"] == 0.1  # untouched sibling


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


def test_the_label_is_positive_at_a_threshold_or_for_a_set_of_values():
    import pandas as pd

    from airloop.config import LabelConfig

    minutes = pd.Series([-5.0, 14.9, 15.0, 120.0])
    assert LabelConfig(column="arr_delay", threshold=15).target(minutes).tolist() == [0, 0, 1, 1]
    status = pd.Series(["late", "on time", "cancelled", "late"])
    assert LabelConfig(column="status", positive=["late", "cancelled"]).target(status).tolist() == [1, 0, 1, 1]
    assert LabelConfig(column="flag", positive=[True]).target(pd.Series([True, False])).tolist() == [1, 0]


@pytest.mark.parametrize(
    "label",
    [{"column": "status"}, {"column": "status", "threshold": 1, "positive": ["late"]}, {"column": "s", "positive": []}],
)
def test_a_label_needs_exactly_one_rule(label):
    from airloop.config import LabelConfig

    with pytest.raises(ValueError, match=r"one rule|at least 1 item"):
        LabelConfig.model_validate(label)


def test_a_label_of_named_values_trains():
    import pandas as pd

    from airloop.training.features import features_and_label

    config = load_config(
        FLIGHTS_CONFIG, {"dataset": {"label": {"column": "status", "threshold": None, "positive": ["late"]}}}
    )
    frame = pd.DataFrame(
        {c: ["x", "y", "x"] for c in config.dataset.categorical_features}
        | {c: [1.0, 2.0, 3.0] for c in config.dataset.numeric_features}
        | {"status": ["late", None, "on time"]}
    )
    features, label = features_and_label(frame, config.dataset)
    assert label.tolist() == [1, 0]  # the unlabelled row is left out
    assert len(features) == 2

"""The model is the config's: any scikit-learn classifier by import path, or a builder function."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from airloop.config import DatasetConfig, PipelineConfig, load_config
from airloop.settings import AirloopSettings
from airloop.training.model import ModelConfigError, build_pipeline, skops_trusted_types
from airloop.training.train import fit_and_evaluate
from tests.conftest import FLIGHTS_CONFIG


def _config(model: dict[str, Any], **training: Any) -> PipelineConfig:
    """flights.yaml with its `training.model` section replaced (not merged) by `model`."""
    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    raw["training"] = {**raw["training"], "model": model, **training}
    return PipelineConfig.model_validate(raw)


def _frame(dataset: DatasetConfig, rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Features of the dataset's columns, with missing values; the label follows one categorical."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {c: rng.choice(["a", "b", "c", None], rows) for c in dataset.categorical_features}
        | {c: rng.normal(size=rows) for c in dataset.numeric_features}
    )
    frame.loc[rng.random(rows) < 0.1, dataset.numeric_features[0]] = np.nan
    label = (frame[dataset.categorical_features[0]] == "a").to_numpy().astype(int)
    return frame, label


def build_small_forest(dataset: DatasetConfig, *, trees: int) -> Pipeline:
    """A builder of the user's, named by import path in the tests below."""
    from sklearn.ensemble import RandomForestClassifier

    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                dataset.categorical_features,
            )
        ],
        remainder="passthrough",
    )
    return Pipeline([("prepare", encode), ("forest", RandomForestClassifier(n_estimators=trees, random_state=0))])


def build_a_regressor(dataset: DatasetConfig) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def test_the_default_estimator_takes_categoricals_natively_and_its_types_are_trusted_once_fitted():
    config = load_config(FLIGHTS_CONFIG)
    pipeline = build_pipeline(config.dataset, config.training.model)
    model = pipeline.named_steps["model"]
    assert type(model).__name__ == "HistGradientBoostingClassifier"
    assert model.max_iter == 200
    assert model.early_stopping is False
    assert model.categorical_features == list(range(len(config.dataset.categorical_features)))
    assert isinstance(pipeline.named_steps["encode"].transformers[0][1], OrdinalEncoder)
    frame, label = _frame(config.dataset)
    pipeline.set_params(model__max_iter=5).fit(frame, label)
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in skops_trusted_types(pipeline)


def test_another_classifier_by_import_path_gets_one_hot_encoding_and_scores_unseen_and_missing_values():
    config = _config({"estimator": "sklearn.linear_model.LogisticRegression", "C": 0.5, "max_iter": 500})
    pipeline = build_pipeline(config.dataset, config.training.model)
    model = pipeline.named_steps["model"]
    assert isinstance(model, LogisticRegression)
    assert model.C == 0.5
    assert isinstance(pipeline.named_steps["encode"].transformers[0][1], OneHotEncoder)
    frame, label = _frame(config.dataset)
    pipeline.fit(frame, label)
    unseen = frame.head(3).copy()
    unseen[config.dataset.categorical_features[0]] = ["never seen", None, "a"]
    unseen[config.dataset.numeric_features[0]] = np.nan
    proba = pipeline.predict_proba(unseen)
    assert proba.shape == (3, 2)
    assert np.isfinite(proba).all()


def test_a_builder_function_by_import_path_gets_the_parameters_and_weights_reach_its_last_step():
    config = _config(
        {"builder": "tests.unit.training.test_model:build_small_forest", "trees": 7, "tunable": ["trees"]},
        min_rows=50,
        recency_half_life_days=3,
    )
    assert config.training.model.tunable_values == {"trees": 7}
    frame, label = _frame(config.dataset, rows=600)
    frame[config.dataset.label.column] = np.where(label == 1, 60.0, 0.0)
    frame[config.dataset.time_column] = pd.date_range("2026-03-01", periods=len(frame), freq="30min", tz="UTC")
    fitted = fit_and_evaluate(frame, config)
    forest = fitted.pipeline.named_steps["forest"]
    assert forest.n_estimators == 7
    assert fitted.metrics["roc_auc"] > 0.9  # the label follows a categorical the forest sees


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"estimator": "sklearn.ensemble.NoSuchForest"}, r"training\.model\.estimator .* cannot be imported"),
        ({"estimator": "sklearn.linear_model.LogisticRegression", "trees": 3}, r"trees not a parameter of Logistic"),
        ({"estimator": "sklearn.linear_model.LinearRegression"}, r"not a classifier with predict_proba"),
        ({"estimator": "sklearn.svm.SVC"}, r"not a classifier with predict_proba"),  # probability=False
        ({"estimator": "os.path.join"}, r"not a scikit-learn estimator class"),
        ({"builder": "tests.unit.training.test_model:build_a_regressor"}, r"returned LinearRegression, not a"),
    ],
)
def test_a_model_that_cannot_be_airlooped_is_refused_naming_the_field(model, message):
    config = _config(model)
    with pytest.raises(ModelConfigError, match=message):
        build_pipeline(config.dataset, config.training.model)


def test_recency_weights_need_an_estimator_that_takes_them():
    config = _config({"estimator": "sklearn.neighbors.KNeighborsClassifier"}, min_rows=50, recency_half_life_days=3)
    frame, label = _frame(config.dataset)
    frame[config.dataset.label.column] = np.where(label == 1, 60.0, 0.0)
    frame[config.dataset.time_column] = pd.date_range("2026-03-01", periods=len(frame), freq="h", tz="UTC")
    with pytest.raises(ModelConfigError, match=r"recency_half_life_days weighs rows, but KNeighborsClassifier"):
        fit_and_evaluate(frame, config)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"estimator": "sklearn.svm.SVC", "builder": "a.b:c"}, "not both"),
        ({"estimator": "sklearn.svm.SVC", "tunable": ["C"]}, "tunable parameter 'C' needs a value here"),
        ({"estimator": "not a path"}, "estimator"),
    ],
)
def test_the_config_says_what_is_wrong_before_anything_is_imported(model, message):
    with pytest.raises(ValueError, match=message):
        _config(model)


def test_a_random_forest_trains_registers_and_serves(tmp_path, landing_home):
    """Any estimator goes the whole way: trained and registered through MLflow, loaded by serving
    with the types its own pickle needs trusted, and answering as the pipeline does."""
    from airloop import pipeline
    from airloop.lineage import Lineage
    from airloop.serving.model import fetch_model, load_model_dir

    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    raw["training"]["model"] = {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "n_estimators": 20,
        "min_samples_leaf": 20,
        "random_state": 0,
        "tunable": ["n_estimators"],
    }
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "forest.yaml").write_text(yaml.safe_dump(raw))
    home = tmp_path / "home"
    home.mkdir()
    (home / "landing").symlink_to(landing_home / "landing")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = AirloopSettings(home=home, pipelines=tmp_path / "pipelines", mlflow_tracking_uri=tracking)
    cwd = Path.cwd()
    os.chdir(tmp_path)  # the SQLite store keeps artifacts under the working directory
    try:
        options = pipeline.RunOptions(window_days=7, model={"n_estimators": 25})
        decision = pipeline.run_in_process(
            settings, settings.load_pipelines().get("forest"), options, dt.date(2026, 3, 8), Lineage(run_id="forest")
        )
        assert decision.decision == "promoted"
        fetch_model(f"models:/{decision.model_name}@champion", tmp_path / "served", tracking_uri=tracking)
    finally:
        os.chdir(cwd)
    served = load_model_dir(tmp_path / "served")
    assert type(served.pipeline.named_steps["model"]).__name__ == "RandomForestClassifier"
    assert served.pipeline.named_steps["model"].n_estimators == 25  # the run's Params value
    example = served.example
    labels, proba = served.predict(example)
    assert np.array_equal(proba, served.pipeline.predict_proba(example))
    assert set(labels) <= {0, 1}
    assert proba.shape == (len(example), 2)

"""A new dataset is a pipeline file and an expectation suite, no code (issue 12).

A synthetic churn dataset, made here with columns of its own (a string label with a set of
positive values, its own time column and partition layout), goes through the same core as
flights: its file joins the pipelines folder beside flights, the suite gates a bad batch into
quarantine, and a good window trains, registers, promotes and serves.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from airloop import pipeline
from airloop.lineage import Lineage
from airloop.serving.app import ServingSettings, create_app
from airloop.serving.model import fetch_model
from airloop.settings import AirloopSettings
from airloop.validation import DataValidationError

from ..conftest import FLIGHTS_CONFIG, land_synthetic

RUN_DATE = dt.date(2026, 5, 1)
FEATURES = {"numeric": ["tenure_months", "monthly_fee"], "categorical": ["plan", "region"]}

PIPELINE = """
model_name: churn-model
experiment: churn
dataset:
  name: churn
  source: {type: files, path: landing/churn, partition: "day={date:%Y%m%d}", format: parquet}
  suite: SUITE
  time_column: signup_at
  numeric_features: [tenure_months, monthly_fee]
  categorical_features: [plan, region]
  label: {column: churned, positive: ["yes"]}
training:
  window_days: 14
  min_rows: 200
  model: {estimator: sklearn.linear_model.LogisticRegression, max_iter: 500, C: 1.0, tunable: [C]}
monitoring:
  labels_path: labels/churn
  concept_shift: {segments: [plan]}
  drift: {key_features: [plan]}
serving: {port: 8050}
"""

SUITE = {
    "name": "churn",
    "expectations": [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {
                "column_set": ["signup_at", "tenure_months", "monthly_fee", "plan", "region", "churned"],
                "exact_match": True,
            },
        },
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "tenure_months"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "monthly_fee", "min_value": 0}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "churned", "value_set": ["yes", "no"]}},
    ],
}


def _day(day: dt.date, rng: np.random.Generator, rows: int = 60) -> pd.DataFrame:
    fee = rng.uniform(10, 120, rows).round(2)
    tenure = rng.integers(1, 72, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    logit = -1.5 + 0.03 * fee - 0.06 * tenure + np.where(plan == "basic", 1.2, 0.0)
    return pd.DataFrame(
        {
            "signup_at": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
            "tenure_months": tenure,
            "monthly_fee": fee,
            "plan": plan,
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "churned": np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no"),
        }
    )


@pytest.fixture
def churn(tmp_path: Path) -> AirloopSettings:
    """A state folder with 30 landed days of churn, and a pipelines folder holding flights and churn."""
    land_synthetic(tmp_path / "home/landing/churn", "day={date:%Y%m%d}", _day, end=RUN_DATE, days=30, seed=7)
    (tmp_path / "churn.json").write_text(json.dumps(SUITE))
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    shutil.copy(FLIGHTS_CONFIG, pipelines / "flights.yaml")
    (pipelines / "churn.yaml").write_text(PIPELINE.replace("SUITE", str(tmp_path / "churn.json")))
    return AirloopSettings(
        home=tmp_path / "home", pipelines=pipelines, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )


def test_a_new_dataset_is_a_pipeline_file_and_a_suite_and_trains_and_serves(churn, tmp_path):
    found = churn.load_pipelines()
    assert found.names == ["churn", "flights"]
    assert found.broken == []
    pipe = found.get("churn")
    assert pipe.dag_id("training") == "airloop_churn_training"
    assert pipe.serving_port == 8050

    # A bad batch (a negative fee) fails the suite and is quarantined; the run stops there.
    bad_day = RUN_DATE - dt.timedelta(days=3)
    bad_file = churn.state.landing / "churn" / f"day={bad_day:%Y%m%d}" / "part.parquet"
    good = pd.read_parquet(bad_file)
    good.assign(monthly_fee=-good["monthly_fee"]).to_parquet(bad_file)
    options = pipeline.RunOptions()
    config = pipeline.pipeline_config(pipe, options)
    start, end = pipeline.data_window(config, options, RUN_DATE)
    snapshot = pipeline.ingest(churn, config, start, end)
    with pytest.raises(DataValidationError) as failed:
        pipeline.validate(churn, config, snapshot, Lineage(run_id="bad-churn"))
    assert [f.expectation for f in failed.value.summary.failures] == ["expect_column_values_to_be_between"]
    assert failed.value.quarantine.is_dir()  # the batch and its report, kept

    # The source is fixed: the same code trains, registers, promotes and serves the churn model.
    good.to_parquet(bad_file)
    cwd = Path.cwd()
    os.chdir(tmp_path)  # the SQLite store keeps artifacts under the working directory
    try:
        decision = pipeline.run_in_process(churn, pipe, options, RUN_DATE, Lineage(run_id="churn"))
        assert (decision.model_name, decision.decision) == ("churn-model", "promoted")
        served = fetch_model("models:/churn-model@champion", tmp_path / "served", tracking_uri=churn.tracking_uri)
    finally:
        os.chdir(cwd)
    assert served.version == decision.version

    rows = _day(RUN_DATE, np.random.default_rng(1), rows=4)
    body = {
        "dataframe_records": json.loads(rows[FEATURES["numeric"] + FEATURES["categorical"]].to_json(orient="records"))
    }
    with TestClient(create_app(ServingSettings(model_dir=tmp_path / "served"))) as client:
        labels = client.post("/invocations", json=body)
        scores = client.post("/invocations", json={**body, "params": {"predict_method": "predict_proba"}})
        leaked = client.post(
            "/invocations", json={"dataframe_records": [{**body["dataframe_records"][0], "churned": "no"}]}
        )
    assert labels.status_code == 200, labels.text
    assert set(labels.json()["predictions"]) <= {0, 1}  # 1: one of the label's positive values
    assert scores.status_code == 200, scores.text
    assert all(len(p) == 2 and abs(sum(p) - 1) < 1e-9 for p in scores.json()["predictions"])
    assert leaked.status_code == 422  # the label is never a feature
    assert "churned" in leaked.text

"""Binary, multiclass and regression labels: metrics, promotion direction, label rules, serving, monitoring (issue 12).

A synthetic support-tickets dataset, made here, is two pipeline files and one expectation suite:
which team takes a ticket (multiclass, the user's own team names) and how many minutes it takes
to close (regression). Each trains, registers, promotes, serves and is monitored through the same
core as flights; nothing below is code a user would write.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from starlette.testclient import TestClient

from airloop import pipeline
from airloop.config import load_config
from airloop.lineage import Lineage
from airloop.serving.app import ServingSettings, create_app
from airloop.serving.model import fetch_model, load_model_dir
from airloop.settings import AirloopSettings
from airloop.tasks import evaluate, improvement, live_metrics, served_score

from ..conftest import FLIGHTS_CONFIG, land_synthetic

RUN_DATE = dt.date(2026, 5, 1)
FEATURES = ["words", "attachments", "channel", "product"]
TEAMS = ["billing", "tech", "sales"]

PIPELINE = """
model_name: MODEL
experiment: MODEL
dataset:
  name: NAME
  source: {type: files, path: landing/tickets, partition: "date={date:%Y-%m-%d}", format: parquet}
  suite: SUITE
  time_column: opened_at
  numeric_features: [words, attachments]
  categorical_features: [channel, product]
  label: LABEL
  leakage_columns: [team, minutes_to_close]
training:
  window_days: 14
  min_rows: 200
  model: {tunable: [max_iter], max_iter: 100}
promotion: {min_improvement: 0.001}
monitoring:
  labels_path: labels/tickets
  drift: {min_rows: 30, key_features: [channel]}
  performance: {min_labels: 20}
retraining: {strategy: schedule}
serving: {port: PORT}
"""

SUITE = {
    "name": "tickets",
    "expectations": [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {
                "column_set": ["opened_at", *FEATURES, "team", "minutes_to_close"],
                "exact_match": True,
            },
        },
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "words", "min_value": 0}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "team", "value_set": TEAMS}},
    ],
}


def _tickets(day: dt.date, rng: np.random.Generator, rows: int = 80) -> pd.DataFrame:
    words = rng.integers(5, 400, rows)
    attachments = rng.integers(0, 4, rows)
    channel = rng.choice(["email", "chat", "phone"], rows)
    product = rng.choice(["app", "web", "api"], rows)
    team = np.where(channel == "phone", "sales", np.where(words > 200, "tech", "billing"))
    flip = rng.random(rows) < 0.1
    team[flip] = rng.choice(TEAMS, int(flip.sum()))
    minutes = 5 + 0.3 * words + 20 * attachments - np.where(channel == "chat", 10, 0) + rng.normal(0, 8, rows)
    return pd.DataFrame(
        {
            "opened_at": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
            "words": words,
            "attachments": attachments,
            "channel": channel,
            "product": product,
            "team": team,
            "minutes_to_close": minutes.round(1),
        }
    )


@pytest.fixture
def tickets(tmp_path: Path) -> AirloopSettings:
    """30 landed days of tickets; a pipelines folder with flights, `ticket_team` and `ticket_minutes`."""
    land_synthetic(tmp_path / "home/landing/tickets", "date={date:%Y-%m-%d}", _tickets, end=RUN_DATE, days=30, seed=11)
    (tmp_path / "tickets.json").write_text(json.dumps(SUITE))
    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copy(FLIGHTS_CONFIG, folder / "flights.yaml")
    for name, label, port in (
        ("ticket_team", "{column: team, task: multiclass}", 8061),
        ("ticket_minutes", "{column: minutes_to_close, task: regression}", 8062),
    ):
        text = PIPELINE.replace("MODEL", name.replace("_", "-")).replace("NAME", name).replace("LABEL", label)
        text = text.replace("SUITE", str(tmp_path / "tickets.json")).replace("PORT", str(port))
        (folder / f"{name}.yaml").write_text(text)
    return AirloopSettings(
        home=tmp_path / "home", pipelines=folder, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )


@pytest.fixture
def in_tmp(tmp_path: Path):
    """The SQLite store keeps artifacts under the working directory."""
    cwd = Path.cwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(cwd)


def _serve(settings: AirloopSettings, model: str, folder: Path) -> TestClient:
    fetch_model(f"models:/{model}@champion", folder, tracking_uri=settings.tracking_uri)
    return TestClient(create_app(ServingSettings(model_dir=folder, inference_log_dir=settings.state.inference)))


def _records(rows: pd.DataFrame) -> dict:
    return {"dataframe_records": json.loads(rows[FEATURES].to_json(orient="records"))}


def _csv(rows: pd.DataFrame) -> bytes:
    return rows[FEATURES].to_csv(index=False).encode()


# --- the metrics and their direction -------------------------------------------------------------


def test_each_task_has_its_own_metrics():
    regression = evaluate("regression", [1.0, 2.0, 3.0], np.array([1.0, 2.0, 5.0]))
    assert regression["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert regression["mae"] == pytest.approx(2 / 3)
    assert regression["r2"] == pytest.approx(1 - 4 / 2)

    classes = np.array(["a", "b", "c"])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])
    multiclass = evaluate("multiclass", ["a", "b", "c", "b"], proba, classes)
    assert multiclass["accuracy"] == pytest.approx(0.75)  # the last row predicts a, not b
    assert set(multiclass) >= {"roc_auc_ovr", "f1_macro", "accuracy", "log_loss"}
    assert 0.5 < multiclass["roc_auc_ovr"] <= 1

    binary = evaluate("binary", [0, 1, 1, 0], np.array([0.1, 0.9, 0.6, 0.4]))
    assert binary["roc_auc"] == 1.0
    assert binary["accuracy"] == 1.0
    assert set(binary) >= {"roc_auc", "average_precision", "f1", "accuracy", "log_loss"}


def test_a_metric_undefined_on_the_rows_is_nan_not_an_error():
    one_class = evaluate("binary", [1, 1], np.array([0.4, 0.9]))
    assert math.isnan(one_class["roc_auc"])
    two_of_three = evaluate("multiclass", ["a", "a"], np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1]]), ["a", "b", "c"])
    assert math.isnan(two_of_three["roc_auc_ovr"])
    assert two_of_three["accuracy"] == 1.0
    unseen_class = evaluate("multiclass", ["a", "z"], np.array([[0.9, 0.1], [0.6, 0.4]]), ["a", "b"])
    assert unseen_class["accuracy"] == 0.5  # a class the model never saw is a miss


def test_smaller_is_better_for_errors_and_losses_greater_for_the_rest():
    assert improvement("rmse", 9.0, 10.0) == 1.0
    assert improvement("mae", 11.0, 10.0) == -1.0
    assert improvement("log_loss", 0.4, 0.5) == pytest.approx(0.1)
    assert improvement("roc_auc", 0.7, 0.8) == pytest.approx(-0.1)
    assert improvement("f1_macro", 0.9, 0.8) == pytest.approx(0.1)


def test_the_promotion_rule_follows_the_metric_s_direction(tmp_path):
    from airloop.registry.promotion import challenger_wins

    regression = load_config(_flights_as(tmp_path, label={"column": "arr_delay", "task": "regression"}))
    assert regression.promotion_metric == "rmse"
    assert challenger_wins(20.0, 21.0, regression)  # a smaller error wins
    assert not challenger_wins(21.0, 20.0, regression)
    assert not challenger_wins(20.9995, 21.0, regression)  # by less than min_improvement: a tie
    flights = load_config(FLIGHTS_CONFIG)
    assert challenger_wins(0.75, 0.74, flights)
    assert not challenger_wins(0.74, 0.75, flights)


def test_the_logged_score_is_what_monitoring_can_use():
    proba = np.array([[0.2, 0.8], [0.7, 0.3]])
    assert served_score("binary", np.array([1, 0]), proba).tolist() == [0.8, 0.3]
    three = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    assert served_score("multiclass", np.array(["b", "a"]), three).tolist() == [0.5, 0.6]
    assert served_score("regression", np.array([12.5, -3.0]), None).tolist() == [12.5, -3.0]
    live = live_metrics("multiclass", ["a", "b", "b"], ["a", "b", "a"], np.array([0.9, 0.8, 0.5]))
    assert live["accuracy"] == pytest.approx(2 / 3)
    assert set(live) == {"f1_macro", "accuracy", "rows"}  # no probabilities of every class were logged


# --- the label config says the task ---------------------------------------------------------------


def _flights_as(tmp_path: Path, **changes) -> Path:
    """flights.yaml with another label (no longer a feature, nor a segment) and the given `section__key` values."""
    raw = yaml.safe_load(FLIGHTS_CONFIG.read_text())
    label = raw["dataset"]["label"] = changes.pop("label")
    for key in ("numeric_features", "categorical_features"):
        raw["dataset"][key] = [c for c in raw["dataset"][key] if c != label["column"]]
    shift = raw["monitoring"]["concept_shift"]
    shift["segments"] = [c for c in shift["segments"] if c != label["column"]]
    raw["training"]["model"] = changes.pop("model", {})
    raw["promotion"]["shadow"]["days"] = 0
    raw["promotion"].pop("metric")
    raw["monitoring"]["performance"].pop("metric")
    for path, value in changes.items():
        section, key = path.split("__")
        raw[section][key] = value
    target = tmp_path / "pipeline.yaml"
    target.write_text(yaml.safe_dump(raw))
    return target


def test_a_regression_or_multiclass_label_gets_its_task_s_defaults(tmp_path):
    regression = load_config(_flights_as(tmp_path, label={"column": "arr_delay", "task": "regression"}))
    assert regression.training.model.path == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert (regression.promotion_metric, regression.performance_metric) == ("rmse", "rmse")
    multiclass = load_config(_flights_as(tmp_path, label={"column": "origin", "task": "multiclass"}))
    assert multiclass.training.model.path == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert (multiclass.promotion_metric, multiclass.performance_metric) == ("roc_auc_ovr", "f1_macro")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"label": {"column": "arr_delay", "task": "multiclass", "threshold": 15}}, "takes no", id="rule"),
        pytest.param({"label": {"column": "arr_delay"}}, "needs one rule", id="binary-without-rule"),
        pytest.param({"label": {"column": "arr_delay", "task": "ordinal"}}, "task", id="unknown-task"),
        pytest.param(
            {"label": {"column": "arr_delay", "task": "regression"}, "promotion__metric": "roc_auc"},
            "promotion.metric 'roc_auc' is not a regression metric",
            id="metric-of-another-task",
        ),
        pytest.param(
            {
                "label": {"column": "origin", "task": "multiclass"},
                "monitoring__performance": {"metric": "roc_auc_ovr"},
            },
            "cannot be measured on served multiclass rows",
            id="performance-not-measurable-live",
        ),
        pytest.param(
            {"label": {"column": "arr_delay", "task": "regression"}, "serving__predict_method": "predict_proba"},
            "no probabilities",
            id="regression-probabilities",
        ),
        pytest.param(
            {"label": {"column": "origin", "task": "multiclass"}, "promotion__shadow": {"days": 3}},
            "shadow",
            id="multiclass-shadow",
        ),
        pytest.param(
            {"label": {"column": "arr_delay", "task": "regression"}, "retraining__strategy": "degradation"},
            "would never retrain",
            id="regression-on-degradation-only",
        ),
    ],
)
def test_a_task_s_impossible_settings_are_refused_naming_the_field(tmp_path, changes, message):
    with pytest.raises(ValidationError, match=message):
        load_config(_flights_as(tmp_path, **changes))


def test_each_task_learns_its_own_target_and_refuses_a_label_it_cannot_read(tmp_path):
    from airloop.training.features import FeatureError, features_and_label

    frame = _tickets(RUN_DATE, np.random.default_rng(0), rows=6)
    team = load_config(_write_tickets(tmp_path, "ticket_team", "{column: team, task: multiclass}"))
    _, target = features_and_label(frame, team.dataset)
    assert target.tolist() == frame["team"].tolist()  # the user's own values
    minutes = load_config(_write_tickets(tmp_path, "m", "{column: minutes_to_close, task: regression}"))
    _, target = features_and_label(frame, minutes.dataset)
    assert target.dtype == "float64"
    wrong = load_config(_write_tickets(tmp_path, "wrong", "{column: team, task: regression}"))
    with pytest.raises(FeatureError, match="label column 'team' cannot be a regression target"):
        features_and_label(frame, wrong.dataset)


def _write_tickets(tmp_path: Path, name: str, label: str) -> Path:
    text = PIPELINE.replace("MODEL", name).replace("NAME", name).replace("LABEL", label)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("SUITE", "tickets.json").replace("PORT", "8070"))
    return path


def test_a_model_that_does_not_fit_the_task_fails_naming_it(tmp_path):
    from airloop.training.model import ModelConfigError, build_pipeline

    config = load_config(
        _flights_as(
            tmp_path,
            label={"column": "arr_delay", "task": "regression"},
            model={"estimator": "sklearn.linear_model.LogisticRegression"},
        )
    )
    with pytest.raises(ModelConfigError, match="LogisticRegression is not a regressor"):
        build_pipeline(config.dataset, config.training.model)


# --- trained, promoted, served and monitored --------------------------------------------------------


def test_a_multiclass_pipeline_trains_and_serves_the_user_s_classes(tickets, in_tmp):
    found = tickets.load_pipelines()
    assert found.names == ["flights", "ticket_minutes", "ticket_team"]
    assert found.broken == []
    decision = pipeline.run_in_process(
        tickets, found.get("ticket_team"), pipeline.RunOptions(), RUN_DATE, Lineage(run_id="team")
    )
    assert (decision.decision, decision.metric) == ("promoted", "roc_auc_ovr")
    assert decision.challenger_score > 0.8  # the teams follow channel and length

    rows = _tickets(RUN_DATE, np.random.default_rng(2), rows=6)
    with _serve(tickets, "ticket-team", in_tmp / "team") as client:
        labels = client.post("/invocations", json=_records(rows))
        proba = client.post("/invocations", json={**_records(rows), "params": {"predict_method": "predict_proba"}})
        csv = client.post("/invocations", content=_csv(rows), headers={"Content-Type": "text/csv"})
        document = client.get("/openapi.json").json()
    assert labels.status_code == 200, labels.text
    assert set(labels.json()["predictions"]) <= set(TEAMS)  # the user's values, not codes
    assert csv.json() == labels.json()
    assert all(len(p) == 3 and abs(sum(p) - 1) < 1e-9 for p in proba.json()["predictions"])
    method = document["components"]["schemas"]["Params"]["properties"]["predict_method"]
    assert method["enum"] == ["predict", "predict_proba"]
    assert "['billing', 'sales', 'tech']" in method["description"]  # the order of the probabilities


def test_a_regression_pipeline_promotes_the_smaller_error_and_serves_values(tickets, in_tmp):
    minutes = tickets.load_pipelines().get("ticket_minutes")

    def run(max_iter: int):  # a PromotionDecision
        options = pipeline.RunOptions(model={"max_iter": max_iter})
        return pipeline.run_in_process(tickets, minutes, options, RUN_DATE, Lineage(run_id=f"iter-{max_iter}"))

    weak = run(1)
    assert (weak.decision, weak.metric) == ("promoted", "rmse")  # no champion yet
    strong = run(100)
    assert strong.decision == "promoted", strong.reason  # a smaller RMSE on the same rows
    assert strong.challenger_score < strong.champion_score
    again = run(2)
    assert again.decision == "rejected", again.reason
    assert again.challenger_score > again.champion_score

    rows = _tickets(RUN_DATE, np.random.default_rng(3), rows=5)
    with _serve(tickets, "ticket-minutes", in_tmp / "minutes") as client:
        values = client.post("/invocations", json=_records(rows))
        proba = client.post("/invocations", json={**_records(rows), "params": {"predict_method": "predict_proba"}})
        csv = client.post("/invocations", content=_csv(rows), headers={"Content-Type": "text/csv"})
        document = client.get("/openapi.json").json()
        version = client.get("/version").json()
    assert values.status_code == 200, values.text
    predicted = values.json()["predictions"]
    assert all(isinstance(v, float) for v in predicted)
    assert np.corrcoef(predicted, rows["minutes_to_close"])[0, 1] > 0.8
    assert csv.json() == values.json()
    assert proba.status_code == 422
    assert "regression model has no probabilities" in proba.json()["message"]
    assert document["components"]["schemas"]["Params"]["properties"]["predict_method"]["enum"] == ["predict"]
    assert str(version["version"]) == strong.version
    served = load_model_dir(in_tmp / "minutes")
    assert served.raw_predict != served.pipeline.predict  # a regressor takes the array path too...
    assert np.array_equal(served.raw_predict(rows[FEATURES]), served.pipeline.predict(rows[FEATURES]))  # ...exactly


@pytest.mark.parametrize(
    ("name", "live", "prediction_drift"),
    [
        ("ticket_team", {"f1_macro", "accuracy"}, ["score", "prediction"]),
        ("ticket_minutes", {"rmse", "mae", "r2"}, ["score"]),
    ],
)
def test_monitoring_measures_each_task_s_quality_and_prediction_drift(tickets, in_tmp, name, live, prediction_drift):
    from evidently.ui.workspace import Workspace
    from mlflow.tracking import MlflowClient

    from airloop.monitoring.labels import write_labels
    from airloop.monitoring.monitor import monitor_window, read_window_record, report_window
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.window import MonitoringWindow

    found = tickets.load_pipelines().get(name)
    pipeline.run_in_process(tickets, found, pipeline.RunOptions(), RUN_DATE, Lineage(run_id=name))
    config = found.config
    now = dt.datetime.now(dt.UTC)
    rows = _tickets(RUN_DATE, np.random.default_rng(4), rows=120)
    with _serve(tickets, config.model_name, in_tmp / name) as client:
        for i, part in enumerate(np.array_split(rows, 4)):
            answer = client.post("/invocations", json=_records(part), headers={"X-Request-ID": f"{name}-{i}"})
            assert answer.status_code == 200, answer.text
            column = config.dataset.label.column
            labels = pd.DataFrame(
                {"request_id": f"{name}-{i}", "row": range(len(part)), column: part[column].to_numpy()}
            )
            write_labels(MonitoringPaths(tickets, config).labels, labels, label_column=column, arrived=now)
    window = MonitoringWindow(start=now - dt.timedelta(hours=1), end=now + dt.timedelta(hours=1))
    record = monitor_window(tickets, config, window, lineage=Lineage(run_id=f"monitor-{name}"), reports=False)

    assert record.served_rows == 120
    assert record.labels_used == 120
    assert live <= set(record.performance)
    assert record.estimated_performance is None  # a calibrated estimate is a binary model's
    assert record.shifts == []  # concept shift is watched on binary labels
    assert record.drift is not None
    assert record.drift["outputs"] == prediction_drift
    measured = {c["column"] for c in record.drift["columns"]}
    assert set(prediction_drift) <= measured
    assert record.mlflow_run_id is not None
    assert record.reports == {}  # the monitoring DAG's `report` task writes them, beside the signals

    reported = report_window(tickets, config, window)
    assert Path(reported.reports["performance"]).exists()  # Evidently's report for the task
    saved = read_window_record(MonitoringPaths(tickets, config), window.id)
    assert saved.reports == reported.reports
    assert saved.evidently_snapshot_ids == reported.evidently_snapshot_ids
    logged = {
        Path(a.path).name for a in MlflowClient(tickets.tracking_uri).list_artifacts(record.mlflow_run_id, "evidently")
    }
    assert logged == {"drift.html", "drift.json", "performance.html", "performance.json"}

    # A rerun (late labels) replaces the window's snapshots in the workspace: none is left behind.
    again = monitor_window(tickets, config, window, lineage=Lineage(run_id=f"monitor-{name}"))
    workspace = Workspace.create(str(MonitoringPaths(tickets, config).workspace))
    assert set(map(str, workspace.list_runs(again.evidently_project_id))) == set(again.evidently_snapshot_ids)
    assert not set(again.evidently_snapshot_ids) & set(reported.evidently_snapshot_ids)
    assert again.mlflow_run_id == record.mlflow_run_id

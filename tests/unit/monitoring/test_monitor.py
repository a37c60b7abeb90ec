"""Monitoring's records and the training run's held-out scores it calibrates with."""

from __future__ import annotations

import datetime as dt
import math

from airloop.monitoring.monitor import WindowRecord
from airloop.monitoring.window import MonitoringWindow
from airloop.training.train import HOLDOUT_ARTIFACT, read_holdout_scores

WINDOW = MonitoringWindow(start=dt.datetime(2026, 3, 8, tzinfo=dt.UTC), end=dt.datetime(2026, 3, 9, tzinfo=dt.UTC))


def test_an_undefined_metric_reads_back_as_nan():
    record = WindowRecord(
        window=WINDOW, model_name="m", computed_at=WINDOW.end, estimated_performance={"roc_auc": math.nan}
    )
    again = WindowRecord.model_validate_json(record.model_dump_json())
    assert math.isnan(again.estimated_performance["roc_auc"])


def test_the_held_out_scores_come_from_the_training_run_and_are_cached(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the file artifact store lives under the working directory
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("e"))
    client.log_dict(run.info.run_id, {"scores": [0.1, 0.9], "labels": [0, 1]}, HOLDOUT_ARTIFACT)
    scores, labels = read_holdout_scores(client, run.info.run_id, tmp_path / "cache")
    assert scores.tolist() == [0.1, 0.9]
    assert labels.tolist() == [0, 1]
    assert (tmp_path / "cache" / "holdout_scores.json").exists()  # the next window reads it from here


def test_a_run_without_held_out_scores_says_so(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("e"))
    assert read_holdout_scores(client, run.info.run_id, tmp_path / "cache") == (None, None)

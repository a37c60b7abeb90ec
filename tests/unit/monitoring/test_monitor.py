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
    found = read_holdout_scores(client, run.info.run_id, tmp_path / "cache")
    assert found.scores.tolist() == [0.1, 0.9]
    assert found.labels.tolist() == [0, 1]
    assert found.classes is None  # a run of a binary model before classes were recorded
    assert (tmp_path / "cache" / "holdout_scores.json").exists()  # the next window reads it from here


def test_a_run_without_held_out_scores_says_so(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("e"))
    assert read_holdout_scores(client, run.info.run_id, tmp_path / "cache") is None


def _reference(config):
    """400 rows of the pipeline's features and a score, drawn at random."""
    import numpy as np
    import pandas as pd

    from airloop.monitoring.monitor import SCORE

    rng = np.random.default_rng(0)
    numeric, categorical = config.dataset.numeric_features, config.dataset.categorical_features
    return pd.DataFrame(
        {
            **{c: rng.normal(10, 2, 400) for c in [*numeric, SCORE]},
            **{c: rng.choice(["a", "b"], 400) for c in categorical},
        }
    )


def _drift_report(settings, config, record: WindowRecord, current) -> None:
    """Evidently's reports of `current` against `_reference`, for WINDOW: saved and in the workspace."""
    import pandas as pd

    from airloop.monitoring.monitor import _evidently_reports
    from airloop.monitoring.paths import MonitoringPaths

    paths = MonitoringPaths(settings, config)
    paths.window_dir(WINDOW).mkdir(parents=True, exist_ok=True)
    _evidently_reports(
        settings,
        config=config,
        paths=paths,
        record=record,
        reference=_reference(config),
        current=current,
        labelled=pd.DataFrame(),
    )


def test_a_column_empty_in_the_window_is_in_the_summary_but_not_in_evidently_s_drift_tests(
    settings, flights_config, caplog
):
    import json

    import numpy as np

    from airloop.monitoring.monitor import SCORE
    from airloop.monitoring.paths import MonitoringPaths

    numeric, categorical = flights_config.dataset.numeric_features, flights_config.dataset.categorical_features
    current = _reference(flights_config)
    current["wind_gust"] = np.nan  # a calm day: no gust reported anywhere
    current[categorical[0]] = None
    paths = MonitoringPaths(settings, flights_config)
    record = WindowRecord(
        window=WINDOW, model_name=flights_config.model_name, model_version="3", computed_at=WINDOW.end
    )

    with caplog.at_level("INFO", logger="airloop.monitoring.monitor"):
        _drift_report(settings, flights_config, record, current)

    snapshot = json.loads(paths.window_dir(WINDOW).joinpath("drift.json").read_text())
    tested = {m["config"]["column"] for m in snapshot["metrics"] if m["config"]["type"].endswith(":ValueDrift")}
    assert tested == {*numeric, SCORE, *categorical} - {"wind_gust", categorical[0]}
    assert f"left out of Evidently's drift tests: wind_gust, {categorical[0]}" in caplog.text
    assert record.evidently_snapshot_ids  # and the report is in the workspace


def test_a_window_with_an_empty_column_publishes_its_other_figures():
    """A calm day (no wind_gust anywhere) has no drift score for it; the window's metrics leave it out.

    Found by `make bench`: the nightly monitoring run failed on `math.isnan(None)` for such a day.
    """
    import numpy as np
    import pandas as pd

    from airloop.monitoring.drift import compute_drift
    from airloop.monitoring.monitor import window_metrics

    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"wind_gust": rng.normal(20, 5, 300), "temp": rng.normal(50, 10, 300)})
    current = reference.assign(wind_gust=np.nan)
    drift = compute_drift(reference, current, numeric=["wind_gust", "temp"], categorical=[])
    record = WindowRecord(window=WINDOW, model_name="m", model_version="1", computed_at=WINDOW.end, served_rows=300)
    record.drift = {**drift.to_dict(), "outputs": []}
    record.performance = {"roc_auc": math.nan}  # too few labels

    metrics = window_metrics(record)

    assert "drift.wind_gust" not in metrics
    assert "perf.roc_auc" not in metrics
    assert metrics["drift.temp"] == drift.to_dict()["columns"][1]["score"]
    assert metrics["served_rows"] == 300
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in metrics.values())


def test_the_workspace_is_written_by_one_task_at_a_time(settings, flights_config):
    """Loading the workspace reads every snapshot, which Evidently writes in place: `backfill_late_labels`
    loading it while the `report` task wrote a snapshot read half a file and failed (CI, test_6)."""
    import threading
    import time

    from airloop.locks import exclusive
    from airloop.monitoring.paths import MonitoringPaths

    paths = MonitoringPaths(settings, flights_config)
    record = WindowRecord(
        window=WINDOW, model_name=flights_config.model_name, model_version="3", computed_at=WINDOW.end
    )
    failed: list[BaseException] = []

    def report() -> None:
        try:
            _drift_report(settings, flights_config, record, _reference(flights_config).head(200))
        except BaseException as err:  # noqa: BLE001 - the thread's failure is the test's
            failed.append(err)

    reporter = threading.Thread(target=report)
    with exclusive(paths.workspace_lock):  # another task's hold
        reporter.start()
        drift = paths.report(WINDOW, "drift")
        deadline = time.monotonic() + 120
        while not drift.with_suffix(".json").exists() and reporter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert drift.with_suffix(".json").exists(), failed  # the report is computed and saved meanwhile
        reporter.join(timeout=5)
        assert reporter.is_alive(), "the workspace was written while another task held it"
        assert not record.evidently_snapshot_ids
    reporter.join(timeout=120)
    assert not failed, failed
    assert len(record.evidently_snapshot_ids) == 1  # once the other task let go


def test_a_retried_backfill_finds_the_windows_its_first_try_recomputed(settings, flights_config):
    """The first try records a window and fails on its reports; the retry must not find it up to date.

    Without this the retry returned no window and the windows' signals were never raised (CI, test_6).
    """
    import pandas as pd

    from airloop.monitoring.labels import write_labels
    from airloop.monitoring.monitor import _save, windows_with_new_labels
    from airloop.monitoring.paths import MonitoringPaths

    paths = MonitoringPaths(settings, flights_config)
    label = flights_config.dataset.label.column
    write_labels(
        paths.labels,
        pd.DataFrame({"request_id": ["a"], "row": [0], label: [30.0]}),
        label_column=label,
        arrived=WINDOW.end,
    )
    later = MonitoringWindow(start=WINDOW.end, end=WINDOW.end + dt.timedelta(days=1))
    for window in (WINDOW, later):  # both complete: every served row has its label
        _save(
            paths,
            WindowRecord(
                window=window,
                model_name=flights_config.model_name,
                model_version="3",
                served_rows=1,
                labels_used=1,
                computed_at=later.end,
                run_id="manual__first",
            ),
        )

    assert windows_with_new_labels(settings, flights_config, later, run_id="manual__first") == [WINDOW]
    assert windows_with_new_labels(settings, flights_config, later, run_id="manual__another") == []
    assert windows_with_new_labels(settings, flights_config, later) == []

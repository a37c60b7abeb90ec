"""Monitor one window of served predictions: drift, data quality and, once labels land, quality.

Verdicts come from every served row (`airloop.monitoring.drift`, Evidently's own tests computed
fast); Evidently's reports, for people, run on a sample of at most `report_sample_rows` rows per
side. Each window keeps its record, reports, an MLflow monitoring run (tagged with the model
version it watched) and snapshots in the Evidently workspace (one project per model). Rerunning a
window overwrites all of them, which is how late labels are folded in.

The record and its MLflow run come first (`monitor_window(..., reports=False)`); the reports can
follow apart (`report_window`), so what the loop decides never waits for them, nor fails with them.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator

from airloop.config import PipelineConfig
from airloop.lineage import TAG_PREFIX, Lineage
from airloop.locks import exclusive
from airloop.monitoring.labels import join_labels, read_labels
from airloop.monitoring.paths import MonitoringPaths
from airloop.monitoring.policy import Degradation, assess
from airloop.monitoring.signals import (
    Calibration,
    SegmentShift,
    drifted_share,
    estimated_roc_auc,
    persistent_shifts,
    segment_shifts,
)
from airloop.monitoring.window import MonitoringWindow, served_rows
from airloop.quiet_logs import quiet_evidently
from airloop.settings import AirloopSettings
from airloop.tasks import live_metrics
from airloop.training.features import feature_frame

log = logging.getLogger(__name__)

# What the inference log records per row (`airloop.tasks.served_score`): its drift is the prediction drift.
SCORE = "score"
PREDICTION = "prediction"  # a multiclass model's predicted class: its distribution's drift is the prediction drift too


class WindowRecord(BaseModel):
    """What monitoring found in one window; `window.json` in the window's folder."""

    window: MonitoringWindow
    model_name: str
    model_version: str | None = None
    served_rows: int = 0
    other_versions: dict[str, int] = Field(default_factory=dict)
    drift: dict[str, Any] | None = None
    quality: dict[str, Any] = Field(default_factory=dict)
    performance: dict[str, float] | None = None
    estimated_performance: dict[str, float] | None = None
    labels_used: int = 0
    labelled_days: list[str] = Field(default_factory=list)
    shifts: list[SegmentShift] = Field(default_factory=list)
    persistent_shifts: list[SegmentShift] = Field(default_factory=list)
    champion_score: float | None = None
    degradations: list[Degradation] = Field(default_factory=list)
    reports: dict[str, str] = Field(default_factory=dict)
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    evidently_project_id: str | None = None
    evidently_snapshot_ids: list[str] = Field(default_factory=list)
    evidently_url: str | None = None
    computed_at: dt.datetime
    run_id: str | None = None  # the orchestrator run that computed it (`Lineage.run_id`)
    note: str = ""

    @field_validator("performance", "estimated_performance", mode="before")
    @classmethod
    def _undefined_is_nan(cls, value: Any) -> Any:
        """A metric undefined on the window (NaN, e.g. one class only) is written as null: read it back as NaN."""
        if isinstance(value, dict):
            return {k: math.nan if v is None else v for k, v in value.items()}
        return value


def read_window_record(paths: MonitoringPaths, window_id: str) -> WindowRecord | None:
    path = paths.windows / window_id / "window.json"
    return WindowRecord.model_validate_json(path.read_text()) if path.exists() else None


def window_records(paths: MonitoringPaths) -> list[WindowRecord]:
    """Every monitored window of the model, oldest first."""
    records = [WindowRecord.model_validate_json(p.read_text()) for p in paths.windows.glob("*/window.json")]
    return sorted(records, key=lambda r: r.window.start)


def monitor_window(
    settings: AirloopSettings,
    config: PipelineConfig,
    window: MonitoringWindow,
    *,
    lineage: Lineage,
    now: dt.datetime | None = None,
    reports: bool = True,
) -> WindowRecord:
    """Compute, record and report one window (idempotent: a rerun overwrites the window).

    Without `reports`, Evidently's reports are left to `report_window`.
    """
    paths = MonitoringPaths(settings, config)
    observed = read_window(settings, config, paths, window)
    record = assess_window(config, observed, earlier=window_records(paths), now=now or dt.datetime.now(dt.UTC))
    record.run_id = lineage.run_id
    record = publish_window(settings, config, paths, record, observed, lineage=lineage)
    return _report(settings, config, paths, record, observed) if reports else record


def report_window(settings: AirloopSettings, config: PipelineConfig, window: MonitoringWindow) -> WindowRecord:
    """Evidently's reports of a window `monitor_window` recorded: beside its record, in the workspace, on its run."""
    paths = MonitoringPaths(settings, config)
    record = read_window_record(paths, window.id)
    if record is None:
        raise MonitoringError(f"window {window} has no record in {paths.windows}: monitor it before reporting it")
    return _report(settings, config, paths, record, read_window(settings, config, paths, window))


class ObservedWindow(BaseModel):
    """What one window holds: the rows its main version served, that version's reference, the labels landed."""

    model_config = {"arbitrary_types_allowed": True}
    window: MonitoringWindow
    model_name: str
    version: str | None = None  # None: no traffic
    other_versions: dict[str, int] = Field(default_factory=dict)
    reference: _Reference | None = None
    current: pd.DataFrame | None = None  # the served features, typed as in training, and the score
    labelled: pd.DataFrame | None = None  # served rows joined with the labels that landed


def read_window(
    settings: AirloopSettings, config: PipelineConfig, paths: MonitoringPaths, window: MonitoringWindow
) -> ObservedWindow:
    """Read the window's served rows (of the version that served most of them), its reference and labels."""
    served = served_rows(paths.inference, window, config.model_name)
    observed = ObservedWindow(window=window, model_name=config.model_name)
    if served.empty:
        return observed
    counts = served["model_version"].value_counts()
    version = str(counts.index[0])
    rows = served[served["model_version"] == version].reset_index(drop=True)
    log.info("window %s: %d rows served by %s v%s", window, len(rows), config.model_name, version)
    current = feature_frame(rows, config.dataset)  # typed as in training, whatever the log's JSON held
    current[SCORE] = rows["score"].astype("float64")
    if config.task == "multiclass":
        current[PREDICTION] = rows["prediction"].astype("object")
    return observed.model_copy(
        update={
            "version": version,
            "other_versions": {str(v): int(n) for v, n in counts.items() if str(v) != version},
            "reference": _reference(settings, config, paths, version),
            "current": current,
            "labelled": join_labels(rows, read_labels(paths.labels, config.dataset.label.column), config.dataset.label),
        }
    )


def assess_window(
    config: PipelineConfig, observed: ObservedWindow, *, earlier: list[WindowRecord], now: dt.datetime
) -> WindowRecord:
    """What the window shows against its reference, and which degradations (pure: no I/O).

    `earlier` are the model's recorded windows: a concept shift is judged over consecutive days.
    """
    record = WindowRecord(window=observed.window, model_name=observed.model_name, computed_at=now)
    reference, current, labelled = observed.reference, observed.current, observed.labelled
    if observed.version is None or reference is None or current is None or labelled is None:
        record.note = "no traffic in this window"
        log.info("window %s: %s", observed.window, record.note)
        return record
    record.model_version = observed.version
    record.served_rows = len(current)
    record.other_versions = observed.other_versions
    record.champion_score = reference.validation_score
    record.quality = _quality(reference.frame, current, config.dataset.features)

    from airloop.monitoring.drift import compute_drift

    if len(current) >= config.monitoring.drift.min_rows:
        numeric, categorical, outputs = _drift_columns(config)
        drift = compute_drift(reference.frame, current, numeric=numeric, categorical=categorical)
        record.drift = {**drift.to_dict(), "outputs": outputs}
        log.info(
            "drift: %d of %d columns drifted (%s)",
            len(drift.drifted_columns()),
            len(drift.columns),
            ", ".join(drift.drifted_columns()) or "none",
        )
    else:
        record.note = (
            f"{len(current)} served rows < monitoring.drift.min_rows {config.monitoring.drift.min_rows}: "
            "no drift verdict"
        )

    if reference.calibration is not None:  # a binary model's calibrated scores estimate its ROC AUC
        record.estimated_performance = {
            "roc_auc": estimated_roc_auc(current[SCORE].to_numpy(), reference.calibration),
            "reference_roc_auc": estimated_roc_auc(reference.holdout_scores, reference.calibration),
        }
    record.labels_used = len(labelled)
    if len(labelled) >= config.monitoring.performance.min_labels:
        record.performance = live_metrics(
            config.task, labelled["target"], labelled["prediction"], labelled["score"].to_numpy()
        )
        log.info("performance on %d labelled rows: %s", len(labelled), _fmt(record.performance))
    elif len(labelled):
        log.info(
            "%d labelled rows so far (< %d): no performance verdict yet",
            len(labelled),
            config.monitoring.performance.min_labels,
        )
    if reference.calibration is not None:  # concept shift is watched on binary labels (see ConceptShiftPolicy)
        record.labelled_days, record.shifts = _segment_shifts(config, labelled, reference.calibration)
    record.persistent_shifts = _persistent(config, earlier, record)
    for shift in record.persistent_shifts:
        log.info(
            "concept shift: %s=%s %.0f%% late against %.0f%% predicted on %d rows (z=%.1f)",
            shift.column,
            shift.value,
            100 * shift.observed_rate,
            100 * shift.expected_rate,
            shift.rows,
            shift.z,
        )
    record.degradations = assess(config.monitoring, drift=record.drift, shifts=record.persistent_shifts)
    return record


def publish_window(
    settings: AirloopSettings,
    config: PipelineConfig,
    paths: MonitoringPaths,
    record: WindowRecord,
    observed: ObservedWindow,
    *,
    lineage: Lineage,
) -> WindowRecord:
    """Replace the window's folder with `window.json`, and its MLflow run (the reports: `_report`)."""
    if observed.reference is None or observed.current is None or observed.labelled is None:
        return _save(paths, record)
    if previous := read_window_record(paths, record.window.id):  # its snapshots serve until reports replace them
        record.evidently_project_id = previous.evidently_project_id
        record.evidently_snapshot_ids = previous.evidently_snapshot_ids
        record.evidently_url = previous.evidently_url
    folder = paths.window_dir(record.window)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _log_to_mlflow(settings, config, record, observed.reference.run_id, lineage)
    return _save(paths, record)


def _report(
    settings: AirloopSettings,
    config: PipelineConfig,
    paths: MonitoringPaths,
    record: WindowRecord,
    observed: ObservedWindow,
) -> WindowRecord:
    """Evidently's reports of the window: saved in its folder, in the workspace and on its MLflow run."""
    if observed.reference is None or observed.current is None or observed.labelled is None:
        return record  # no traffic: nothing to report
    _evidently_reports(
        settings,
        config=config,
        paths=paths,
        record=record,
        reference=observed.reference.frame,
        current=observed.current,
        labelled=observed.labelled,
    )
    if record.mlflow_run_id:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=settings.tracking_uri)
        for html in map(Path, record.reports.values()):
            for path in (html, html.with_suffix(".json")):
                client.log_artifact(record.mlflow_run_id, str(path), artifact_path="evidently")
    log.info(
        "window %s: Evidently's %s report(s) in %s, on MLflow run %s and in the Evidently workspace",
        record.window,
        " and ".join(record.reports),
        paths.window_dir(record.window),
        record.mlflow_run_id,
    )
    return _save(paths, record)


def windows_with_new_labels(
    settings: AirloopSettings, config: PipelineConfig, current: MonitoringWindow, *, run_id: str | None = None
) -> list[MonitoringWindow]:
    """Past windows (ending within `label_lookback_days` of `current`) that more labels reached.

    Those that run `run_id` recomputed already are among them: a retry of the task that recomputes
    them (its first try recorded a window, then failed on its reports) finds what the first try found.
    """
    paths = MonitoringPaths(settings, config)
    labels = read_labels(paths.labels, config.dataset.label.column)
    if labels.empty:
        return []
    since = current.start - dt.timedelta(days=config.monitoring.label_lookback_days)
    stale = []
    for record in window_records(paths):
        if record.window.id == current.id or record.window.end < since or record.model_version is None:
            continue
        if run_id is not None and record.run_id == run_id:
            log.info("window %s: an earlier try of this run recomputed it: recomputing it again", record.window)
            stale.append(record.window)
            continue
        if record.labels_used >= record.served_rows:  # every served row has its label already
            continue
        served = served_rows(paths.inference, record.window, config.model_name)
        served = served[served["model_version"] == record.model_version]
        labelled = len(join_labels(served, labels, config.dataset.label))
        if labelled > record.labels_used:
            log.info(
                "window %s: %d labelled rows now (was %d): recomputing", record.window, labelled, record.labels_used
            )
            stale.append(record.window)
    return stale


def _segment_shifts(
    config: PipelineConfig, labelled: pd.DataFrame, calibration: Calibration
) -> tuple[list[str], list[SegmentShift]]:
    """The window's labelled days and the segments that shifted on each (see `signals.segment_shifts`)."""
    if labelled.empty:
        return [], []
    policy = config.monitoring.concept_shift
    frame = labelled.assign(day=labelled["timestamp"].dt.strftime("%Y-%m-%d"))
    days = sorted(d for d, n in frame["day"].value_counts().items() if n >= policy.min_rows)
    shifts = segment_shifts(
        frame,
        calibration=calibration,
        segments=config.segments,
        min_rows=policy.min_rows,
        min_z=policy.min_z,
        min_effect=policy.min_effect,
    )
    return days, shifts


def _persistent(config: PipelineConfig, records: list[WindowRecord], record: WindowRecord) -> list[SegmentShift]:
    """Segments shifted on at least the last `persist_days` labelled days the same version served, up to this window.

    Up to `retrain_after_days` days are looked at, so each shift says how many days in a row it held.
    """
    earlier = [r for r in records if r.model_version == record.model_version and r.window.end <= record.window.start]
    days: set[str] = set(record.labelled_days)
    shifts = list(record.shifts)
    for previous in earlier:
        days.update(previous.labelled_days)
        shifts.extend(s for s in previous.shifts if s.day not in record.labelled_days)
    policy = config.monitoring.concept_shift
    last = sorted(d for d in days if d <= max(record.labelled_days, default=""))[-policy.retrain_after_days :]
    return persistent_shifts(shifts, last, policy.persist_days)


def _drift_columns(config: PipelineConfig) -> tuple[list[str], list[str], list[str]]:
    """The numeric and categorical columns drift is measured on, and which of them are the model's outputs."""
    outputs = [SCORE, PREDICTION] if config.task == "multiclass" else [SCORE]
    categorical = [*config.dataset.categorical_features, *outputs[1:]]
    return [*config.dataset.numeric_features, SCORE], categorical, outputs


class _Reference(BaseModel):
    model_config = {"arbitrary_types_allowed": True}
    frame: pd.DataFrame
    run_id: str
    validation_score: float | None
    calibration: Calibration | None  # a binary model's (the others' scores are not probabilities of one class)
    holdout_scores: Any


def _reference(settings: AirloopSettings, config: PipelineConfig, paths: MonitoringPaths, version: str) -> _Reference:
    """The version's training snapshot as features, with the version's own scores on it."""
    from mlflow.tracking import MlflowClient

    from airloop.data.snapshot import find_snapshot, read_snapshot
    from airloop.serving.model import cached_model
    from airloop.training.features import features_and_label
    from airloop.training.train import HoldoutScores, holdout_split, read_holdout_scores

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    model_version = client.get_model_version(config.model_name, version)
    tags = model_version.tags
    snapshot_id = tags.get(f"{TAG_PREFIX}snapshot_id")
    if not snapshot_id:
        raise MonitoringError(f"{config.model_name} v{version} has no {TAG_PREFIX}snapshot_id tag: no reference data")
    start, _, end = snapshot_id.partition("_")
    content = tags.get(f"{TAG_PREFIX}snapshot_hash")
    manifest = find_snapshot(
        settings.state.lake, config.dataset.name, dt.date.fromisoformat(start), dt.date.fromisoformat(end), content
    )
    if manifest is None:
        raise MonitoringError(
            f"the training snapshot {snapshot_id} (hash {(content or '?')[:12]}) of {config.model_name} v{version} "
            f"is not in {settings.state.lake}; the data the version was trained on is gone, so no reference"
        )
    snapshot = read_snapshot(manifest)
    frame = feature_frame(snapshot, config.dataset)
    model = cached_model(config.model_name, version, paths.model_dir(version), tracking_uri=settings.tracking_uri)
    predictions, proba = model.predict(frame)
    frame[SCORE] = model.score_of(predictions, proba).astype("float64")
    if config.task == "multiclass":
        frame[PREDICTION] = pd.Series(predictions, dtype="object")
    score = tags.get(f"{TAG_PREFIX}metric.{config.performance_metric}")
    reference = _Reference(
        frame=frame,
        run_id=model_version.run_id or "",
        validation_score=float(score) if score else None,
        calibration=None,
        holdout_scores=None,
    )
    if config.task != "binary":
        return reference
    held_out = read_holdout_scores(client, model_version.run_id, paths.models / f"v{version}-eval")
    if held_out is None:  # a version trained before runs logged their held-out scores
        _, holdout = holdout_split(snapshot, config)
        x_holdout, y_holdout = features_and_label(holdout, config.dataset)
        held_out = HoldoutScores(model.scores(x_holdout.reset_index(drop=True)), y_holdout.to_numpy())
    # Scores of rows the evaluated model never saw calibrate the served scores (estimated
    # performance, concept shift); the refitted model that serves has seen them.
    return reference.model_copy(
        update={
            "calibration": Calibration.fit(held_out.scores, held_out.labels),
            "holdout_scores": held_out.scores,
        }
    )


class MonitoringError(RuntimeError):
    """Monitoring cannot compare the window with its reference; the message says what to fix."""


def _quality(reference: pd.DataFrame, current: pd.DataFrame, features: list[str]) -> dict[str, Any]:
    """Missing shares per feature and categories never seen in training, current vs reference."""
    quality: dict[str, Any] = {"rows": len(current), "reference_rows": len(reference), "columns": {}}
    for column in features:
        entry: dict[str, Any] = {
            "missing_share": float(current[column].isna().mean()),
            "reference_missing_share": float(reference[column].isna().mean()),
        }
        if current[column].dtype == object:
            unseen = set(current[column].dropna()) - set(reference[column].dropna())
            entry["unseen_categories"] = sorted(map(str, unseen))[:20]
        quality["columns"][column] = entry
    return quality


def _evidently_reports(
    settings: AirloopSettings,
    *,
    config: PipelineConfig,
    paths: MonitoringPaths,
    record: WindowRecord,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    labelled: pd.DataFrame,
) -> None:
    """Evidently's drift, data summary and (with labels) the task's quality reports, saved and in the workspace.

    They replace the window's snapshots the record names.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset
    from evidently.ui.workspace import Workspace

    cap = config.monitoring.report_sample_rows
    numeric, categorical, _ = _drift_columns(config)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    tags = [f"window:{record.window.id}", f"version:{record.model_version}"]
    metadata = {"window": record.window.id, "model_version": str(record.model_version)}
    current_rows, reference_rows = _sample(current, cap), _sample(reference, cap)
    # Evidently refuses a column without a value on either side (a calm day has no wind gust): it
    # stays in the data summary and out of the drift tests, as Airloop's drift marks it `no_data`.
    tested = [c for c in [*numeric, *categorical] if _has_values(current_rows[c]) and _has_values(reference_rows[c])]
    if empty := [c for c in [*numeric, *categorical] if c not in tested]:
        log.info("no values in one of the windows, so left out of Evidently's drift tests: %s", ", ".join(empty))
    with quiet_evidently():  # its own harmless arithmetic on an empty column or a one-row bin
        snapshots = {
            "drift": Report([DataDriftPreset(columns=tested), DataSummaryPreset()], metadata=metadata, tags=tags).run(
                current_data=Dataset.from_pandas(current_rows, data_definition=definition),
                reference_data=Dataset.from_pandas(reference_rows, data_definition=definition),
                timestamp=record.window.start,
                name=f"drift {record.window.id} v{record.model_version}",
            )
        }
        if record.performance is not None:
            preset, frame, quality = _quality_report(config, labelled)
            snapshots["performance"] = Report([preset], metadata=metadata, tags=tags).run(
                current_data=Dataset.from_pandas(_sample(frame, cap), data_definition=quality),
                timestamp=record.window.start,
                name=f"performance {record.window.id} v{record.model_version}",
            )
    record.reports = {}
    for name, snapshot in snapshots.items():
        html = paths.report(record.window, name)
        snapshot.save_html(str(html))
        html.with_suffix(".json").write_text(snapshot.json())
        record.reports[name] = str(html)

    with exclusive(paths.workspace_lock):  # another window's task may be writing a snapshot this one would load
        workspace = Workspace.create(str(paths.workspace))
        projects = workspace.search_project(config.model_name)
        project = (
            projects[0]
            if projects
            else workspace.create_project(config.model_name, description=f"Airloop monitoring of {config.model_name}")
        )
        if stale := record.evidently_snapshot_ids:  # those gone already (an earlier try deleted them) are skipped
            for snapshot_id in set(stale) & set(map(str, workspace.list_runs(project.id))):
                workspace.delete_run(project.id, snapshot_id)
        record.evidently_project_id = str(project.id)
        record.evidently_snapshot_ids = [str(workspace.add_run(project.id, s).id) for s in snapshots.values()]
    record.evidently_url = f"{settings.evidently_url}/projects/{project.id}/reports/{record.evidently_snapshot_ids[0]}"


def _quality_report(config: PipelineConfig, labelled: pd.DataFrame) -> tuple[Any, pd.DataFrame, Any]:
    """Evidently's quality preset for the task, the labelled rows it reads, and their data definition."""
    from evidently import BinaryClassification, DataDefinition, MulticlassClassification, Regression
    from evidently.presets import ClassificationPreset, RegressionPreset

    if config.task == "regression":
        frame = labelled[["target", SCORE]].astype("float64")
        definition = DataDefinition(
            regression=[Regression(target="target", prediction=SCORE)], numerical_columns=["target", SCORE]
        )
        return RegressionPreset(), frame, definition
    if config.task == "multiclass":
        frame = labelled[["target", PREDICTION]].astype(str)  # the user's class values, as Evidently's labels
        definition = DataDefinition(
            classification=[MulticlassClassification(target="target", prediction_labels=PREDICTION)],
            categorical_columns=["target", PREDICTION],
        )
        return ClassificationPreset(), frame, definition
    frame = labelled[["target", PREDICTION, SCORE]].copy()
    frame[PREDICTION] = frame[PREDICTION].astype("int64")
    definition = DataDefinition(
        classification=[BinaryClassification(target="target", prediction_labels=PREDICTION, prediction_probas=SCORE)],
        numerical_columns=[SCORE],
        categorical_columns=["target", PREDICTION],
    )
    return ClassificationPreset(), frame, definition


def window_metrics(record: WindowRecord) -> dict[str, float]:
    """The window's figures as MLflow metrics; a score that could not be computed is left out.

    A column with no value in the window (wind_gust on a calm day) has no drift score (None in
    the record), and a metric without enough labels is NaN: neither is a number MLflow can chart.
    """
    metrics: dict[str, float] = {"served_rows": record.served_rows, "labels_used": record.labels_used}
    if record.drift is not None:
        metrics["drift_share"] = drifted_share(record.drift)
        metrics.update({f"drift.{c['column']}": c["score"] for c in record.drift["columns"] if c["score"] is not None})
    metrics.update({f"perf.{k}": v for k, v in (record.performance or {}).items() if not math.isnan(v)})
    estimated = record.estimated_performance or {}
    metrics.update({f"estimated.{k}": v for k, v in estimated.items() if not math.isnan(v)})
    metrics["concept_shift_segments"] = len(record.persistent_shifts)
    metrics.update({f"missing.{k}": v["missing_share"] for k, v in record.quality.get("columns", {}).items()})
    return metrics


def _log_to_mlflow(
    settings: AirloopSettings, config: PipelineConfig, record: WindowRecord, model_run_id: str, lineage: Lineage
) -> None:
    """One monitoring run per window and version, reused by a rerun; linked to the model version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    experiment = mlflow.set_experiment(f"{config.experiment}-monitoring")
    tags = {
        **lineage.tags(),
        f"{TAG_PREFIX}stage": "monitor",
        f"{TAG_PREFIX}window_id": record.window.id,
        f"{TAG_PREFIX}model_name": record.model_name,
        f"{TAG_PREFIX}model_version": str(record.model_version),
        f"{TAG_PREFIX}model_run_id": model_run_id,
        f"{TAG_PREFIX}degraded": str(bool(record.degradations)).lower(),
    }
    found = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{TAG_PREFIX}window_id` = '{record.window.id}' "
        f"and tags.`{TAG_PREFIX}model_version` = '{record.model_version}'",
        max_results=1,
    )
    metrics = window_metrics(record)
    with mlflow.start_run(
        run_id=found[0].info.run_id if found else None,
        run_name=f"monitor {record.window.id} v{record.model_version}",
        experiment_id=experiment.experiment_id,
        tags=tags,
    ) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(
            {"window_start": record.window.start.isoformat(), "window_end": record.window.end.isoformat()}
        )
        mlflow.log_metrics(metrics)
        if record.degradations:
            mlflow.set_tag(f"{TAG_PREFIX}degradation", "; ".join(d.detail for d in record.degradations)[:5000])
        record.mlflow_run_id = run.info.run_id
    client.set_model_version_tag(
        config.model_name, str(record.model_version), f"{TAG_PREFIX}last_monitoring_run", run.info.run_id
    )
    record.mlflow_run_url = settings.mlflow_run_url(experiment.experiment_id, run.info.run_id)


def _has_values(column: pd.Series) -> bool:
    """A value that is neither missing nor infinite (what Evidently's drift tests keep)."""
    return bool(column.replace([np.inf, -np.inf], np.nan).notna().any())


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=0)


def _save(paths: MonitoringPaths, record: WindowRecord) -> WindowRecord:
    """Write `window.json` whole: the report task rewrites it while the Airloop page may read it."""
    folder = paths.window_dir(record.window)
    folder.mkdir(parents=True, exist_ok=True)
    written = folder / "window.json.tmp"
    written.write_text(record.model_dump_json(indent=2))
    written.replace(folder / "window.json")
    return record


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())

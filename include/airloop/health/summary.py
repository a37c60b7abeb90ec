"""One pipeline's model health as a JSON-able summary: what serves, how it does, what the loop did.

Everything is read, nothing is changed: the champion and challenger from the MLflow registry
(aliases, version tags), where the champion serves (its `deploy.*` tags, and what the endpoint
answers now), the last monitoring windows (`MonitoringPaths.windows`), the retraining ledger and
pending signals, and the quarantined batches in the lake. Airflow's runs come through a small
:class:`RunHistory` the caller passes (the UI plugin reads Airflow's database), so this module
imports no Airflow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import BaseModel, Field

from airloop.config import PipelineConfig
from airloop.lineage import TAG_PREFIX
from airloop.pipelines import Pipeline
from airloop.registry import CHALLENGER, CHAMPION
from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)


class PipelineStatus(BaseModel):
    """One pipeline in a line: its DAGs, its champion, and where it serves (`airloop status --json`)."""

    pipeline: str
    config: str
    model_name: str
    dags: dict[str, str]
    serving_port: int
    champion: str | None = None
    serving_url: str | None = None  #: where the champion was deployed (its `deploy.endpoint` tag)
    serving_target: str | None = None
    answering: str | None = None  #: `name vN` the endpoint answers now; None when nothing answers
    registry_error: str | None = None


def pipeline_status(
    settings: AirloopSettings, pipeline: Pipeline, *, registry: Registry | None = None, unreadable: str | None = None
) -> PipelineStatus:
    """The pipeline's champion and serving endpoint, from the registry; the endpoint is asked what it serves.

    With `unreadable` (why the registry cannot be read), the registry is not asked.
    """
    health = _bare_health(settings, pipeline, dt.datetime.now(dt.UTC))
    if unreadable is None:
        _registry_part(
            health, settings=settings, pipeline=pipeline, registry=registry, runs=None, answering=None, limit=0
        )
    else:
        health.registry_error = unreadable
    serving = health.serving
    return PipelineStatus(
        pipeline=pipeline.name,
        config=str(pipeline.path),
        model_name=health.model_name,
        dags=health.dags,
        serving_port=pipeline.serving_port,
        champion=health.champion.version if health.champion else None,
        serving_url=serving.endpoint if serving else None,
        serving_target=serving.target if serving else None,
        answering=serving.answering if serving else None,
        registry_error=health.registry_error,
    )


class AirflowRun(BaseModel):
    """One DAG run, as the UI links to it."""

    dag_id: str
    run_id: str
    state: str | None = None
    run_type: str | None = None
    logical_date: dt.datetime | None = None
    start_date: dt.datetime | None = None
    end_date: dt.datetime | None = None


class RunHistory(Protocol):
    """Airflow's DAG runs, read by whoever can (the UI plugin, from Airflow's database)."""

    def find(self, dag_ids: Sequence[str], run_id: str) -> AirflowRun | None:
        """The run `run_id` of one of `dag_ids`, or None."""
        ...

    def recent(self, dag_id: str, limit: int) -> list[AirflowRun]:
        """The DAG's latest runs, newest first."""
        ...


class Registry(Protocol):
    """The part of `mlflow.tracking.MlflowClient` the summary reads."""

    def get_model_version_by_alias(self, name: str, alias: str) -> Any: ...

    def search_model_versions(self, filter_string: str | None = None) -> Any: ...

    def get_run(self, run_id: str) -> Any: ...


class VersionSummary(BaseModel):
    """A registered version: its scores, the promotion decision on it, and where it came from."""

    version: str
    aliases: list[str] = Field(default_factory=list)
    created_at: dt.datetime | None = None
    metric: str
    score: float | None = None  # the promotion metric on its own held-out rows
    metrics: dict[str, float] = Field(default_factory=dict)
    decision: str | None = None
    decision_reason: str | None = None
    compared_with: str | None = None  # the champion it was scored against, if any
    champion_score: float | None = None  # that champion's score on the same rows
    snapshot_id: str | None = None
    snapshot_hash: str | None = None  # the content of the data it was trained on (see airloop.data.snapshot)
    trigger_reason: str | None = None
    git_commit: str | None = None
    image: str | None = None  # the serving image it was last deployed in
    training_run: AirflowRun | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    mlflow_version_url: str | None = None
    # What it caused, within what the page shows: the monitoring windows it served, and the
    # versions that retrainings started on its signals produced.
    windows: list[str] = Field(default_factory=list)
    retrained_into: list[str] = Field(default_factory=list)


class Serving(BaseModel):
    """Where the champion was deployed (its `deploy.*` tags) and what the endpoint answers now."""

    version: str
    target: str
    endpoint: str | None = None
    image: str | None = None
    image_id: str | None = None
    instance: str | None = None
    since: dt.datetime | None = None
    deployed_by: AirflowRun | None = None
    answering: str | None = None  # `name vN` that GET /version names now; None when nothing answers

    @property
    def answering_version(self) -> str | None:
        return self.answering.rsplit(" v", 1)[-1] if self.answering else None


class WindowPoint(BaseModel):
    """One monitoring window, reduced to what the charts and the table show."""

    id: str
    start: dt.datetime
    end: dt.datetime
    model_version: str | None = None
    served_rows: int = 0
    labels_used: int = 0
    drift_share: float | None = None
    drifted: list[str] = Field(default_factory=list)
    performance: float | None = None  # measured on labelled rows (monitoring.performance.metric)
    estimated: float | None = None  # estimated from the scores alone (CBPE)
    validation_score: float | None = None  # the served version's own held-out score: the floor
    degradations: list[str] = Field(default_factory=list)
    reports: list[str] = Field(default_factory=list)  # saved Evidently reports: drift, performance
    evidently_url: str | None = None
    mlflow_run_url: str | None = None
    note: str = ""


class LedgerRow(BaseModel):
    """One retraining decision or outcome, newest first."""

    at: dt.datetime
    action: str
    kind: str
    key: str = ""
    model_version: str
    reason: str
    outcome: str | None = None
    training_run: AirflowRun | None = None
    produced_version: str | None = None  # the version the training run registered, if the page knows it


class PendingSignal(BaseModel):
    id: str
    window_id: str
    model_version: str
    kind: str
    summary: str
    raised_at: dt.datetime


class QuarantinedBatch(BaseModel):
    """A snapshot that failed validation and was moved out of the lake, with what failed."""

    snapshot_id: str
    pipeline: str  # whose quarantine it is in (two pipelines may read the same data)
    window_start: dt.date | None = None
    window_end: dt.date | None = None
    rows: int | None = None
    evaluated: int | None = None
    failed: list[str] = Field(default_factory=list)
    has_report: bool = False
    blocked_run: AirflowRun | None = None  # the run it stopped, which goes on once it is re-admitted
    attempts: int = 0  # re-admissions tried and failed so far

    @property
    def readmit_command(self) -> str:
        return f"airloop quarantine --pipeline {self.pipeline} readmit {self.snapshot_id} --why '<what was fixed>'"


class PipelineHealth(BaseModel):
    """Everything the Airloop page shows for one pipeline."""

    pipeline: str
    model_name: str
    metric: str  # promotion's
    monitoring_metric: str  # the windows' labelled, estimated and floor scores
    dags: dict[str, str]
    generated_at: dt.datetime
    champion: VersionSummary | None = None
    challenger: VersionSummary | None = None
    versions: list[VersionSummary] = Field(default_factory=list)
    serving: Serving | None = None
    windows: list[WindowPoint] = Field(default_factory=list)
    drift_threshold: float
    drift_raises: bool
    retraining: list[LedgerRow] = Field(default_factory=list)
    pending_signals: list[PendingSignal] = Field(default_factory=list)
    quarantined: list[QuarantinedBatch] = Field(default_factory=list)
    recent_runs: list[AirflowRun] = Field(default_factory=list)
    mlflow_model_url: str | None = None
    registry_error: str | None = None


def pipeline_health(
    settings: AirloopSettings,
    pipeline: Pipeline,
    *,
    registry: Registry | None = None,
    runs: RunHistory | None = None,
    answering: Callable[[str], tuple[str, str] | None] | None = None,
    windows: int = 30,
    ledger_rows: int = 50,
    versions: int = 5,
    now: dt.datetime | None = None,
) -> PipelineHealth:
    """The pipeline's health, read from the registry, the state folder and (if given) Airflow's runs.

    `answering(endpoint)` names the (model, version) an endpoint serves now; by default it asks
    the endpoint's `GET /version`. A registry that fails is reported in `registry_error`, and
    the rest of the page is still there.
    """
    from airloop.monitoring.paths import MonitoringPaths

    config = pipeline.config
    paths = MonitoringPaths(settings, config)
    health = _bare_health(settings, pipeline, now or dt.datetime.now(dt.UTC))
    health.windows = _windows(paths, config, windows)
    health.retraining = _ledger(paths, pipeline, runs, ledger_rows)
    health.pending_signals = _pending(paths, config.model_name)
    health.quarantined = quarantined_batches(settings, pipeline)
    if runs is not None:
        health.recent_runs = [run for dag_id in pipeline.dag_ids for run in runs.recent(dag_id, 5)]
    _registry_part(
        health, settings=settings, pipeline=pipeline, registry=registry, runs=runs, answering=answering, limit=versions
    )
    _follow_lineage(health)
    return health


def _bare_health(settings: AirloopSettings, pipeline: Pipeline, now: dt.datetime) -> PipelineHealth:
    """What the config alone says of the pipeline's health; the rest is read into it."""
    config = pipeline.config
    return PipelineHealth(
        pipeline=pipeline.name,
        model_name=config.model_name,
        metric=config.promotion_metric,
        monitoring_metric=config.performance_metric,
        dags=pipeline.dags,
        generated_at=now,
        drift_threshold=config.monitoring.drift.max_drifted_share,
        drift_raises=config.monitoring.drift.raises,
        mlflow_model_url=settings.mlflow_ui_url(f"models/{quote(config.model_name, safe='')}"),
    )


def _follow_lineage(health: PipelineHealth) -> None:
    """Link each version to what it caused: the windows it served, the retrainings its signals started."""
    shown = {v.version: v for v in (health.champion, health.challenger, *health.versions) if v is not None}
    by_run = {v.training_run.run_id: v.version for v in shown.values() if v.training_run}
    for row in health.retraining:
        if row.training_run is not None:
            row.produced_version = by_run.get(row.training_run.run_id)
    for version in shown.values():
        version.windows = [w.id for w in health.windows if w.model_version == version.version]
        version.retrained_into = sorted(
            {
                row.produced_version
                for row in health.retraining
                if row.model_version == version.version and row.produced_version
            },
            key=int,
        )


def _registry_part(
    health: PipelineHealth,
    *,
    settings: AirloopSettings,
    pipeline: Pipeline,
    registry: Registry | None,
    runs: RunHistory | None,
    answering: Callable[[str], tuple[str, str] | None] | None,
    limit: int,
) -> None:
    from mlflow.exceptions import MlflowException

    if registry is None:
        from mlflow.tracking import MlflowClient

        registry = MlflowClient(tracking_uri=settings.tracking_uri)
    name = pipeline.config.model_name
    try:
        champion = _by_alias(registry, name, CHAMPION)
        challenger = _by_alias(registry, name, CHALLENGER)
        found = registry.search_model_versions(f"name = '{name}'")
    except MlflowException as err:
        health.registry_error = f"the MLflow registry at {settings.tracking_uri} could not be read: {err}"
        log.warning("%s", health.registry_error)
        return
    aliases = {CHAMPION: champion, CHALLENGER: challenger}
    summaries: dict[str, VersionSummary] = {}

    def summary(version: Any) -> VersionSummary:
        number = str(version.version)
        if number not in summaries:
            summaries[number] = _version(
                version, settings=settings, pipeline=pipeline, registry=registry, runs=runs, aliases=aliases
            )
        return summaries[number]

    health.champion = summary(champion) if champion is not None else None
    health.challenger = summary(challenger) if challenger is not None else None
    newest = sorted(found, key=lambda v: int(v.version), reverse=True)[:limit]
    health.versions = [summary(v) for v in newest]
    if champion is not None:
        health.serving = _serving(pipeline, champion, runs, answering or _answering)


def _by_alias(registry: Registry, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return registry.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(err).lower():
            return None
        raise


def _version(
    version: Any,
    *,
    settings: AirloopSettings,
    pipeline: Pipeline,
    registry: Registry,
    runs: RunHistory | None,
    aliases: dict[str, Any],
) -> VersionSummary:
    tags: dict[str, str] = dict(version.tags or {})
    metric = pipeline.config.promotion_metric
    number = str(version.version)
    metrics = {
        key.removeprefix(f"{TAG_PREFIX}metric."): value
        for key, raw in tags.items()
        if key.startswith(f"{TAG_PREFIX}metric.") and (value := _float(raw)) is not None
    }
    named = {alias for alias, held in aliases.items() if held is not None and str(held.version) == number}
    dag_id, run_id = tags.get(f"{TAG_PREFIX}airflow_dag_id"), tags.get(f"{TAG_PREFIX}airflow_run_id")
    training_run = None
    if run_id:
        training_run = (runs.find([dag_id] if dag_id else pipeline.dag_ids, run_id) if runs else None) or (
            AirflowRun(dag_id=dag_id or pipeline.dags["training"], run_id=run_id)
        )
    compared = tags.get(f"{TAG_PREFIX}promotion.champion_version")
    summary = VersionSummary(
        version=number,
        aliases=sorted(named | set(getattr(version, "aliases", None) or [])),
        created_at=_from_millis(getattr(version, "creation_timestamp", None)),
        metric=metric,
        score=metrics.get(metric),
        metrics=metrics,
        decision=tags.get(f"{TAG_PREFIX}promotion.decision"),
        decision_reason=tags.get(f"{TAG_PREFIX}promotion.reason"),
        compared_with=None if compared in (None, "none") else compared,
        champion_score=_float(tags.get(f"{TAG_PREFIX}promotion.champion_score")),
        snapshot_id=tags.get(f"{TAG_PREFIX}snapshot_id"),
        snapshot_hash=tags.get(f"{TAG_PREFIX}snapshot_hash"),
        image=tags.get(f"{TAG_PREFIX}deploy.image") or None,
        trigger_reason=tags.get(f"{TAG_PREFIX}trigger_reason"),
        git_commit=tags.get(f"{TAG_PREFIX}git_commit"),
        training_run=training_run,
        mlflow_run_id=version.run_id or None,
        mlflow_version_url=settings.mlflow_ui_url(
            f"models/{quote(pipeline.config.model_name, safe='')}/versions/{number}"
        ),
    )
    if version.run_id and settings.mlflow_ui_url(""):
        from mlflow.exceptions import MlflowException

        try:
            experiment = registry.get_run(version.run_id).info.experiment_id
        except MlflowException as err:  # the run was deleted; the version stays useful without the link
            log.info("MLflow run %s of version %s: %s", version.run_id, number, err)
        else:
            summary.mlflow_run_url = settings.mlflow_run_url(experiment, version.run_id)
    return summary


def _serving(
    pipeline: Pipeline,
    champion: Any,
    runs: RunHistory | None,
    answering: Callable[[str], tuple[str, str] | None],
) -> Serving | None:
    tags: dict[str, str] = dict(champion.tags or {})
    target = tags.get(f"{TAG_PREFIX}deploy.target")
    if not target:
        return None
    run_id = tags.get(f"{TAG_PREFIX}deploy.airflow_run_id")
    deployed_by = None
    if run_id:
        deployed_by = runs.find(pipeline.dag_ids, run_id) if runs else None
        deployed_by = deployed_by or AirflowRun(dag_id=pipeline.dags["deploy"], run_id=run_id)
    since = _timestamp(tags.get(f"{TAG_PREFIX}deploy.at"))
    if since is None and deployed_by is not None:
        since = deployed_by.end_date or deployed_by.start_date
    endpoint = tags.get(f"{TAG_PREFIX}deploy.endpoint") or None
    live = answering(endpoint) if endpoint else None
    return Serving(
        version=str(champion.version),
        target=target,
        endpoint=endpoint,
        image=tags.get(f"{TAG_PREFIX}deploy.image") or None,
        image_id=tags.get(f"{TAG_PREFIX}deploy.image_id") or None,
        instance=tags.get(f"{TAG_PREFIX}deploy.instance") or None,
        since=since,
        deployed_by=deployed_by,
        answering=f"{live[0]} v{live[1]}" if live else None,
    )


def _answering(endpoint: str) -> tuple[str, str] | None:
    from airloop.deploy.checks import serving_model

    return serving_model(endpoint)


def _windows(paths: Any, config: PipelineConfig, limit: int) -> list[WindowPoint]:
    from airloop.monitoring.monitor import window_records
    from airloop.monitoring.signals import drifted_share

    metric = config.performance_metric
    points = []
    for record in window_records(paths)[-limit:]:
        drift = record.drift
        points.append(
            WindowPoint(
                id=record.window.id,
                start=record.window.start,
                end=record.window.end,
                model_version=record.model_version,
                served_rows=record.served_rows,
                labels_used=record.labels_used,
                drift_share=_finite(drifted_share(drift)) if drift else None,
                drifted=[
                    c["column"]
                    for c in (drift or {}).get("columns", [])
                    if c.get("drifted") and c["column"] not in (drift or {}).get("outputs", [])
                ],
                performance=_finite((record.performance or {}).get(metric)),
                estimated=_finite((record.estimated_performance or {}).get(metric)),
                validation_score=_finite(record.champion_score),
                degradations=[d.detail for d in record.degradations],
                reports=sorted(k for k, path in record.reports.items() if Path(path).exists()),
                evidently_url=record.evidently_url,
                mlflow_run_url=record.mlflow_run_url,
                note=record.note,
            )
        )
    return points


def window_report(settings: AirloopSettings, config: PipelineConfig, window_id: str, kind: str) -> Path | None:
    """The saved Evidently report (`drift` or `performance`) of a monitored window, if there is one."""
    from airloop.monitoring.monitor import MonitoringPaths, read_window_record

    paths = MonitoringPaths(settings, config)
    known = {p.parent.name for p in paths.windows.glob("*/window.json")}
    if window_id not in known:  # only ids monitoring wrote: never a path a request made up
        return None
    record = read_window_record(paths, window_id)
    path = Path(record.reports[kind]) if record and kind in record.reports else None
    return path if path is not None and path.is_file() else None


def quarantine_report(settings: AirloopSettings, config: PipelineConfig, snapshot_id: str) -> Path | None:
    """The validation report (Great Expectations' Data Docs page) of a quarantined batch, if any."""
    from airloop.validation.checks import REPORT_FILE
    from airloop.validation.quarantine import quarantine_dir, quarantined_ids

    if snapshot_id not in quarantined_ids(settings.state.lake, config.dataset.name):
        return None
    path = quarantine_dir(settings.state.lake, config.dataset.name) / snapshot_id / REPORT_FILE
    return path if path.is_file() else None


def _ledger(paths: Any, pipeline: Pipeline, runs: RunHistory | None, limit: int) -> list[LedgerRow]:
    from airloop.monitoring.retraining import RetrainingLedger

    training = pipeline.dags["training"]
    entries = [e for e in RetrainingLedger(paths.ledger).entries() if e.model_name == pipeline.config.model_name]
    rows = []
    for entry in reversed(entries[-limit:]):
        run = None
        if entry.training_run_id:
            run = (runs.find([training], entry.training_run_id) if runs else None) or AirflowRun(
                dag_id=training, run_id=entry.training_run_id
            )
        rows.append(
            LedgerRow(
                at=entry.at,
                action=entry.action,
                kind=entry.kind,
                key=entry.key,
                model_version=entry.model_version,
                reason=entry.reason,
                outcome=entry.outcome,
                training_run=run,
            )
        )
    return rows


def _pending(paths: Any, model_name: str) -> list[PendingSignal]:
    from airloop.monitoring.retraining import SignalStore

    return [
        PendingSignal(
            id=s.id,
            window_id=s.window_id,
            model_version=s.model_version,
            kind=s.kind,
            summary=s.summary,
            raised_at=s.raised_at,
        )
        for s in SignalStore(paths.signals).pending()
        if s.model_name == model_name
    ]


def quarantined_batches(settings: AirloopSettings, pipeline: Pipeline) -> list[QuarantinedBatch]:
    """The pipeline's quarantined batches, newest window first."""
    config = pipeline.config
    from airloop.data.snapshot import MANIFEST_FILE
    from airloop.validation.checks import REPORT_FILE, RESULTS_FILE
    from airloop.validation.quarantine import blocked_run, quarantine_dir, readmissions

    folder = quarantine_dir(settings.state.lake, config.dataset.name)
    tried = [a.snapshot_id for a in readmissions(settings.state.lake, config.dataset.name) if not a.admitted]
    batches = []
    for batch in sorted(p for p in folder.glob("*") if p.is_dir()) if folder.is_dir() else []:
        manifest = _json(batch / MANIFEST_FILE) or {}
        results = _json(batch / RESULTS_FILE) or {}
        failed = []
        for result in results.get("results", []):
            if result.get("success"):
                continue
            expectation = result.get("expectation_config") or {}
            column = (expectation.get("kwargs") or {}).get("column")
            kind = expectation.get("type") or expectation.get("expectation_type") or "expectation"
            failed.append(f"{kind}({column})" if column else kind)
        batches.append(
            QuarantinedBatch(
                snapshot_id=batch.name,
                pipeline=pipeline.name,
                window_start=manifest.get("window_start"),
                window_end=manifest.get("window_end"),
                rows=manifest.get("rows"),
                evaluated=(results.get("statistics") or {}).get("evaluated_expectations"),
                failed=sorted(failed),
                has_report=(batch / REPORT_FILE).is_file(),
                blocked_run=AirflowRun(**blocked.model_dump()) if (blocked := blocked_run(batch)) else None,
                attempts=tried.count(batch.name),
            )
        )
    return sorted(batches, key=lambda b: (b.window_end or dt.date.min, b.snapshot_id), reverse=True)


def _json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return loaded if isinstance(loaded, dict) else None


def _float(raw: str | None) -> float | None:
    if raw is None or raw in ("", "none"):
        return None
    try:
        return _finite(float(raw))
    except ValueError:
        return None


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def _from_millis(millis: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC) if millis else None


def _timestamp(raw: str | None) -> dt.datetime | None:
    if not raw:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

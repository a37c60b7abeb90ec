"""The training pipeline as plain function calls: one function per stage.

DAG tasks call these one line each; :func:`run_in_process` chains them in one Python process
(for a shell, a test, or to measure Airflow's overhead against).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from airloop.config import PipelineConfig, Scalar
from airloop.data.snapshot import SnapshotManifest, write_snapshot
from airloop.data.sources import read_window
from airloop.lineage import Lineage
from airloop.pipelines import Pipeline
from airloop.registry.promotion import CandidateVersion, PromotionDecision, promote_if_better, register_challenger
from airloop.settings import AirloopSettings
from airloop.training.train import TrainResult, train_and_log
from airloop.validation import ValidationSummary
from airloop.validation.checks import validate_snapshot

log = logging.getLogger(__name__)


class RunOptions(BaseModel):
    """What a person may choose for one run (the DAG's Params); None means the config's value."""

    window_days: int | None = Field(default=None, ge=1, le=3660)
    window_end: dt.date | None = None
    #: Values of the config's tunable model parameters (`training.model.tunable`) for this run.
    model: dict[str, Scalar] = Field(default_factory=dict)
    force_promote: bool = False
    require_approval: bool = False  # ask a person even when the config does not (never the other way)
    dry_run: bool = False  # say what the run would do (airloop.plan), change nothing

    @classmethod
    def from_params(cls, params: Mapping[str, Any], config: PipelineConfig) -> RunOptions:
        """A DAG run's Params: the options above, and the config's tunable model parameters it sets."""
        chosen = {k: v for k, v in params.items() if k in cls.model_fields and k != "model"}
        chosen["model"] = {k: params[k] for k in config.training.model.tunable if params.get(k) is not None}
        return cls.model_validate(chosen)


def pipeline_config(pipeline: Pipeline, options: RunOptions) -> PipelineConfig:
    """The pipeline's config file with the run's choices laid over it."""
    overrides: dict[str, Any] = {"training": {"model": dict(options.model)}}
    if options.window_days is not None:
        overrides["training"]["window_days"] = options.window_days
    if options.require_approval:
        overrides["promotion"] = {"approval": "required"}
    return pipeline.with_overrides(overrides)


def data_window(config: PipelineConfig, options: RunOptions, run_date: dt.date) -> tuple[dt.date, dt.date]:
    """[start, end) of the data a run trains on: the `window_days` days before its date."""
    end = options.window_end or run_date
    return end - dt.timedelta(days=config.training.window_days), end


def ingest(settings: AirloopSettings, config: PipelineConfig, start: dt.date, end: dt.date) -> SnapshotManifest:
    """Read [start, end) from the source and write its snapshot."""
    frame, origin = read_window(config.dataset.source, home=settings.home, start=start, end=end)
    log.info("read %d rows for %s to %s (end exclusive) from %s", len(frame), start, end, origin)
    return write_snapshot(
        frame, lake=settings.state.lake, dataset=config.dataset.name, start=start, end=end, source=origin
    )


def validate(
    settings: AirloopSettings, config: PipelineConfig, snapshot: SnapshotManifest, lineage: Lineage
) -> ValidationSummary:
    """Check the snapshot with the dataset's expectation suite; quarantine it and raise on failure."""
    return validate_snapshot(
        config, snapshot, lake=settings.state.lake, tracking_uri=settings.tracking_uri, lineage=lineage
    )


def train(
    settings: AirloopSettings, config: PipelineConfig, validated: ValidationSummary, lineage: Lineage
) -> TrainResult:
    """Fit, score and log the model on the validated snapshot."""
    return train_and_log(
        config,
        validated.snapshot,
        tracking_uri=settings.tracking_uri,
        lineage=lineage,
        validation_run_id=validated.mlflow_run_id,
    )


def register(
    settings: AirloopSettings, config: PipelineConfig, trained: TrainResult, lineage: Lineage
) -> CandidateVersion:
    """Register the trained model as the `challenger`."""
    return register_challenger(config, trained, tracking_uri=settings.tracking_uri, lineage=lineage)


def promote(
    settings: AirloopSettings, config: PipelineConfig, candidate: CandidateVersion, *, force: bool
) -> PromotionDecision:
    """Make the challenger `champion` if it wins (or is forced)."""
    return promote_if_better(config, candidate, tracking_uri=settings.tracking_uri, force=force)


def run_in_process(
    settings: AirloopSettings,
    pipeline: Pipeline,
    options: RunOptions,
    run_date: dt.date,
    lineage: Lineage | None = None,
) -> PromotionDecision:
    """All of a pipeline's stages in this process, in order; returns the promotion decision."""
    lineage = lineage or Lineage()
    config = pipeline_config(pipeline, options)
    start, end = data_window(config, options, run_date)
    snapshot = ingest(settings, config, start, end)
    validated = validate(settings, config, snapshot, lineage)
    trained = train(settings, config, validated, lineage)
    candidate = register(settings, config, trained, lineage)
    return promote(settings, config, candidate, force=options.force_promote)


def train_from_json(validated: dict[str, Any], params_json: str, *, dag_id: str, run_id: str) -> dict[str, Any]:
    """`train` with plain JSON in and out, for a pod that has no Airflow context to read."""
    import json

    from airloop.settings import load_settings

    params = json.loads(params_json)
    settings = load_settings()
    pipeline = settings.load_pipelines().by_dag(dag_id)
    options = RunOptions.from_params(params, pipeline.config)
    lineage = Lineage(dag_id=dag_id, run_id=run_id, reason=params.get("reason"))
    config = pipeline_config(pipeline, options)
    return train(settings, config, ValidationSummary.model_validate(validated), lineage).model_dump(mode="json")

"""Train on a validated snapshot and log everything to MLflow: params, metrics, data, model."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from airloop.config import ModelConfig, PipelineConfig
from airloop.data.snapshot import SnapshotManifest, read_snapshot
from airloop.lineage import TAG_PREFIX, Lineage
from airloop.serving.model import model_metadata
from airloop.training.features import features_and_label, time_split

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """Too little labelled data to train a model worth comparing."""


class TrainResult(BaseModel):
    """The MLflow run and logged model a training produced; the XCom passed to register."""

    mlflow_run_id: str
    model_uri: str
    metrics: dict[str, float]
    snapshot: SnapshotManifest
    reused: bool = False


HOLDOUT_ARTIFACT = "evaluation/holdout_scores.json"  # a training run's held-out scores and labels
#: The run parameter holding when the served pipeline's latest training row is from (ISO 8601).
FITTED_THROUGH_PARAM = "fitted_through"


def holdout_split(frame: pd.DataFrame, config: PipelineConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and held-out rows of a snapshot; deterministic, so promotion sees the same."""
    return time_split(frame, config.dataset.time_column, config.training.holdout_fraction)


class FittedModel(BaseModel):
    """A fitted pipeline and its held-out evaluation: what training produces before it is logged."""

    model_config = {"arbitrary_types_allowed": True}
    pipeline: Any
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    holdout_scores: Any  # np.ndarray of the task's outputs on the held-out rows (`airloop.tasks.outputs`)
    holdout_labels: Any  # np.ndarray of their targets
    holdout_classes: Any = None  # the evaluated model's classes (a classifier), the order of a multiclass output
    fitted_through: dt.datetime  #: the time of the latest row the served pipeline was fitted on


def fit_and_evaluate(frame: pd.DataFrame, config: PipelineConfig, *, name: str = "the data") -> FittedModel:
    """Fit the pipeline on the earlier rows of `frame`, score it on the latest, refit on all (no MLflow).

    The one training procedure: `train_and_log` logs what this returns; the loop's replay calls it
    directly. Raises `TrainingDataError` when there is too little labelled data.
    """
    return fit_split(*holdout_split(frame, config), config, name=name)


def fit_split(
    train_rows: pd.DataFrame, holdout_rows: pd.DataFrame, config: PipelineConfig, *, name: str = "the data"
) -> FittedModel:
    """`fit_and_evaluate` on a split already made (`holdout_split`).

    The features of both parts are one frame and the fits take views of it, so the refit on all
    rows copies no data (at 10M rows a copy of the features is about 1.5 GB).
    """
    from airloop.tasks import evaluate, outputs
    from airloop.training.model import build_pipeline

    x_train, y_train = features_and_label(train_rows, config.dataset)
    x_holdout, y_holdout = features_and_label(holdout_rows, config.dataset)
    if len(x_train) < config.training.min_rows or y_train.nunique() < 2:
        kind = "distinct values" if config.task == "regression" else "classes"
        raise TrainingDataError(
            f"{name} has {len(x_train)} labelled training rows with {y_train.nunique()} {kind}; "
            f"need at least {config.training.min_rows} rows and 2 {kind}. "
            "Widen the data window (Param window_days) or check the source."
        )
    cut = len(x_train)
    x_all = pd.concat([x_train, x_holdout], ignore_index=True)
    y_all = pd.concat([y_train, y_holdout], ignore_index=True)
    del x_train, x_holdout
    # What the weights and the fitted-through time need of the rows: their time and label.
    kept = [config.dataset.time_column, config.dataset.label.column]
    rows_all = pd.concat([train_rows[kept], holdout_rows[kept]])
    pipeline = build_pipeline(config.dataset, config.training.model)
    log.info("fitting on %d rows, %d features; holding out %d rows", cut, x_all.shape[1], len(x_all) - cut)
    served, fitted_rows = pipeline, rows_all.iloc[: len(train_rows)]
    pipeline.fit(x_all.iloc[:cut], y_all.iloc[:cut], **_weights(pipeline, fitted_rows, config))
    scores = outputs(config.task, pipeline, x_all.iloc[cut:])
    classes = getattr(pipeline, "classes_", None)
    if config.training.refit:
        # Scored on the latest days it never saw, then refitted with them: the held-out score judges
        # the procedure, and the model that serves is not six days behind its own data.
        log.info("refitting on all %d rows of the window", len(x_all))
        del pipeline, served
        served, fitted_rows = build_pipeline(config.dataset, config.training.model), rows_all
        served.fit(x_all, y_all, **_weights(served, fitted_rows, config))
    return FittedModel(
        pipeline=served,
        metrics=evaluate(config.task, y_holdout, scores, classes),
        train_rows=cut,
        holdout_rows=len(x_all) - cut,
        holdout_scores=scores,
        holdout_labels=y_holdout.to_numpy(),
        holdout_classes=classes,
        fitted_through=pd.to_datetime(fitted_rows[config.dataset.time_column], utc=True).max().to_pydatetime(),
    )


def _input_example(train_rows: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The features of the first five labelled training rows (the model's input example)."""
    labelled = train_rows[config.dataset.label.column].notna().to_numpy()
    return features_and_label(train_rows.iloc[labelled.nonzero()[0][:5]], config.dataset)[0]


def _weights(pipeline: Any, rows: pd.DataFrame, config: PipelineConfig) -> dict[str, Any]:
    """`fit` keyword arguments weighing the labelled rows by age (`training.recency_half_life_days`), if set."""
    from airloop.training.model import sample_weight_key

    half_life = config.training.recency_half_life_days
    if half_life is None:
        return {}
    key = sample_weight_key(pipeline, "training.recency_half_life_days")
    labelled = rows[rows[config.dataset.label.column].notna()]
    times = pd.to_datetime(labelled[config.dataset.time_column], utc=True)
    age_days = (times.max() - times).dt.total_seconds().to_numpy() / 86_400
    return {key: 0.5 ** (age_days / half_life)}


def params_digest(params: ModelConfig, config: PipelineConfig) -> str:
    payload = params.model_dump_json() + config.dataset.model_dump_json() + config.training.model_dump_json()
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def train_and_log(
    config: PipelineConfig,
    snapshot: SnapshotManifest,
    *,
    tracking_uri: str,
    lineage: Lineage,
    validation_run_id: str | None = None,
) -> TrainResult:
    """Fit the pipeline on the snapshot's earlier rows, score it on the latest, log the run.

    A run of the same orchestrator run over the same data and parameters is reused, so a
    rerun of the task trains nothing new.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from airloop.training.model import skops_trusted_types

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(config.experiment)
    params = config.training.model
    digest = params_digest(params, config)
    tags = {
        **lineage.tags(),
        f"{TAG_PREFIX}stage": "train",
        f"{TAG_PREFIX}snapshot_id": snapshot.snapshot_id,
        f"{TAG_PREFIX}snapshot_hash": snapshot.content_hash,
        f"{TAG_PREFIX}params_digest": digest,
    }
    if validation_run_id:
        tags[f"{TAG_PREFIX}validation_run_id"] = validation_run_id

    client = MlflowClient()
    if lineage.run_id and (previous := _finished_run(client, experiment.experiment_id, tags)):
        log.info("reusing MLflow run %s: same Airflow run, data and parameters", previous.info.run_id)
        return TrainResult(
            mlflow_run_id=previous.info.run_id,
            model_uri=previous.data.tags[f"{TAG_PREFIX}model_uri"],
            metrics=dict(previous.data.metrics),
            snapshot=snapshot,
            reused=True,
        )

    train_rows, holdout_rows = holdout_split(read_snapshot(snapshot, config.dataset.training_columns), config)
    fitted = fit_split(train_rows, holdout_rows, config, name=f"snapshot {snapshot.snapshot_id}")

    with mlflow.start_run(run_name=f"train {snapshot.snapshot_id}", tags=tags) as run:
        mlflow.log_params(
            {
                "model": params.path,
                **params.parameters,
                "window_start": snapshot.window_start,
                "window_end": snapshot.window_end,
                "train_rows": fitted.train_rows,
                "holdout_rows": len(holdout_rows),
                "features": ",".join(config.dataset.features),
                "refit": config.training.refit,
                FITTED_THROUGH_PARAM: fitted.fitted_through.isoformat(),
            }
        )
        data_digest = snapshot.content_hash[:32]  # MLflow keeps at most 36 characters of a digest
        source = str(snapshot.data_path)
        for part, rows, context in (("train", train_rows, "training"), ("holdout", holdout_rows, "evaluation")):
            dataset = from_pandas(
                rows,
                source=source,
                targets=config.dataset.label.column,
                name=f"{snapshot.dataset}-{snapshot.snapshot_id}-{part}",
                digest=data_digest,
            )
            mlflow.log_input(dataset, context=context)

        pipeline, metrics = fitted.pipeline, fitted.metrics
        mlflow.log_metrics(metrics)
        log.info("held-out metrics: %s", _fmt(metrics))
        # What monitoring calibrates the served scores with: scores of rows the evaluated model never saw.
        mlflow.log_dict(
            HoldoutScores(fitted.holdout_scores, fitted.holdout_labels, fitted.holdout_classes).as_json(),
            HOLDOUT_ARTIFACT,
        )

        example = _input_example(train_rows, config)
        model_info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict(example)),
            input_example=example,
            skops_trusted_types=skops_trusted_types(pipeline),
            pip_requirements=_pip_requirements(),
            metadata=model_metadata(config.serving.predict_method, config.task),
        )
        mlflow.set_tag(f"{TAG_PREFIX}model_uri", model_info.model_uri)
        log.info("logged the model %s in MLflow run %s", model_info.model_uri, run.info.run_id)
    return TrainResult(
        mlflow_run_id=run.info.run_id, model_uri=model_info.model_uri, metrics=metrics, snapshot=snapshot
    )


def _finished_run(client: Any, experiment_id: str, tags: dict[str, str]) -> Any:
    keys = ["airflow_run_id", "snapshot_hash", "params_digest", "stage"]
    clauses = [f"tags.`{TAG_PREFIX}{k}` = '{tags[TAG_PREFIX + k]}'" for k in keys]
    runs = client.search_runs(
        [experiment_id],
        " and ".join([*clauses, "attributes.status = 'FINISHED'"]),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs and f"{TAG_PREFIX}model_uri" in runs[0].data.tags else None


def _pip_requirements() -> list[str]:
    # Named explicitly: MLflow's inference of requirements loads the model in a subprocess.
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow-skinny", "scikit-learn", "skops", "pandas", "numpy")]


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())


@dataclass(frozen=True)
class HoldoutScores:
    """A training run's outputs on its held-out rows (`HOLDOUT_ARTIFACT`), their targets, and the model's classes."""

    scores: Any  # np.ndarray: `airloop.tasks.outputs` of the evaluated model
    labels: Any  # np.ndarray
    classes: Any = None  # np.ndarray, or None (a regressor, or a run that did not record them)

    def matches(self, labels: Any) -> bool:
        """These are the scores of exactly these held-out rows."""
        return len(self.labels) == len(labels) and bool((self.labels == labels).all())

    def as_json(self) -> dict[str, Any]:
        found = {"scores": self.scores.tolist(), "labels": self.labels.tolist()}
        return found if self.classes is None else {**found, "classes": list(self.classes.tolist())}


def read_holdout_scores(client: Any, run_id: str | None, into: Path) -> HoldoutScores | None:
    """A training run's held-out scores (`HOLDOUT_ARTIFACT`), or None if it has none."""
    import json

    import numpy as np
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    target = into / Path(HOLDOUT_ARTIFACT).name
    if not target.exists():
        into.mkdir(parents=True, exist_ok=True)
        try:  # a single file lands in `into` under its own name, whatever folder it had in the run
            target = Path(client.download_artifacts(run_id, HOLDOUT_ARTIFACT, str(into)))
        except (MlflowException, OSError):
            return None
    found = json.loads(target.read_text())
    classes = found.get("classes")
    return HoldoutScores(
        np.asarray(found["scores"], dtype="float64"),
        np.asarray(found["labels"]),
        None if classes is None else np.asarray(classes),
    )

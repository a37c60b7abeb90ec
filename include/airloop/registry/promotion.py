"""Register the newest model as `challenger`; move `champion` only when it wins.

The alias `champion` is the source of truth for what should be serving.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

from pydantic import BaseModel

from airloop.config import PipelineConfig
from airloop.lineage import TAG_PREFIX, Lineage
from airloop.registry import CHALLENGER, CHAMPION
from airloop.training.train import TrainResult, holdout_split

log = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """The champion could not be compared with the challenger."""


class CandidateVersion(BaseModel):
    """A registered model version and the training that produced it."""

    model_name: str
    version: str
    train: TrainResult


class PromotionDecision(BaseModel):
    model_name: str
    version: str
    decision: Literal["promoted", "rejected"]
    reason: str
    metric: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None


def challenger_wins(challenger_score: float, champion_score: float, config: PipelineConfig) -> bool:
    """The promotion rule: the challenger beats the champion on the same rows by `min_improvement`."""
    margin = challenger_score - champion_score
    return margin >= config.promotion.min_improvement and not math.isnan(margin)


def register_challenger(
    config: PipelineConfig, train: TrainResult, *, tracking_uri: str, lineage: Lineage
) -> CandidateVersion:
    """Register the trained model (once per training run) and point `challenger` at it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    name = config.model_name
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{train.mlflow_run_id}'")
    if existing:
        version = existing[0]
        log.info(
            "model %s version %s is already registered for MLflow run %s", name, version.version, train.mlflow_run_id
        )
    else:
        tags = {
            **lineage.tags(),
            f"{TAG_PREFIX}snapshot_id": train.snapshot.snapshot_id,
            f"{TAG_PREFIX}snapshot_hash": train.snapshot.content_hash,
            **{f"{TAG_PREFIX}metric.{k}": f"{v:.6f}" for k, v in train.metrics.items()},
        }
        version = mlflow.register_model(train.model_uri, name, tags=tags)
        log.info("registered model %s version %s", name, version.version)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return CandidateVersion(model_name=name, version=str(version.version), train=train)


def promote_if_better(
    config: PipelineConfig, candidate: CandidateVersion, *, tracking_uri: str, force: bool = False
) -> PromotionDecision:
    """Score the champion on the challenger's held-out rows; move `champion` if the challenger wins.

    It wins when there is no champion, when `force` is set, or when its score beats the
    champion's by at least `promotion.min_improvement`. The decision and both scores are tagged
    on the challenger's version.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    name, metric = config.model_name, config.promotion.metric
    challenger_score = candidate.train.metrics[metric]
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(err).lower():
            raise
        champion = None

    champion_score: float | None = None
    if champion is None:
        promote, reason = True, "no champion yet"
    elif str(champion.version) == candidate.version:
        promote, reason = True, "already the champion"
        champion_score = challenger_score
    else:
        champion_score = _score_on_holdout(config, f"models:/{name}/{champion.version}", candidate)
        wins = challenger_wins(challenger_score, champion_score, config)
        verdict = f"{metric} {challenger_score:.4f} vs champion v{champion.version} {champion_score:.4f}"
        if force and not wins:
            promote, reason = True, f"forced (force_promote): {verdict}"
        else:
            promote = wins
            reason = (
                f"{'beats' if wins else 'does not beat'} champion by >= {config.promotion.min_improvement}: {verdict}"
            )

    decision = PromotionDecision(
        model_name=name,
        version=candidate.version,
        decision="promoted" if promote else "rejected",
        reason=reason,
        metric=metric,
        challenger_score=challenger_score,
        champion_version=str(champion.version) if champion else None,
        champion_score=champion_score,
    )
    tags = {
        "promotion.decision": decision.decision,
        "promotion.reason": reason,
        "promotion.metric": metric,
        "promotion.challenger_score": f"{challenger_score:.6f}",
        "promotion.champion_version": decision.champion_version or "none",
        "promotion.champion_score": "none" if champion_score is None else f"{champion_score:.6f}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, candidate.version, TAG_PREFIX + key, value)
    if promote:
        client.set_registered_model_alias(name, CHAMPION, candidate.version)
    log.info("model %s version %s %s: %s", name, candidate.version, decision.decision, reason)
    return decision


def _score_on_holdout(config: PipelineConfig, champion_uri: str, candidate: CandidateVersion) -> float:
    import mlflow

    from airloop.data.snapshot import read_snapshot
    from airloop.training.features import features_and_label
    from airloop.training.model import classification_metrics

    _, holdout_rows = holdout_split(read_snapshot(candidate.train.snapshot), config)
    features, label = features_and_label(holdout_rows, config.dataset)
    try:
        champion = mlflow.sklearn.load_model(champion_uri)
        proba = champion.predict_proba(features)[:, 1]
    except Exception as err:
        raise PromotionError(
            f"champion {champion_uri} could not score the held-out data ({err}); its inputs may "
            "differ from this dataset's. Rerun with Param force_promote=true to replace it."
        ) from err
    return classification_metrics(label, proba)[config.promotion.metric]


def champion_version(model_name: str, *, tracking_uri: str) -> str | None:
    """The version the `champion` alias points at, or None when there is none yet."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return str(MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(err).lower():
            raise
        return None


def decision_of_run(model_name: str, airflow_run_id: str, *, tracking_uri: str) -> tuple[str, str] | None:
    """(version, promotion decision) of the version an Airflow run registered, or None if it registered none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for version in client.search_model_versions(f"name = '{model_name}'"):
        if version.tags.get(f"{TAG_PREFIX}airflow_run_id") == airflow_run_id:
            return str(version.version), version.tags.get(f"{TAG_PREFIX}promotion.decision", "undecided")
    return None

"""Register the newest model as `challenger`; decide whether it should replace the `champion`.

The alias `champion` is the source of truth for what should be serving. In the training DAG
the alias moves only once the winner proved servable on the target
(`airloop.deploy.service.deploy_and_promote`); :func:`promote_if_better` moves it at once, for
in-process runs where nothing serves.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from airloop.config import PipelineConfig
from airloop.lineage import TAG_PREFIX, Lineage
from airloop.quiet_logs import printed_as_log
from airloop.registry import CHALLENGER
from airloop.registry.versions import DECISION
from airloop.training.train import TrainResult, holdout_split

if TYPE_CHECKING:
    import numpy as np

    from airloop.registry.versions import ModelRegistry

log = logging.getLogger(__name__)

#: The `airloop.promotion.decision` tag: `promoted` only once `champion` names the version.
Decision = Literal["promoted", "rejected", "not_servable"]


class PromotionError(RuntimeError):
    """The champion could not be compared with the challenger."""


class CandidateVersion(BaseModel):
    """A registered model version and the training that produced it."""

    model_name: str
    version: str
    train: TrainResult


class Evaluation(BaseModel):
    """The challenger against the champion on the same held-out rows; nothing moved yet."""

    model_name: str
    version: str
    promote: bool
    reason: str
    metric: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    rows: int | None = None  # the held-out rows both were scored on (None: no champion to compare with)

    def decided(self, decision: Decision, registry: ModelRegistry, *, reason: str | None = None) -> PromotionDecision:
        """Tag the final decision on the challenger's version and return it."""
        final = PromotionDecision(**self.model_dump(), decision=decision)
        if reason is not None:
            final.reason = reason
        registry.record_decision(self.version, decision, final.reason)
        log.info("model %s version %s %s: %s", self.model_name, self.version, decision, final.reason)
        return final


class PromotionDecision(Evaluation):
    """The evaluation and what became of it."""

    decision: Decision


#: Fewer held-out rows than this after the champion's own training data: all held-out rows are used.
MIN_UNSEEN_ROWS = 200


def unseen_by_champion(times: Any, fitted_through: dt.datetime | None) -> np.ndarray:
    """Which held-out rows (by their times) come after the latest row the champion was fitted on.

    A champion refitted on its whole window (`training.refit`) has seen the first of a younger
    challenger's held-out days: scored on them it looks better than it is, and a challenger that
    should win loses. So both are scored on the rows neither was fitted on. Too few such rows
    (a challenger trained on the champion's own days): every held-out row, as before.
    """
    import numpy as np
    import pandas as pd

    stamps = pd.to_datetime(pd.Series(times), utc=True)
    if fitted_through is None:
        return np.ones(len(stamps), dtype=bool)
    unseen = (stamps > pd.Timestamp(fitted_through)).to_numpy()
    return unseen if unseen.sum() >= MIN_UNSEEN_ROWS else np.ones(len(stamps), dtype=bool)


def challenger_wins(challenger_score: float, champion_score: float, config: PipelineConfig) -> bool:
    """The promotion rule: the challenger beats the champion on the same rows by `min_improvement`,
    in the metric's own direction (a smaller RMSE or log loss is better)."""
    from airloop.tasks import improvement

    margin = improvement(config.promotion_metric, challenger_score, champion_score)
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
        with printed_as_log(log):  # MLflow prints "Created version ..." to stderr
            version = mlflow.register_model(train.model_uri, name, tags=tags)
        log.info("registered model %s version %s", name, version.version)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return CandidateVersion(model_name=name, version=str(version.version), train=train)


def evaluate_challenger(
    config: PipelineConfig, candidate: CandidateVersion, *, tracking_uri: str, force: bool = False
) -> Evaluation:
    """Score the champion on the challenger's held-out rows: should the challenger replace it?

    Yes when there is no champion, when `force` is set, or when the challenger's score beats the
    champion's by at least `promotion.min_improvement`. Both scores are tagged on the
    challenger's version; a loser is tagged `promotion.decision=rejected` at once, a winner once
    it proved servable (or not).
    """
    from airloop.registry.versions import ModelRegistry

    registry = ModelRegistry(config.model_name, tracking_uri=tracking_uri)
    name, metric = config.model_name, config.promotion_metric
    challenger_score = candidate.train.metrics[metric]
    champion = registry.champion()

    champion_score: float | None = None
    rows: int | None = None
    if champion is None:
        promote, reason = True, "no champion yet"
    elif champion == candidate.version:
        promote, reason = True, "already the champion"
        champion_score = challenger_score
    else:
        challenger_score, champion_score, rows = _scores_on_holdout(config, registry, champion, candidate, tracking_uri)
        wins = challenger_wins(challenger_score, champion_score, config)
        verdict = f"{metric} {challenger_score:.4f} vs champion v{champion} {champion_score:.4f}"
        if force and not wins:
            promote, reason = True, f"forced (force_promote): {verdict}"
        else:
            promote = wins
            reason = (
                f"{'beats' if wins else 'does not beat'} champion by >= {config.promotion.min_improvement}: {verdict}"
            )

    evaluation = Evaluation(
        model_name=name,
        version=candidate.version,
        promote=promote,
        reason=reason,
        metric=metric,
        challenger_score=challenger_score,
        champion_version=champion,
        champion_score=champion_score,
        rows=rows,
    )
    registry.record_evaluation(
        candidate.version,
        reason=reason,
        metric=metric,
        challenger_score=challenger_score,
        champion_version=champion,
        champion_score=champion_score,
    )
    if not promote:
        evaluation.decided("rejected", registry)
        if champion is not None and config.promotion.shadow.days:
            from airloop.registry.shadow import start_shadow

            start_shadow(registry, candidate.version, champion)
    else:  # decided once it proved servable (or not)
        log.info("model %s version %s should replace the champion: %s", name, candidate.version, reason)
    return evaluation


def promote_if_better(
    config: PipelineConfig, candidate: CandidateVersion, *, tracking_uri: str, force: bool = False
) -> PromotionDecision:
    """Evaluate the challenger and move `champion` to it at once if it wins (nothing serves to check)."""
    from airloop.registry.versions import ModelRegistry

    evaluation = evaluate_challenger(config, candidate, tracking_uri=tracking_uri, force=force)
    registry = ModelRegistry(config.model_name, tracking_uri=tracking_uri)
    if not evaluation.promote:
        return PromotionDecision(**evaluation.model_dump(), decision="rejected")
    registry.move_champion(candidate.version)
    return evaluation.decided("promoted", registry)


def _scores_on_holdout(
    config: PipelineConfig, registry: ModelRegistry, champion: str, candidate: CandidateVersion, tracking_uri: str
) -> tuple[float, float, int]:
    """Challenger and champion scored on the challenger's held-out rows the champion was not fitted on, and how many."""
    import tempfile
    from pathlib import Path

    import mlflow

    from airloop.data.snapshot import read_snapshot
    from airloop.tasks import evaluate, outputs
    from airloop.training.features import features_and_label
    from airloop.training.train import read_holdout_scores

    metric, task = config.promotion_metric, config.task
    _, holdout_rows = holdout_split(read_snapshot(candidate.train.snapshot, config.dataset.training_columns), config)
    features, label = features_and_label(holdout_rows, config.dataset)
    times = holdout_rows.loc[label.index, config.dataset.time_column]  # of the labelled rows
    unseen = unseen_by_champion(times, registry.fitted_through(champion))
    challenger_score = candidate.train.metrics[metric]
    if not unseen.all():
        with tempfile.TemporaryDirectory() as scratch:
            held_out = read_holdout_scores(registry.client, candidate.train.mlflow_run_id, Path(scratch))
        if held_out is None or not held_out.matches(label.to_numpy()):
            unseen[:] = True  # no held-out scores to subset (an older run): every held-out row
        else:
            challenger_score = evaluate(task, label[unseen], held_out.scores[unseen], held_out.classes)[metric]
    uri = f"models:/{config.model_name}/{champion}"
    log.info(
        "scoring champion v%s on %d of the challenger's %d held-out rows (those after the champion's own data)",
        champion,
        int(unseen.sum()),
        len(features),
    )
    mlflow.set_tracking_uri(tracking_uri)  # models:/ URIs resolve through it
    try:
        model = mlflow.sklearn.load_model(uri)
        scores = outputs(task, model, features[unseen])
    except Exception as err:
        raise PromotionError(
            f"champion {uri} could not score the held-out data ({err}); its inputs may "
            "differ from this dataset's. Rerun with Param force_promote=true to replace it."
        ) from err
    champion_score = evaluate(task, label[unseen], scores, getattr(model, "classes_", None))[metric]
    return challenger_score, champion_score, int(unseen.sum())


def champion_version(model_name: str, *, tracking_uri: str) -> str | None:
    """The version the `champion` alias points at, or None when there is none yet."""
    from airloop.registry.versions import ModelRegistry

    return ModelRegistry(model_name, tracking_uri=tracking_uri).champion()


def decision_of_run(model_name: str, airflow_run_id: str, *, tracking_uri: str) -> tuple[str, str] | None:
    """(version, promotion decision) of the version an Airflow run registered, or None if it registered none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for version in client.search_model_versions(f"name = '{model_name}'"):
        if version.tags.get(f"{TAG_PREFIX}airflow_run_id") == airflow_run_id:
            return str(version.version), version.tags.get(f"{TAG_PREFIX}{DECISION}", "undecided")
    return None

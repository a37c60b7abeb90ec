"""Shadow promotion: a challenger the held-out rule rejected is judged again on live requests.

The held-out rule scores a model fitted without the training window's latest days; with
`training.refit` the version registered is then refitted on them. Right after a shift those
days are the ones that matter, so the refitted challenger can be right where its held-out twin
lost (on the 2013 replay the challenger trained two days after a carrier's meltdown lost on
held-out rows, 0.576 against 0.655 ROC AUC, and beat the champion the next day, 0.874 against
0.804). With `promotion.shadow.days` set, such a challenger shadows the champion: once labels
land for the requests the champion served after the challenger's data ended, both are scored
on those same rows (the champion's scores are the ones it served, read from the inference log;
the challenger's are the ones it gave live: while it shadows, its model sits in the serving
endpoint's shadow slot (:func:`sync_shadow_slot`) and scores a copy of each request under the
same request id, off the request path; rows it did not see live, such as those served before it
started, are scored from the logged features), over at most `days` labelled days. It wins by the
promotion rule (`challenger_wins`) and is then served through the servability gate like any
winner; it loses once it had its days. The version's `airloop.promotion.shadow` tag says where
it stands: `shadowing`, `won`, `lost` or `superseded` (a newer challenger shadows, or the
champion changed).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from airloop.config import PipelineConfig
from airloop.registry.versions import SHADOW, SHADOW_CHAMPION

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airloop.registry.versions import ModelRegistry
    from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)

SHADOWING = "shadowing"  # the `SHADOW` tag of the version shadowing now
SERVED_DAY = "served_day"  # the UTC day a live row was served (not the flights' own `day` feature)
#: Served rows are read up to this long after the challenger's data ended (labels land within it).
MAX_SHADOW_SPAN = dt.timedelta(days=30)

Verdict = Literal["pending", "won", "lost", "superseded"]


class ShadowVerdict(BaseModel):
    """Where a shadowing challenger stands against the champion on the same live rows."""

    model_name: str
    version: str
    champion_version: str | None
    verdict: Verdict
    reason: str
    metric: str
    rows: int = 0
    days: list[str] = Field(default_factory=list)
    challenger_score: float | None = None
    champion_score: float | None = None


def start_shadow(registry: ModelRegistry, version: str, champion: str) -> None:
    """`version`, rejected on held-out rows, shadows `champion` from now; an older shadow stops."""
    for older in registry.tagged(SHADOW, SHADOWING):
        if older != version:
            registry.record_shadow(older, "superseded", reason=f"version {version} shadows instead")
    registry.record_shadow(version, SHADOWING, champion=champion)
    log.info("version %s shadows champion v%s: judged again on live requests once their labels land", version, champion)


def compare_live(
    config: PipelineConfig, labelled: pd.DataFrame, challenger_scores: np.ndarray
) -> tuple[Verdict, str, dict[str, Any]]:
    """The verdict on labelled live rows (`served_day`, `target`, and `score`: what the champion served).

    Only the first `promotion.shadow.days` labelled days count; fewer than `min_rows` of them: pending.
    """
    from airloop.registry.promotion import challenger_wins
    from airloop.tasks import evaluate

    policy, metric = config.promotion.shadow, config.promotion_metric
    days = sorted(labelled[SERVED_DAY].unique())[: policy.days]
    chosen = labelled[SERVED_DAY].isin(days).to_numpy()
    found: dict[str, Any] = {"rows": int(chosen.sum()), "days": [str(d) for d in days]}
    if found["rows"] < policy.min_rows:
        return "pending", f"{found['rows']} labelled live rows so far (< {policy.min_rows})", found
    labels = labelled["target"][chosen]
    # A binary model's logged score is its positive-class probability, a regressor's its value: the
    # task's output, so the metric is the held-out one (a multiclass label cannot shadow, see the config).
    found["challenger_score"] = evaluate(config.task, labels, challenger_scores[chosen])[metric]
    found["champion_score"] = evaluate(config.task, labels, labelled["score"].to_numpy()[chosen])[metric]
    versus = (
        f"{metric} {found['challenger_score']:.4f} vs champion {found['champion_score']:.4f} "
        f"on {found['rows']} live rows of {len(days)} labelled day(s)"
    )
    if challenger_wins(found["challenger_score"], found["champion_score"], config):
        return "won", f"beats the champion by >= {config.promotion.min_improvement} live: {versus}", found
    if len(days) >= policy.days:
        return "lost", f"does not beat the champion live: {versus}", found
    return "pending", f"not ahead yet: {versus}", found


def judge_shadow(settings: AirloopSettings, config: PipelineConfig, *, now: dt.datetime) -> ShadowVerdict | None:
    """Judge the shadowing challenger on the live rows labelled by now; None when none shadows.

    Whatever the outcome, the endpoint's shadow slot is then brought in line with the tags: it
    keeps a challenger still shadowing, and empties once it is judged (or was left from a failure).
    """
    from airloop.registry.versions import ModelRegistry

    registry = ModelRegistry(config.model_name, tracking_uri=settings.tracking_uri)
    try:
        return _judge(settings, config, registry, now)
    finally:
        sync_shadow_slot(settings, config, registry=registry)


def _judge(
    settings: AirloopSettings, config: PipelineConfig, registry: ModelRegistry, now: dt.datetime
) -> ShadowVerdict | None:
    shadowing = registry.tagged(SHADOW, SHADOWING)
    if not shadowing:
        return None
    version = shadowing[0]
    shadowed, champion = registry.tags(version).get(SHADOW_CHAMPION), registry.champion()
    verdict = ShadowVerdict(
        model_name=config.model_name,
        version=version,
        champion_version=champion,
        verdict="pending",
        reason="",
        metric=config.promotion_metric,
    )
    since = registry.fitted_through(version)
    if champion is None or champion != shadowed or since is None:
        why = f"the champion is now v{champion}" if champion != shadowed else "its training run has no data end"
        return _final(registry, verdict.model_copy(update={"verdict": "superseded", "reason": why}))
    labelled = _labelled_live_rows(settings, config, champion, since, now)
    if labelled.empty:
        verdict.reason = f"no labelled requests served by v{champion} after v{version}'s data ended ({since:%Y-%m-%d})"
        log.info("shadow v%s: %s", version, verdict.reason)
        return verdict
    scores, live = _challenger_scores(settings, config, version, labelled)
    outcome, reason, found = compare_live(config, labelled, scores)
    used = labelled[SERVED_DAY].isin(found["days"]).to_numpy()
    reason += f"; {int(live[used].sum())} of {int(used.sum())} of them scored live by the shadow"
    verdict = verdict.model_copy(update={"verdict": outcome, "reason": reason, **found})
    if outcome == "pending":
        log.info("shadow v%s against champion v%s: %s", version, champion, reason)
        return verdict
    return _final(registry, verdict)


def sync_shadow_slot(
    settings: AirloopSettings, config: PipelineConfig, *, registry: ModelRegistry | None = None
) -> str | None:
    """Put the shadowing version's model in the serving endpoint's shadow slot, or empty the slot.

    The slot lies beside the inference log, which every target mounts (see
    `airloop.serving.SHADOW_SLOT_DIR`); the endpoint picks a change up within its poll interval.
    Returns the version in the slot, or None. Best effort: a failure is logged, never raised (the
    shadow is an extra; the verdicts and deployments around it must not depend on it).
    """
    try:
        return _sync_shadow_slot(settings, config, registry)
    except Exception as err:  # noqa: BLE001 - see the docstring
        log.warning("shadow slot of %s not brought in line: %s: %s", config.model_name, type(err).__name__, err)
        return None


def _sync_shadow_slot(settings: AirloopSettings, config: PipelineConfig, registry: ModelRegistry | None) -> str | None:
    import shutil

    from airloop.monitoring.paths import MonitoringPaths
    from airloop.registry.versions import ModelRegistry
    from airloop.serving.model import cached_model, read_model_info

    registry = registry or ModelRegistry(config.model_name, tracking_uri=settings.tracking_uri)
    paths = MonitoringPaths(settings, config)
    slot = paths.shadow_slot
    shadowing = registry.tagged(SHADOW, SHADOWING)
    wanted = shadowing[0] if shadowing else None
    held = read_model_info(slot) if (slot / "MLmodel").is_file() else None
    if wanted is None:
        if slot.exists():
            shutil.rmtree(slot)
            log.info("shadow slot emptied: no version shadows %s", config.model_name)
        return None
    if held is not None and held.version == wanted:
        return wanted
    cached = paths.model_dir(wanted)
    cached_model(config.model_name, wanted, cached, tracking_uri=settings.tracking_uri)  # fetched once
    staging, retired = slot.with_name(f".{slot.name}.staging"), slot.with_name(f".{slot.name}.retired")
    for leftover in (staging, retired):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(cached, staging)
    if slot.exists():
        slot.rename(retired)  # renames, so the endpoint sees the old model whole, then the new one whole
    staging.rename(slot)
    shutil.rmtree(retired, ignore_errors=True)
    log.info("shadow slot holds %s v%s: the endpoint scores a copy of each request with it", config.model_name, wanted)
    return wanted


def _labelled_live_rows(
    settings: AirloopSettings, config: PipelineConfig, champion: str, since: dt.datetime, now: dt.datetime
) -> pd.DataFrame:
    """Rows `champion` served after `since` whose labels have landed, with the day each was served."""
    import pandas as pd

    from airloop.monitoring.labels import join_labels, read_labels
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.window import MonitoringWindow, served_rows

    start = since.astimezone(dt.UTC) + dt.timedelta(microseconds=1)
    end = min(now.astimezone(dt.UTC), start + MAX_SHADOW_SPAN)
    if end <= start:
        return pd.DataFrame()
    paths = MonitoringPaths(settings, config)
    served = served_rows(paths.inference, MonitoringWindow(start=start, end=end), config.model_name)
    if served.empty:
        return served
    served = served[served["model_version"] == champion].reset_index(drop=True)
    labelled = join_labels(served, read_labels(paths.labels, config.dataset.label.column), config.dataset.label)
    return labelled.assign(**{SERVED_DAY: labelled["timestamp"].dt.strftime("%Y-%m-%d")}).reset_index(drop=True)


def _challenger_scores(
    settings: AirloopSettings, config: PipelineConfig, version: str, labelled: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """The challenger's scores on the live rows (as the inference log records them), and which of them it gave live.

    Live: what the shadow logged for the same request id and row. The rest are scored from the
    logged features with the model fetched once into monitoring's cache, as the reference's is.
    """
    import numpy as np

    from airloop.monitoring.paths import MonitoringPaths
    from airloop.serving.inference_log import read_inference_log
    from airloop.serving.model import cached_model
    from airloop.training.features import feature_frame

    paths = MonitoringPaths(settings, config)
    first, last = labelled["timestamp"].min().date(), labelled["timestamp"].max().date()
    logged = {
        (r["request_id"], r["row"]): r["score"]
        for r in read_inference_log(paths.shadow_inference, first, last + dt.timedelta(days=1))
        if r["model_name"] == config.model_name and str(r["model_version"]) == version
    }
    keys = list(zip(labelled["request_id"], labelled["row"], strict=True))
    scores = np.array([logged.get(key, np.nan) for key in keys], dtype=float)
    missing = np.isnan(scores)
    if missing.any():
        model = cached_model(config.model_name, version, paths.model_dir(version), tracking_uri=settings.tracking_uri)
        scores[missing] = model.scores(feature_frame(labelled[missing], config.dataset))
    return scores, ~missing


def _final(registry: ModelRegistry, verdict: ShadowVerdict) -> ShadowVerdict:
    """Tag a verdict that ends the shadow on the version."""
    details = {"reason": verdict.reason}
    if verdict.challenger_score is not None and verdict.champion_score is not None:
        details |= {
            "challenger_score": f"{verdict.challenger_score:.6f}",
            "champion_score": f"{verdict.champion_score:.6f}",
            "rows": str(verdict.rows),
        }
    registry.record_shadow(verdict.version, verdict.verdict, **details)
    log.info("shadow v%s %s: %s", verdict.version, verdict.verdict, verdict.reason)
    return verdict

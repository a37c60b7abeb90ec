"""The degradation policy: when a window's drift or measured quality calls for retraining."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from airloop.config import MonitoringConfig

DegradationKind = Literal["data_drift", "key_feature_drift", "performance"]


class Degradation(BaseModel):
    """One reason a window counts as degraded, in words a person can act on."""

    kind: DegradationKind
    detail: str


def assess(
    policy: MonitoringConfig,
    *,
    drift: dict[str, Any] | None,
    performance: dict[str, float] | None,
    champion_score: float | None,
) -> list[Degradation]:
    """Every way the window breaks the policy; empty when the model is healthy (or too little data).

    `drift` is a `DriftResult.to_dict()` (None when the window had too few rows for a verdict),
    `performance` the labelled metrics (None below `min_labels`), `champion_score` the served
    version's validation score of `performance.metric`.
    """
    found: list[Degradation] = []
    if drift is not None:
        drifted = [c["column"] for c in drift["columns"] if c["drifted"] and c["column"] in _features(drift)]
        total = len(_features(drift))
        share = len(drifted) / total if total else 0.0
        if share >= policy.drift.max_drifted_share:
            found.append(
                Degradation(
                    kind="data_drift",
                    detail=f"{len(drifted)} of {total} features drifted ({share:.0%} >= "
                    f"{policy.drift.max_drifted_share:.0%}): {', '.join(drifted)}",
                )
            )
        key = [c for c in policy.drift.key_features if c in drifted]
        if key:
            found.append(Degradation(kind="key_feature_drift", detail=f"key feature(s) drifted: {', '.join(key)}"))
    metric = policy.performance.metric
    if performance is not None and champion_score is not None and metric in performance:
        floor = policy.performance.floor_ratio * champion_score
        if performance[metric] < floor:
            found.append(
                Degradation(
                    kind="performance",
                    detail=f"{metric} {performance[metric]:.4f} on {int(performance.get('rows', 0))} labelled rows "
                    f"is below the floor {floor:.4f} ({policy.performance.floor_ratio:g} x validation "
                    f"{champion_score:.4f})",
                )
            )
    return found


def _features(drift: dict[str, Any]) -> list[str]:
    """Drift verdicts of the model's inputs; the prediction's own drift is reported, not counted."""
    return [c["column"] for c in drift["columns"] if c["column"] not in drift.get("outputs", [])]

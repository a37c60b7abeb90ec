"""The degradation policy: which evidence of a window calls for retraining, and when age does.

Pure functions of what monitoring measured; time is passed in. The evidence is computed in
`airloop.monitoring.signals`; why these signals and not others is measured by the replay
(`make evaluate-loop`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from airloop.config import MonitoringConfig, RetrainingConfig
from airloop.monitoring.signals import SegmentShift, drifted_share

DegradationKind = Literal["concept_shift", "stale", "data_drift", "key_feature_drift"]


class Degradation(BaseModel):
    """One reason a window counts as degraded, in words a person can act on."""

    kind: DegradationKind
    detail: str
    key: str = ""  # what dedupe compares, e.g. `concept_shift:carrier=EV`
    evidence_days: int = 0  # labelled days in a row the evidence holds (concept shift)


def assess(
    policy: MonitoringConfig,
    *,
    drift: dict[str, Any] | None,
    shifts: Sequence[SegmentShift] = (),
    importances: dict[str, float] | None = None,
) -> list[Degradation]:
    """Every way the window breaks the policy; empty when the model is healthy (or too little data).

    `drift` is a `DriftResult.to_dict()` (None below `drift.min_rows`); `shifts` the segments that
    shifted on each of the last `concept_shift.persist_days` labelled days
    (`signals.persistent_shifts`); `importances` the served version's feature importances.
    """
    found: list[Degradation] = []
    if shifts:
        worst = shifts[0]
        listed = "; ".join(
            f"{s.column}={s.value}: {s.observed_rate:.0%} late, {s.expected_rate:.0%} predicted "
            f"({s.rows} rows, z={s.z:.1f})"
            for s in shifts[:5]
        )
        found.append(
            Degradation(
                kind="concept_shift",
                detail=f"outcomes left the model's predictions on {worst.days_in_a_row} labelled day(s) in a row, "
                f"after the day's overall level: {listed}",
                key=f"concept_shift:{worst.column}={worst.value}",
                evidence_days=worst.days_in_a_row,
            )
        )
    if drift is not None and policy.drift.raises:
        share = drifted_share(drift, importances)
        drifted = [
            c["column"] for c in drift["columns"] if c["drifted"] and c["column"] not in drift.get("outputs", [])
        ]
        if share >= policy.drift.max_drifted_share:
            weighting = "importance-weighted " if importances else ""
            found.append(
                Degradation(
                    kind="data_drift",
                    detail=f"{weighting}share of drifted features {share:.0%} >= {policy.drift.max_drifted_share:.0%}: "
                    f"{', '.join(drifted)}",
                    key="data_drift",
                )
            )
        key = [c for c in policy.drift.key_features if c in drifted]
        if key:
            found.append(
                Degradation(
                    kind="key_feature_drift",
                    detail=f"key feature(s) drifted: {', '.join(key)}",
                    key=f"key_feature_drift:{','.join(key)}",
                )
            )
    return found


def staleness(
    retraining: RetrainingConfig,
    *,
    trained_through: dt.datetime,
    last_retraining: dt.datetime | None,
    landed_through: dt.datetime | None,
    now: dt.datetime,
) -> Degradation | None:
    """A `stale` reason once `max_age_days` of data have landed after the champion's (or the last retraining's).

    Age counts data, not the clock: `landed_through` is the end of the newest day the source holds
    (None: nothing landed since), so a source that stops delivering never retrains a model on the
    rows it was already fitted on. A retraining trained on the days that had landed when it started,
    so its clock restarts at the start of its day (one started at 03:00 is not a day younger).
    """
    if not retraining.retrains_on_age or landed_through is None:
        return None
    if last_retraining is not None:
        last_retraining = dt.datetime.combine(last_retraining.date(), dt.time(), last_retraining.tzinfo)
    since = max(trained_through, last_retraining) if last_retraining else trained_through
    age = min(landed_through, now) - since
    if age < dt.timedelta(days=retraining.max_age_days):
        return None
    what = "the last retraining" if last_retraining and last_retraining > trained_through else "its training data"
    return Degradation(
        kind="stale",
        detail=f"{age.days} days of data have landed since {what} (retraining.max_age_days {retraining.max_age_days})",
        key=f"stale:{since:%Y-%m-%d}",
    )


def retraining_reasons(
    retraining: RetrainingConfig, found: Sequence[Degradation], *, retrain_after_days: int = 1
) -> tuple[list[Degradation], list[Degradation]]:
    """Split what was found into (reasons to retrain, reasons only to alert) by the strategy.

    A concept shift seen on fewer than `retrain_after_days` labelled days is alerted, not yet
    retrained on (`monitoring.concept_shift.retrain_after_days` says why).
    """
    retrain, alert = [], []
    for degradation in found:
        by_age = degradation.kind == "stale"
        early = degradation.kind == "concept_shift" and degradation.evidence_days < retrain_after_days
        if by_age:
            if retraining.retrains_on_age:
                retrain.append(degradation)
        elif retraining.retrains_on_degradation and not early:
            retrain.append(degradation)
        else:
            alert.append(degradation)
    return retrain, alert


class WindowFinding(BaseModel):
    """What monitoring found in one window, as far as the decision needs it."""

    window_id: str
    model_version: str | None
    degradations: list[Degradation]


class SignalPlan(BaseModel):
    """What `raise_signals` does with the windows it was given."""

    retrain: list[tuple[str, list[Degradation]]] = []  # (window id, reasons): one retraining signal each
    alert: list[tuple[str, Degradation, str]] = []  # (window id, reason, why it does not retrain): alert once
    not_served: list[str] = []  # degraded windows of a version that is no longer champion: nothing


def plan_signals(
    retraining: RetrainingConfig,
    *,
    retrain_after_days: int,
    windows: Sequence[WindowFinding],
    champion: str | None,
    stale: Degradation | None,
) -> SignalPlan:
    """Which windows raise a retraining signal and which reasons only alert, by the strategy.

    `windows` is the current window first, then recomputed past ones; `stale` the champion's age
    reason (`staleness`), which joins the current window's signal. A window of a version that no
    longer serves as champion raises nothing: its model is already gone.
    """
    plan = SignalPlan()
    for window in windows:
        if not window.degradations:
            continue
        if window.model_version != champion:
            plan.not_served.append(window.window_id)
            continue
        retrain, alert = retraining_reasons(retraining, window.degradations, retrain_after_days=retrain_after_days)
        plan.alert.extend(
            (window.window_id, reason, _why_not_yet(retraining, reason, retrain_after_days)) for reason in alert
        )
        if retrain:
            plan.retrain.append((window.window_id, retrain))
    if stale is not None and windows:
        current = windows[0].window_id
        if plan.retrain and plan.retrain[0][0] == current:
            plan.retrain[0] = (current, [*plan.retrain[0][1], stale])
        else:
            plan.retrain.insert(0, (current, [stale]))
    return plan


def alert_key(version: str | None, reason: Degradation) -> str:
    """What an alert-only reason is alerted once for: the served version and what the reason is about."""
    return f"{version}-{(reason.key or reason.kind).replace('/', '_')}"


def _why_not_yet(retraining: RetrainingConfig, reason: Degradation, retrain_after_days: int) -> str:
    if reason.kind == "concept_shift" and retraining.retrains_on_degradation:
        return (
            f"retraining once it holds for {retrain_after_days} labelled days "
            "(monitoring.concept_shift.retrain_after_days)"
        )
    return f"retraining.strategy is {retraining.strategy}: alert only"

"""The evidence a monitoring window yields about the served model, as pure functions of arrays.

Measured on the 2013 replay (`make evaluate-loop`), what separates harmful change from harmless:

- Drift of the inputs fires on every daily window (one day's weather and calendar are always
  narrower than a month's) and says nothing about whether a retrained model would do better:
  it is reported, for people, and never raises a degradation by itself.
- Estimated performance (confidence-based, as NannyML's CBPE: the ROC AUC the served scores
  would have if their calibrated probabilities held) is reported beside the measured one.
- Labelled performance of one day swings with the weather (the daily ROC AUC of a fresh model has
  a standard deviation of 0.08 over 2013), so a floor on it is noise. What carries information is
  a *segment* of the traffic (a carrier, an airport) whose outcomes leave what the model predicts
  for it, day after day, after the day's overall level is allowed for: a storm moves every
  segment at once and is absorbed by the day's offset; a carrier whose delays jump is not.
  That is :func:`concept_shift`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

_EPS = 1e-4


class Calibration(BaseModel):
    """A monotone map from the model's score to the probability of the positive class.

    Fitted (isotonic regression) on the served version's held-out rows, so it is JSON and needs no
    pickle: `x` are score knots, `y` the calibrated probabilities, linear in between.
    """

    x: list[float]
    y: list[float]

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> Calibration:
        """Isotonic fit of labels on scores; a constant map when one class is missing."""
        from sklearn.isotonic import IsotonicRegression

        scores, labels = np.asarray(scores, dtype="float64"), np.asarray(labels, dtype="float64")
        if len(np.unique(labels)) < 2:
            rate = float(labels.mean()) if len(labels) else 0.5
            return cls(x=[0.0, 1.0], y=[rate, rate])
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
        return cls(x=[float(v) for v in iso.X_thresholds_], y=[float(v) for v in iso.y_thresholds_])

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype="float64"), self.x, self.y)


def estimated_roc_auc(scores: np.ndarray, calibration: Calibration) -> float:
    """Confidence-based ROC AUC estimate (CBPE): each row counts as positive with its probability."""
    scores = np.asarray(scores, dtype="float64")
    if len(scores) < 2:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    p = calibration(scores[order])
    tp = np.concatenate([[0.0], np.cumsum(p)])
    fp = np.concatenate([[0.0], np.cumsum(1.0 - p)])
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tp / tp[-1], fp / fp[-1]))


def drifted_share(drift: dict[str, Any], weights: dict[str, float] | None = None) -> float:
    """The share of the model's input features that drifted: the one definition Airloop uses.

    `drift` is a `DriftResult.to_dict()` (outputs such as the score are not inputs and do not
    count). With `weights` (e.g. feature importances recorded at training time) each feature
    counts by its weight, so drift of a feature the model barely uses barely counts.
    """
    outputs = set(drift.get("outputs", []))
    columns = [c for c in drift["columns"] if c["column"] not in outputs]
    if not columns:
        return 0.0
    weight = {c["column"]: max(float((weights or {}).get(c["column"], 0.0 if weights else 1.0)), 0.0) for c in columns}
    total = sum(weight.values())
    if total <= 0:
        return 0.0
    return sum(weight[c["column"]] for c in columns if c["drifted"]) / total


class SegmentShift(BaseModel):
    """One segment whose observed outcomes left what the model predicted for it, on one day."""

    column: str
    value: str
    day: str
    rows: int
    observed_rate: float
    expected_rate: float
    z: float
    days_in_a_row: int = 1  # labelled days, up to this one, the segment shifted the same way

    @property
    def effect(self) -> float:
        return self.observed_rate - self.expected_rate


def segment_shifts(
    frame: pd.DataFrame,
    *,
    calibration: Calibration,
    segments: Sequence[str],
    min_rows: int,
    min_z: float,
    min_effect: float,
    score: str = "score",
    target: str = "target",
    day: str = "day",
) -> list[SegmentShift]:
    """Per labelled day, the segments whose outcome rate differs from the prediction beyond noise.

    Each day's calibrated probabilities are first moved by one offset on the log-odds scale so that
    they add up to the day's observed positives (the day's overall level: weather, a holiday rush);
    a segment is flagged when its observed positives differ from that expectation by at least
    `min_z` standard deviations and by at least `min_effect` in rate, on at least `min_rows` rows.
    """
    found: list[SegmentShift] = []
    for day_value, rows in frame.groupby(day, sort=True):
        if len(rows) < min_rows:
            continue
        q = _level_adjusted(calibration(rows[score].to_numpy()), rows[target].to_numpy())
        y = rows[target].to_numpy(dtype="float64")
        for column in segments:
            keys = rows[column].astype("string").fillna("<missing>").to_numpy()
            table = (
                pd.DataFrame({"k": keys, "y": y, "q": q, "v": q * (1 - q)})
                .groupby("k", sort=True)
                .agg(n=("y", "size"), o=("y", "sum"), e=("q", "sum"), v=("v", "sum"))
            )
            table = table[table["n"] >= min_rows]
            for value, entry in table.iterrows():
                z = (entry["o"] - entry["e"]) / math.sqrt(max(entry["v"], _EPS))
                effect = (entry["o"] - entry["e"]) / entry["n"]
                if abs(z) >= min_z and abs(effect) >= min_effect:
                    found.append(
                        SegmentShift(
                            column=column,
                            value=str(value),
                            day=str(day_value),
                            rows=int(entry["n"]),
                            observed_rate=float(entry["o"] / entry["n"]),
                            expected_rate=float(entry["e"] / entry["n"]),
                            z=float(z),
                        )
                    )
    return found


def persistent_shifts(shifts: Sequence[SegmentShift], days: Sequence[str], min_days: int) -> list[SegmentShift]:
    """The last day's shifts of the segments that shifted the same way on the last `min_days` of `days`.

    `days` are the labelled days looked at, oldest first; each returned shift carries how many of
    them in a row, up to the last, its segment shifted (`days_in_a_row`). Strongest first.
    """
    if not days or min_days < 1:
        return []
    seen: dict[tuple[str, str], dict[str, SegmentShift]] = {}
    for shift in shifts:
        seen.setdefault((shift.column, shift.value), {})[shift.day] = shift
    persistent = []
    for by_day in seen.values():
        last = by_day.get(days[-1])
        if last is None:
            continue
        run = 0
        for day in reversed(days):
            found = by_day.get(day)
            if found is None or math.copysign(1, found.effect) != math.copysign(1, last.effect):
                break
            run += 1
        if run >= min_days:
            persistent.append(last.model_copy(update={"days_in_a_row": run}))
    return sorted(persistent, key=lambda s: -abs(s.z))


def _level_adjusted(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`p` moved by one log-odds offset so that it sums to the observed positives (Newton steps)."""
    p = np.clip(np.asarray(p, dtype="float64"), _EPS, 1 - _EPS)
    logit = np.log(p / (1 - p))
    target = float(np.clip(np.sum(y), _EPS, len(y) - _EPS))
    offset = 0.0
    for _ in range(30):
        q = 1 / (1 + np.exp(-(logit + offset)))
        gap = q.sum() - target
        slope = float((q * (1 - q)).sum())
        if abs(gap) < 1e-6 or slope <= 0:
            break
        offset -= gap / slope
    return np.clip(1 / (1 + np.exp(-(logit + offset))), _EPS, 1 - _EPS)

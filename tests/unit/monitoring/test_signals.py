"""The evidence monitoring computes: calibration, estimated performance, drifted share, concept shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from airloop.monitoring.signals import (
    Calibration,
    drifted_share,
    estimated_roc_auc,
    persistent_shifts,
    segment_shifts,
)

CARRIERS = ["AA", "B6", "DL", "EV", "UA"]
SHIFT = {"min_rows": 50, "min_z": 6.0, "min_effect": 0.2}


def _day(day: str, rng: np.random.Generator, *, level: float = 0.0, late_carrier: str | None = None) -> pd.DataFrame:
    """One day of flights from a well-calibrated model; `level` moves every flight's log-odds (a storm)."""
    n = 1500
    score = rng.beta(2, 5, n)
    logit = np.log(score / (1 - score)) + level
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    carrier = rng.choice(CARRIERS, n)
    if late_carrier:
        target[carrier == late_carrier] = 1
    return pd.DataFrame({"score": score, "target": target, "carrier": carrier, "day": day})


def _shifts(frame: pd.DataFrame) -> list:
    identity = Calibration(x=[0.0, 1.0], y=[0.0, 1.0])
    return segment_shifts(frame, calibration=identity, segments=["carrier"], **SHIFT)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        pytest.param([{}, {}], [], id="ordinary-days"),
        pytest.param([{"level": 2.0}, {"level": 1.5}], [], id="storm-days-move-every-segment-at-once"),
        pytest.param(
            [{"late_carrier": "EV"}, {"late_carrier": "EV"}], [("carrier", "EV")], id="one-carrier-late-twice"
        ),
        pytest.param([{}, {"late_carrier": "EV"}], [], id="one-bad-day-is-not-persistent"),
        pytest.param(
            [{"late_carrier": "EV", "level": 1.0}, {"late_carrier": "EV", "level": -1.0}],
            [("carrier", "EV")],
            id="carrier-shift-seen-through-the-weather",
        ),
    ],
)
def test_concept_shift_is_a_segment_leaving_its_prediction_day_after_day(days, expected):
    rng = np.random.default_rng(7)
    frames = [_day(f"2013-09-{9 + i:02d}", rng, **spec) for i, spec in enumerate(days)]
    found = [s for frame in frames for s in _shifts(frame)]
    persistent = persistent_shifts(found, [f"2013-09-{9 + i:02d}" for i in range(len(days))], 2)
    assert [(s.column, s.value) for s in persistent] == expected
    for shift in persistent:
        assert shift.observed_rate == 1.0
        assert shift.expected_rate < 0.5
        assert shift.day == "2013-09-10"


def test_a_segment_below_min_rows_is_not_judged():
    rng = np.random.default_rng(1)
    frame = _day("2013-01-01", rng, late_carrier="EV").head(200)  # about 40 EV rows
    assert _shifts(frame) == []


def test_calibration_is_monotone_json_and_fixes_overconfident_scores():
    rng = np.random.default_rng(3)
    truth = rng.random(20_000)
    labels = (rng.random(20_000) < truth).astype(int)
    scores = truth**0.3  # overconfident: every score far above its true rate
    calibration = Calibration.fit(scores, labels)
    again = Calibration.model_validate_json(calibration.model_dump_json())
    calibrated = again(scores)
    assert np.all(np.diff(again(np.linspace(0, 1, 50))) >= 0)
    assert abs(calibrated.mean() - labels.mean()) < 0.01
    assert abs(scores.mean() - labels.mean()) > 0.2


def test_calibration_of_one_class_is_its_rate():
    assert Calibration.fit(np.array([0.2, 0.9]), np.array([1, 1]))(np.array([0.5])).tolist() == [1.0]


def test_estimated_roc_auc_matches_the_measured_one_when_probabilities_hold():
    rng = np.random.default_rng(11)
    p = rng.beta(2, 5, 50_000)
    y = (rng.random(len(p)) < p).astype(int)
    identity = Calibration(x=[0.0, 1.0], y=[0.0, 1.0])
    assert estimated_roc_auc(p, identity) == pytest.approx(roc_auc_score(y, p), abs=0.01)
    assert np.isnan(estimated_roc_auc(np.array([0.5]), identity))


DRIFT = {
    "columns": [
        {"column": "month", "drifted": True},
        {"column": "temp", "drifted": True},
        {"column": "carrier", "drifted": False},
        {"column": "score", "drifted": True},
    ],
    "outputs": ["score"],
}


@pytest.mark.parametrize(
    ("weights", "share"),
    [
        pytest.param(None, 2 / 3, id="each-feature-counts-once-outputs-never"),
        pytest.param({"month": 0.0, "temp": 0.1, "carrier": 0.9}, 0.1, id="weighted-by-importance"),
        pytest.param({"month": 0.0, "temp": 0.0, "carrier": 0.0}, 0.0, id="no-importance-no-share"),
    ],
)
def test_drifted_share_has_one_definition(weights, share):
    assert drifted_share(DRIFT, weights) == pytest.approx(share)

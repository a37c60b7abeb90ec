"""The degradation policy: what retrains, what only alerts, and when age retrains."""

from __future__ import annotations

import datetime as dt

import pytest

from airloop.config import MonitoringConfig, RetrainingConfig
from airloop.monitoring.policy import (
    Degradation,
    WindowFinding,
    alert_key,
    assess,
    plan_signals,
    retraining_reasons,
    staleness,
)
from airloop.monitoring.signals import SegmentShift

EVERYTHING_DRIFTED = {
    "columns": [{"column": c, "drifted": True} for c in ("month", "day", "temp", "humid", "carrier", "score")],
    "outputs": ["score"],
}
EV_LATE = SegmentShift(
    column="carrier", value="EV", day="2013-09-10", rows=150, observed_rate=0.99, expected_rate=0.28, z=22.1
)


def test_drift_everywhere_is_reported_not_a_degradation_by_default():
    assert assess(MonitoringConfig(), drift=EVERYTHING_DRIFTED) == []


def test_drift_can_be_opted_into_and_is_weighted_by_importance():
    policy = MonitoringConfig.model_validate({"drift": {"raises": True, "max_drifted_share": 0.5}})
    assert [d.kind for d in assess(policy, drift=EVERYTHING_DRIFTED)] == ["data_drift"]
    barely_used = {"month": 0.01, "day": 0.01, "temp": 0.01, "humid": 0.01, "carrier": 0.0, "dest": 1.0}
    unused = {**EVERYTHING_DRIFTED, "columns": [*EVERYTHING_DRIFTED["columns"], {"column": "dest", "drifted": False}]}
    assert assess(policy, drift=unused, importances=barely_used) == []


def test_a_persistent_segment_shift_is_a_concept_shift_naming_the_segment():
    (found,) = assess(MonitoringConfig(), drift=None, shifts=[EV_LATE])
    assert found.kind == "concept_shift"
    assert found.key == "concept_shift:carrier=EV"
    assert "carrier=EV: 99% late, 28% predicted" in found.detail


NOW = dt.datetime(2013, 9, 10, 3, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("strategy", "trained_through", "last_retraining", "landed_through", "stale"),
    [
        pytest.param("both", NOW - 29 * DAY, None, NOW, False, id="younger-than-max-age"),
        pytest.param("both", NOW - 30 * DAY, None, NOW, True, id="max-age-reached"),
        pytest.param("schedule", NOW - 40 * DAY, None, NOW, True, id="schedule-retrains-by-age"),
        pytest.param("degradation", NOW - 400 * DAY, None, NOW, False, id="degradation-never-by-age"),
        pytest.param("both", NOW - 40 * DAY, NOW - 5 * DAY, NOW, False, id="a-retraining-tried-restarts-the-clock"),
        pytest.param("both", NOW - 40 * DAY, None, None, False, id="nothing-landed-since-training"),
        pytest.param("both", NOW - 40 * DAY, NOW - 30 * DAY, NOW - 3 * HOUR, True, id="retraining-counts-from-its-day"),
        pytest.param("both", NOW - 40 * DAY, None, NOW - 20 * DAY, False, id="age-counts-landed-data-not-the-clock"),
        pytest.param("both", NOW - 40 * DAY, None, NOW + 9 * DAY, True, id="data-ahead-of-the-window-counts-to-now"),
    ],
)
def test_staleness(strategy, trained_through, last_retraining, landed_through, stale):
    retraining = RetrainingConfig(strategy=strategy, max_age_days=30)
    found = staleness(
        retraining,
        trained_through=trained_through,
        last_retraining=last_retraining,
        landed_through=landed_through,
        now=NOW,
    )
    assert (found is not None) == stale
    if found:
        assert found.kind == "stale"
        assert "max_age_days 30" in found.detail


def test_staleness_says_how_much_data_landed():
    found = staleness(
        RetrainingConfig(max_age_days=30),
        trained_through=NOW - 40 * DAY,
        last_retraining=None,
        landed_through=NOW - 5 * DAY,
        now=NOW,
    )
    assert found is not None
    assert found.detail == "35 days of data have landed since its training data (retraining.max_age_days 30)"
    assert found.key == "stale:2013-08-01"


SHIFTED = Degradation(kind="concept_shift", detail="x", key="concept_shift:carrier=EV", evidence_days=8)
EARLY = SHIFTED.model_copy(update={"evidence_days": 2})
OLD = Degradation(kind="stale", detail="y", key="stale:2013-08-01")


@pytest.mark.parametrize(
    ("strategy", "retrain", "alert"),
    [
        pytest.param("both", [SHIFTED, OLD], [], id="both-retrains-on-either"),
        pytest.param("schedule", [OLD], [SHIFTED], id="schedule-alerts-on-degradation"),
        pytest.param("degradation", [SHIFTED], [], id="degradation-ignores-age"),
    ],
)
def test_strategy_table(strategy, retrain, alert):
    assert retraining_reasons(RetrainingConfig(strategy=strategy), [SHIFTED, OLD], retrain_after_days=8) == (
        retrain,
        alert,
    )


def test_a_concept_shift_too_young_for_a_fair_challenger_is_alerted_not_retrained():
    assert retraining_reasons(RetrainingConfig(), [EARLY], retrain_after_days=8) == ([], [EARLY])


def _window(window_id: str, version: str | None, *found: Degradation) -> WindowFinding:
    return WindowFinding(window_id=window_id, model_version=version, degradations=list(found))


@pytest.mark.parametrize(
    ("strategy", "windows", "stale", "expected"),
    [
        # expected: (retraining signals, alert-only reasons, windows of a replaced version)
        pytest.param("both", [_window("d2", "3")], None, ([], [], []), id="healthy-window-raises-nothing"),
        pytest.param("both", [_window("d2", "3", SHIFTED)], None, ([("d2", [SHIFTED])], [], []), id="shift-retrains"),
        pytest.param(
            "both", [_window("d2", "3", EARLY)], None, ([], [("d2", "concept_shift")], []), id="young-shift-alerts"
        ),
        pytest.param(
            "schedule",
            [_window("d2", "3", SHIFTED)],
            None,
            ([], [("d2", "concept_shift")], []),
            id="schedule-only-alerts-a-shift",
        ),
        pytest.param(
            "both",
            [_window("d2", "3", SHIFTED)],
            OLD,
            ([("d2", [SHIFTED, OLD])], [], []),
            id="age-joins-the-current-windows-signal",
        ),
        pytest.param(
            "both",
            [_window("d2", "3"), _window("d1", "3", SHIFTED)],
            OLD,
            ([("d2", [OLD]), ("d1", [SHIFTED])], [], []),
            id="age-raises-on-the-current-window-a-backfilled-shift-on-its-own",
        ),
        pytest.param(
            "both",
            [_window("d2", "3"), _window("d1", "2", SHIFTED)],
            None,
            ([], [], ["d1"]),
            id="a-replaced-versions-window-raises-nothing",
        ),
        pytest.param("degradation", [_window("d2", "3")], None, ([], [], []), id="no-age-reason-without-schedule"),
    ],
)
def test_plan_signals(strategy, windows, stale, expected):
    retrain, alert, not_served = expected
    plan = plan_signals(
        RetrainingConfig(strategy=strategy),
        retrain_after_days=8,
        windows=windows,
        champion="3",
        stale=stale if strategy != "degradation" else None,
    )
    assert plan.retrain == retrain
    assert [(w, r.kind) for w, r, _ in plan.alert] == alert
    assert plan.not_served == not_served


def test_an_alert_only_reason_says_why_it_does_not_retrain():
    (young,) = plan_signals(
        RetrainingConfig(), retrain_after_days=8, windows=[_window("d2", "3", EARLY)], champion="3", stale=None
    ).alert
    assert "retrain_after_days" in young[2]
    (scheduled,) = plan_signals(
        RetrainingConfig(strategy="schedule"),
        retrain_after_days=8,
        windows=[_window("d2", "3", SHIFTED)],
        champion="3",
        stale=None,
    ).alert
    assert "strategy is schedule: alert only" in scheduled[2]


def test_an_alert_is_keyed_by_version_and_what_it_is_about():
    assert alert_key("3", SHIFTED) == "3-concept_shift:carrier=EV"
    assert alert_key("3", SHIFTED) != alert_key("4", SHIFTED)

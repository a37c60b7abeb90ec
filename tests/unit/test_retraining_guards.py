"""Storm guards: which degradation signals become retraining runs, and which do not."""

from __future__ import annotations

import datetime as dt

import pytest

from airloop.config import StormGuards
from airloop.monitoring.policy import Degradation
from airloop.monitoring.retraining import (
    DegradationSignal,
    GuardDecision,
    LedgerEntry,
    RetrainingLedger,
    SignalStore,
    consecutive_losses,
    decide,
)

NOW = dt.datetime(2026, 7, 15, 12, 0, tzinfo=dt.UTC)
GUARDS = StormGuards(cooldown_minutes=60, dedupe_hours=24, circuit_breaker_after=2)


def _signal(version: str = "3", kind: str = "data_drift", window: str = "w1") -> DegradationSignal:
    return DegradationSignal(
        model_name="m",
        model_version=version,
        window_id=window,
        window_start=NOW - dt.timedelta(days=1),
        window_end=NOW,
        reasons=[Degradation(kind=kind, detail="x")],  # type: ignore[arg-type]
        raised_at=NOW,
    )


def _entry(
    action: str, *, ago: dt.timedelta, version: str = "3", kind: str = "data_drift", outcome=None
) -> LedgerEntry:
    return LedgerEntry(
        at=NOW - ago,
        signal_id="s",
        model_name="m",
        model_version=version,
        kind=kind,
        action=action,  # type: ignore[arg-type]
        reason="r",
        outcome=outcome,
    )


HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("ledger", "champion", "active", "action", "words"),
    [
        pytest.param([], "3", 0, "retrain", "retraining", id="first-signal-retrains"),
        pytest.param([], "4", 0, "suppress", "stale", id="champion-changed-since"),
        pytest.param([], "3", 1, "suppress", "already running", id="training-already-running"),
        pytest.param([_entry("retrain", ago=2 * HOUR)], "3", 0, "suppress", "duplicate", id="same-reason-same-version"),
        pytest.param(
            [_entry("retrain", ago=30 * HOUR)], "3", 0, "retrain", "retraining", id="same-reason-after-dedupe-window"
        ),
        pytest.param(
            [_entry("retrain", ago=0.5 * HOUR, kind="performance")], "3", 0, "suppress", "cooldown", id="in-cooldown"
        ),
        pytest.param(
            [_entry("retrain", ago=2 * HOUR, kind="performance")], "3", 0, "retrain", "retraining", id="after-cooldown"
        ),
        pytest.param(
            [
                _entry("outcome", ago=5 * HOUR, outcome="rejected", kind="performance"),
                _entry("outcome", ago=3 * HOUR, outcome="failed", kind="performance"),
            ],
            "3",
            0,
            "alert",
            "circuit breaker open",
            id="breaker-opens-after-two-losses",
        ),
        pytest.param(
            [
                _entry("outcome", ago=5 * HOUR, outcome="rejected", kind="performance"),
                _entry("outcome", ago=3 * HOUR, outcome="rejected", kind="performance", version="2"),
            ],
            "3",
            0,
            "retrain",
            "retraining",
            id="losses-of-an-older-champion-do-not-count",
        ),
    ],
)
def test_decide(ledger, champion, active, action, words):
    decision = decide(
        _signal(), ledger=ledger, guards=GUARDS, champion_version=champion, active_training_runs=active, now=NOW
    )
    assert decision.action == action
    assert words in decision.reason


def test_a_promotion_resets_the_count_of_losses():
    ledger = [
        _entry("outcome", ago=9 * HOUR, outcome="rejected"),
        _entry("outcome", ago=8 * HOUR, outcome="promoted"),
        _entry("outcome", ago=7 * HOUR, outcome="rejected"),
    ]
    assert consecutive_losses(ledger, "m", "3") == 1


def test_a_signal_is_raised_once_and_handled_once(tmp_path):
    store = SignalStore(tmp_path)
    first, other_window = _signal(), _signal(window="w2")
    assert store.raise_signal(first)
    assert not store.raise_signal(_signal())  # the same version, window and kind
    assert store.raise_signal(other_window)
    assert [s.id for s in store.pending()] == sorted([first.id, other_window.id], key=lambda i: (NOW, i))
    store.mark_handled(first, GuardDecision(action="retrain", reason="r"))
    assert not store.raise_signal(first)  # handled signals are not raised again
    assert [s.id for s in store.pending()] == [other_window.id]
    assert store.find(first.id) == first  # handled
    assert store.find(other_window.id) == other_window  # pending
    assert store.find("never-raised") is None


def test_the_training_conf_carries_the_reason_window_and_report():
    conf = _signal().training_conf()
    assert conf["window_end"] == "2026-07-15"
    assert conf["reason"].startswith("retraining (data_drift)")
    assert conf["degradation"]["window_id"] == "w1"


def test_the_ledger_appends_and_reads_back(tmp_path):
    ledger = RetrainingLedger(tmp_path / "l.jsonl")
    assert ledger.entries() == []
    ledger.append(_entry("retrain", ago=HOUR))
    ledger.append(_entry("outcome", ago=0 * HOUR, outcome="rejected"))
    assert [e.action for e in ledger.entries()] == ["retrain", "outcome"]


def test_the_same_reason_on_a_newer_champion_within_dedupe_is_a_duplicate():
    """A concept shift retrained on for v2 and still seen on v3, within the dedupe window, is not retrained twice."""
    shift = Degradation(kind="concept_shift", detail="EV late", key="concept_shift:carrier=EV")
    signal = _signal(version="3", kind="concept_shift").model_copy(update={"reasons": [shift]})
    earlier = _entry("retrain", ago=10 * HOUR, version="2", kind="concept_shift").model_copy(
        update={"key": "concept_shift:carrier=EV"}
    )
    other = _entry("retrain", ago=10 * HOUR, version="2", kind="concept_shift").model_copy(
        update={"key": "concept_shift:carrier=B6"}
    )
    found = decide(signal, ledger=[earlier], guards=GUARDS, champion_version="3", active_training_runs=0, now=NOW)
    assert found.action == "suppress"
    assert "duplicate: concept_shift:carrier=EV" in found.reason
    found = decide(signal, ledger=[other], guards=GUARDS, champion_version="3", active_training_runs=0, now=NOW)
    assert found.action == "retrain"
    assert signal.training_conf()["degradation"]["key"] == "concept_shift:carrier=EV"


def test_the_age_clock_restarts_at_the_data_a_retraining_learned_not_when_it_ran():
    from airloop.monitoring.retraining import last_retraining

    end = dt.datetime(2013, 3, 31, tzinfo=dt.UTC)
    day = {"window_start": end - dt.timedelta(days=1), "window_end": end}
    replayed = _signal(window="2013-03-30").model_copy(update=day)
    ledger = [
        LedgerEntry.of(replayed, at=NOW, action="retrain", reason="r"),  # decided now, on a 2013 window
        LedgerEntry.of(replayed, at=NOW, action="suppress", reason="duplicate"),
        _entry("retrain", ago=HOUR, version="2").model_copy(update={"model_name": "another"}),
    ]
    assert ledger[0].data_through == end
    assert last_retraining(ledger, "m") == end
    assert last_retraining([_entry("retrain", ago=HOUR)], "m") == NOW - HOUR  # written before data_through was
    assert last_retraining(ledger[1:2], "m") is None

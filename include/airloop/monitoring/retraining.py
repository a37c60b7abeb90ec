"""Degradation signals and the storm guards that decide whether one becomes a retraining run.

Monitoring raises a signal (a JSON file under `<home>/monitoring/signals/pending/`); the
retraining DAG's sensor waits for one, asks :func:`decide`, and records what it did in the
ledger (`<home>/monitoring/retraining/<model>.jsonl`), which is also what the guards read: cooldown,
dedupe, one run at a time, and a circuit breaker over challengers that lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from airloop.config import StormGuards
from airloop.monitoring.policy import Degradation

Action = Literal["retrain", "suppress", "alert"]
Outcome = Literal["promoted", "rejected", "failed"]


class DegradationSignal(BaseModel):
    """What monitoring found wrong with one window, for one served model version."""

    model_name: str
    model_version: str
    window_id: str
    window_start: dt.datetime
    window_end: dt.datetime
    reasons: list[Degradation]
    report: str | None = None
    mlflow_run_id: str | None = None
    raised_at: dt.datetime

    @property
    def id(self) -> str:
        key = f"{self.model_name}|{self.model_version}|{self.window_id}|{self.kind}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def kind(self) -> str:
        """The reason's kind, e.g. `data_drift+key_feature_drift`: what dedupe compares."""
        return "+".join(sorted({r.kind for r in self.reasons}))

    @property
    def key(self) -> str:
        """What the reasons are about, e.g. `concept_shift:carrier=EV`: what dedupe compares across versions."""
        return "+".join(sorted({r.key or r.kind for r in self.reasons}))

    @property
    def summary(self) -> str:
        return f"{self.model_name} v{self.model_version}, window {self.window_id}: " + "; ".join(
            r.detail for r in self.reasons
        )

    def training_conf(self) -> dict[str, Any]:
        """The conf of the `airloop_training` run it starts: the reason, the window and the report.

        The run trains on the data up to the end of the degraded window.
        """
        return {
            "reason": f"retraining ({self.kind}): {self.summary}"[:500],
            "window_end": self.window_end.date().isoformat(),
            "degradation": {
                "signal_id": self.id,
                "kind": self.kind,
                "key": self.key,
                "model_version": self.model_version,
                "window_id": self.window_id,
                "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(),
                "reasons": [r.model_dump() for r in self.reasons],
                "report": self.report,
                "monitoring_run_id": self.mlflow_run_id,
            },
        }


class SignalStore:
    """Pending and handled signals as files, so any process sharing the state folder can see them."""

    def __init__(self, folder: Path) -> None:
        self.pending_dir = Path(folder) / "pending"
        self.handled_dir = Path(folder) / "handled"

    def raise_signal(self, signal: DegradationSignal) -> bool:
        """Queue the signal; False if the same one (same version, window and kind) was raised before."""
        name = f"{signal.id}.json"
        if (self.pending_dir / name).exists() or (self.handled_dir / name).exists():
            return False
        _write_atomic(self.pending_dir / name, signal.model_dump_json(indent=2))
        return True

    def pending(self) -> list[DegradationSignal]:
        """Queued signals, oldest first."""
        signals = [DegradationSignal.model_validate_json(p.read_text()) for p in self.pending_dir.glob("*.json")]
        return sorted(signals, key=lambda s: (s.raised_at, s.id))

    def find(self, signal_id: str) -> DegradationSignal | None:
        """The signal with this id, pending or handled, if it was raised."""
        for folder in (self.pending_dir, self.handled_dir):
            path = folder / f"{signal_id}.json"
            if path.is_file():
                return DegradationSignal.model_validate_json(path.read_text())
        return None

    def has_pending(self) -> bool:
        return any(self.pending_dir.glob("*.json"))

    def mark_handled(self, signal: DegradationSignal, decision: GuardDecision) -> None:
        body = {**json.loads(signal.model_dump_json()), "decision": decision.model_dump(mode="json")}
        _write_atomic(self.handled_dir / f"{signal.id}.json", json.dumps(body, indent=2))
        (self.pending_dir / f"{signal.id}.json").unlink(missing_ok=True)


class GuardDecision(BaseModel):
    action: Action
    reason: str


class LedgerEntry(BaseModel):
    at: dt.datetime
    signal_id: str
    model_name: str
    model_version: str
    kind: str
    key: str = ""
    action: Action | Literal["outcome"]
    reason: str
    training_run_id: str | None = None
    outcome: Outcome | None = None
    # The end of the signal's window: the data a retraining it started learns up to. The age clock
    # restarts there, not at `at` (a replay or a backfill decides on windows long before its clock).
    data_through: dt.datetime | None = None

    @classmethod
    def of(
        cls,
        signal: DegradationSignal,
        *,
        at: dt.datetime,
        action: Action | Literal["outcome"],
        reason: str,
        **extra: Any,
    ) -> LedgerEntry:
        """The entry for what was done about `signal` (its id, model, version, kind and key)."""
        return cls(
            at=at,
            signal_id=signal.id,
            model_name=signal.model_name,
            model_version=signal.model_version,
            kind=signal.kind,
            key=signal.key,
            action=action,
            reason=reason,
            **{"data_through": signal.window_end, **extra},
        )


class RetrainingLedger:
    """Append-only JSON lines: every decision on a signal and every retraining outcome."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, entry: LedgerEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(entry.model_dump_json() + "\n")

    def entries(self) -> list[LedgerEntry]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [LedgerEntry.model_validate_json(line) for line in lines if line.strip()]


def decide(
    signal: DegradationSignal,
    *,
    ledger: list[LedgerEntry],
    guards: StormGuards,
    champion_version: str | None,
    active_training_runs: int,
    now: dt.datetime,
) -> GuardDecision:
    """Retrain, suppress (with why), or alert instead when the circuit breaker is open."""
    if champion_version is not None and signal.model_version != champion_version:
        return GuardDecision(
            action="suppress",
            reason=f"stale: v{signal.model_version} is no longer the champion (v{champion_version} is)",
        )
    if active_training_runs:
        return GuardDecision(
            action="suppress", reason=f"{active_training_runs} airloop_training run(s) already running or queued"
        )
    losses = consecutive_losses(ledger, signal.model_name, signal.model_version)
    if losses >= guards.circuit_breaker_after:
        return GuardDecision(
            action="alert",
            reason=f"circuit breaker open: {losses} retrained challenger(s) in a row did not beat champion "
            f"v{signal.model_version}; not retraining again until a new champion is promoted "
            "(fix the data or the model, then run airloop_training by hand)",
        )
    retrains = [e for e in ledger if e.action == "retrain" and e.model_name == signal.model_name]
    for entry in reversed(retrains):
        if now - entry.at >= dt.timedelta(hours=guards.dedupe_hours):
            break
        same_reason = (entry.key and entry.key == signal.key) or (
            entry.model_version == signal.model_version and entry.kind == signal.kind
        )
        if same_reason:
            return GuardDecision(
                action="suppress",
                reason=f"duplicate: {signal.key or signal.kind} already retrained on at "
                f"{entry.at:%Y-%m-%d %H:%M} (signal {entry.signal_id}, dedupe {guards.dedupe_hours:g} h)",
            )
    cooldown = cooldown_until(ledger, signal.model_name, guards)
    if cooldown is not None and now < cooldown[1]:
        return GuardDecision(
            action="suppress",
            reason=f"cooldown: last retraining started at {cooldown[0]:%Y-%m-%d %H:%M:%S} "
            f"(cooldown {guards.cooldown_minutes:g} min)",
        )
    return GuardDecision(action="retrain", reason=f"retraining for {signal.kind}")


def cooldown_until(
    ledger: list[LedgerEntry], model_name: str, guards: StormGuards
) -> tuple[dt.datetime, dt.datetime] | None:
    """When the last retraining of `model_name` started, and when the cooldown after it ends; None before any.

    The cooldown counts from when a retraining started (its ledger `at`), not from the data it learned.
    """
    started = [e.at for e in ledger if e.action == "retrain" and e.model_name == model_name]
    if not started:
        return None
    last = max(started)
    return last, last + dt.timedelta(minutes=guards.cooldown_minutes)


def consecutive_losses(ledger: list[LedgerEntry], model_name: str, champion_version: str) -> int:
    """Retraining outcomes in a row, newest first, that left `champion_version` serving."""
    count = 0
    for entry in reversed(ledger):
        if entry.action != "outcome" or entry.model_name != model_name:
            continue
        if entry.outcome == "promoted" or entry.model_version != champion_version:
            break
        count += 1
    return count


def last_retraining(ledger: list[LedgerEntry], model_name: str) -> dt.datetime | None:
    """Where the data of `model_name`'s last retraining ends (the age clock restarts there), if it ever retrained.

    That is the end of the window whose signal started it; for entries written before that was
    recorded, when the retraining started.
    """
    started = [e.data_through or e.at for e in ledger if e.action == "retrain" and e.model_name == model_name]
    return max(started) if started else None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(text)
    partial.replace(path)

"""Triggers that run in the triggerer: waiting costs no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DegradationSignalTrigger(BaseTrigger):
    """Fires with the oldest pending degradation signal in `signals_dir` (polled every `poll_interval` s)."""

    def __init__(self, *, signals_dir: str, poll_interval: float = 30.0) -> None:
        super().__init__()
        self.signals_dir = signals_dir
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"signals_dir": self.signals_dir, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from pathlib import Path

        from airloop.monitoring.retraining import SignalStore

        store = SignalStore(Path(self.signals_dir))
        self.log.info("waiting for a degradation signal in %s", store.pending_dir)
        while True:
            # Reading a few small files; off the event loop so other triggers keep running.
            pending = await asyncio.to_thread(store.pending)
            if pending:
                signal = pending[0]
                self.log.info("degradation signal %s: %s", signal.id, signal.summary)
                yield TriggerEvent({"signal": signal.model_dump(mode="json")})
                return
            await asyncio.sleep(self.poll_interval)

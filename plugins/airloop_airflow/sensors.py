"""Sensors for the closed loop; they defer to the triggerer while they wait."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import BaseSensorOperator

from airloop_airflow.triggers import DegradationSignalTrigger


class DegradationSensor(BaseSensorOperator):
    """Waits, deferred, until monitoring raises a degradation signal; returns the signal (XCom).

    The signals folder (the pipeline's, found by the DAG's id) and the poll interval come from the
    settings (`AIRLOOP_HOME`, `AIRLOOP_SIGNAL_POLL_SECONDS`) when the task runs, not when the DAG is parsed.
    """

    template_fields = ()

    def __init__(self, *, timeout: dt.timedelta = dt.timedelta(hours=6), **kwargs: Any) -> None:
        super().__init__(timeout=timeout, **kwargs)

    def execute(self, context: Any) -> Any:
        from airloop.monitoring.retraining import SignalStore
        from airloop_airflow.monitoring import signal_poll_seconds, signals_dir

        folder = signals_dir(context["dag_run"].dag_id)
        pending = SignalStore(folder).pending()
        if pending:  # already there: no need to defer at all
            return pending[0].model_dump(mode="json")
        self.defer(
            trigger=DegradationSignalTrigger(signals_dir=str(folder), poll_interval=signal_poll_seconds()),
            method_name="execute_complete",
            timeout=self.timeout if isinstance(self.timeout, dt.timedelta) else dt.timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        return event["signal"]

    def poke(self, context: Any) -> bool:  # never used: this sensor always defers
        raise NotImplementedError("DegradationSensor is deferrable only")

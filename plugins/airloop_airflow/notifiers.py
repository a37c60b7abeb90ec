"""Alerts through Airflow's notifier interface: a task's log, the alert file, and configured channels."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from airflow.sdk import BaseNotifier, get_current_context
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)

#: XCom key under which a failing task leaves the reason its DAG's failure alert carries. A DAG's
#: on_failure_callback runs in the dag-processor and is told no exception, only the failed task.
FAILURE_KEY = "airloop_failure"


def record_failure(title: str, error: Exception) -> None:
    """Leave `title` and the error's message for the alert, should this try end the task.

    A retry clears it when it starts (Airflow clears a task's XComs), so only the last try's stays.
    """
    get_current_context()["ti"].xcom_push(key=FAILURE_KEY, value={"title": title, "detail": str(error)})


def fail_with_reason(title: str, error: Exception) -> NoReturn:
    """Fail the running task for good (no retry), leaving `title` and the error's message for the alert."""
    record_failure(title, error)
    raise AirflowFailException(str(error)) from error


class AirloopNotifier(BaseNotifier):
    """Send an alert (see `airloop.monitoring.alerts`); a DAG's on_failure_callback by default.

    As a DAG's callback, the alert carries what the failed task recorded with
    :func:`record_failure` (a quarantined batch's failed expectations, a deploy's failed check),
    else the exception (a task's callback is given one), else where to read the log.
    """

    template_fields = ("title", "detail")

    def __init__(self, *, title: str | None = None, detail: str | None = None, severity: str = "warning") -> None:
        super().__init__()
        self.title = title
        self.detail = detail
        self.severity = severity

    def notify(self, context: Any) -> None:
        from airloop.config import AlertsConfig
        from airloop.monitoring.alerts import Alert, send_alert
        from airloop.settings import load_settings

        settings = load_settings()
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        dag = context.get("dag")
        where = {
            "dag_id": getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", None),
            "run_id": getattr(dag_run, "run_id", None) or context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
        }
        recorded = _recorded_failure(ti) if self.title is None or self.detail is None else {}
        failed = f"{where['dag_id']}.{where['task_id']}" if where["task_id"] else f"{where['dag_id']} run"
        title = self.title or recorded.get("title") or f"{failed} failed"
        detail = self.detail or recorded.get("detail") or _failure_detail(context, ti)
        alert = Alert(title=title, detail=detail, severity=self.severity, context={k: v for k, v in where.items() if v})
        pipeline = settings.load_pipelines().of_dag(where["dag_id"] or "")
        # A pipeline whose file broke since the run started still alerts, in the log and alerts.jsonl.
        channels = pipeline.config.monitoring.alerts if pipeline else AlertsConfig()
        send_alert(alert, home=settings.home, channels=channels)


def _recorded_failure(ti: Any) -> dict[str, str]:
    """What the failed task left with :func:`record_failure`; empty when it left nothing."""
    if ti is None or not getattr(ti, "task_id", None):
        return {}
    try:
        found = ti.xcom_pull(task_ids=ti.task_id, key=FAILURE_KEY)
    except Exception:  # the alert goes out without it: a missing detail must not stop it
        log.warning("could not read the failure reason of %s; alerting without it", ti.task_id, exc_info=True)
        return {}
    return found if isinstance(found, dict) else {}


def _failure_detail(context: Any, ti: Any) -> str:
    """The exception (a task's callback), else why the run failed and where its log is."""
    if context.get("exception"):
        return str(context["exception"])
    why = context.get("reason") or "failed"  # a DAG's callback: task_failure, timed_out, ...
    if ti is None or not getattr(ti, "task_id", None):
        return f"{why}; see the run in the Airflow UI"
    log_url = getattr(ti, "log_url", None)
    return f"{why}: see the log of task {ti.task_id}" + (f" at {log_url}" if log_url else "")

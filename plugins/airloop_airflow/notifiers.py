"""Alerts through Airflow's notifier interface: a task's log, the alert file, and configured channels."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier


class AirloopNotifier(BaseNotifier):
    """Send an alert (see `airloop.monitoring.alerts`); a DAG's on_failure_callback by default."""

    template_fields = ("title", "detail")

    def __init__(self, *, title: str | None = None, detail: str | None = None, severity: str = "warning") -> None:
        super().__init__()
        self.title = title
        self.detail = detail
        self.severity = severity

    def notify(self, context: Any) -> None:
        from airloop.config import load_config
        from airloop.monitoring.alerts import Alert, send_alert
        from airloop.settings import load_settings

        settings = load_settings()
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        where = {
            "dag_id": getattr(dag_run, "dag_id", None),
            "run_id": getattr(dag_run, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
        }
        title = self.title or f"{where['dag_id']}.{where['task_id']} failed"
        detail = self.detail or str(context.get("exception") or "see the task log")
        alert = Alert(title=title, detail=detail, severity=self.severity, context={k: v for k, v in where.items() if v})
        send_alert(alert, home=settings.home, channels=load_config(settings.config).monitoring.alerts)

"""Alerts: always the log and `<home>/alerts/alerts.jsonl`; a webhook, Slack or email by config."""

from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from airloop.config import AlertsConfig

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]


class AlertDeliveryError(RuntimeError):
    """A configured channel did not take the alert (it is still in the log and the alert file)."""


class Alert(BaseModel):
    title: str
    detail: str
    severity: Severity = "warning"
    at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    context: dict[str, Any] = Field(default_factory=dict)

    @property
    def text(self) -> str:
        return f"[airloop {self.severity}] {self.title}: {self.detail}"


def alerts_file(home: Path) -> Path:
    from airloop.state import StateLayout

    return StateLayout(Path(home)).alerts


def send_alert(alert: Alert, *, home: Path, channels: AlertsConfig) -> None:
    """Deliver to every channel; raise :class:`AlertDeliveryError` naming the ones that failed."""
    log.warning("%s", alert.text)
    path = alerts_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(alert.model_dump_json() + "\n")
    failures = []
    for name, deliver in _channels(channels):
        try:
            deliver(alert)
        except (OSError, httpx.HTTPError, smtplib.SMTPException, KeyError) as err:
            failures.append(f"{name}: {err}")
    if failures:
        raise AlertDeliveryError(f"alert {alert.title!r} not delivered to: {'; '.join(failures)}")


def read_alerts(home: Path) -> list[Alert]:
    path = alerts_file(home)
    if not path.exists():
        return []
    return [Alert.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def _channels(config: AlertsConfig) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if config.webhook_url_env:
        out.append(("webhook", lambda a: _post(_env(config.webhook_url_env), a.model_dump(mode="json"))))
    if config.slack_webhook_url_env:
        out.append(("slack", lambda a: _post(_env(config.slack_webhook_url_env), {"text": a.text})))
    if config.email_to:
        out.append(("email", lambda a: _email(a, config.email_to)))
    return out


def _env(name: str | None) -> str:
    value = os.environ.get(name or "")
    if not value:
        raise KeyError(f"environment variable {name} (the channel's URL) is not set")
    return value


def _post(url: str, body: dict[str, Any]) -> None:
    httpx.post(url, json=body, timeout=10).raise_for_status()


def _email(alert: Alert, to: list[str]) -> None:
    message = EmailMessage()
    message["Subject"] = alert.text[:200]
    message["From"] = os.environ.get("AIRLOOP_SMTP_FROM", "airloop@localhost")
    message["To"] = ", ".join(to)
    message.set_content(f"{alert.detail}\n\n{alert.model_dump_json(indent=2)}")
    host, port = _env("AIRLOOP_SMTP_HOST"), int(os.environ.get("AIRLOOP_SMTP_PORT", "587"))
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        if os.environ.get("AIRLOOP_SMTP_STARTTLS", "true").lower() == "true":
            smtp.starttls()
        if user := os.environ.get("AIRLOOP_SMTP_USER"):
            smtp.login(user, os.environ.get("AIRLOOP_SMTP_PASSWORD", ""))
        smtp.send_message(message)

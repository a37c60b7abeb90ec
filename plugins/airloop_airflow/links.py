"""Buttons on a task in the Airflow UI that open what it produced: its MLflow run, its Evidently report.

A task that has something to link pushes the URL as XCom under the link's `xcom_key`
(see :func:`push_link`); tasks without one show the button disabled.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom


class _XComLink(BaseOperatorLink):
    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""


class MLflowRunLink(_XComLink):
    name = "MLflow run"


class EvidentlyReportLink(_XComLink):
    name = "Evidently report"


def push_link(context: Any, link: type[_XComLink], url: str | None) -> None:
    """Show `url` behind the link's button on the running task."""
    if url:
        context["ti"].xcom_push(key=link().xcom_key, value=url)

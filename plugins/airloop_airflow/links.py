"""Buttons on a task in the Airflow UI that open what it produced: its MLflow run, its Evidently report.

A task that has something to link pushes the URL as XCom under the link's `xcom_key`
(see :func:`push_link`); tasks without one show the button disabled.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


class _XComLink(BaseOperatorLink):
    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        # Global links are resolved in the API server, which reads XCom from the metadata
        # database: the same way Airflow resolves an operator's own links once serialized.
        from airflow.serialization.definitions.operatorlink import XComOperatorLink

        return XComOperatorLink(name=self.name, xcom_key=self.xcom_key).get_link(operator, ti_key=ti_key)


class MLflowRunLink(_XComLink):
    name = "MLflow run"


class EvidentlyReportLink(_XComLink):
    name = "Evidently report"


def push_link(context: Any, link: type[_XComLink], url: str | None) -> None:
    """Show `url` behind the link's button on the running task."""
    if url:
        context["ti"].xcom_push(key=link().xcom_key, value=url)

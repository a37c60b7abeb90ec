"""Registers Airloop's Airflow extensions: the extra links on every task, and the Airloop page."""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from airloop_airflow.links import EvidentlyReportLink, MLflowRunLink
from airloop_airflow.ui import AIRLOOP_APP, DAG_VIEW, NAV_VIEW


class AirloopPlugin(AirflowPlugin):
    name = "airloop"
    global_operator_extra_links: ClassVar[list] = [MLflowRunLink(), EvidentlyReportLink()]
    fastapi_apps: ClassVar[list] = [AIRLOOP_APP]
    external_views: ClassVar[list] = [NAV_VIEW, DAG_VIEW]

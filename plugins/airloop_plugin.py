"""Registers Airloop's Airflow extensions: the extra links on every task."""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from airloop_airflow.links import EvidentlyReportLink, MLflowRunLink


class AirloopPlugin(AirflowPlugin):
    name = "airloop"
    global_operator_extra_links: ClassVar[list] = [MLflowRunLink(), EvidentlyReportLink()]

"""Model health: what a person asks about a pipeline, gathered in one JSON-able summary.

`summary` gathers it (registry, deployment, monitoring windows, retraining ledger, quarantine);
`page` renders it as plain HTML with inline SVG charts. The Airflow UI plugin
(`plugins/airloop_airflow/ui.py`) serves both; nothing here imports Airflow.
"""

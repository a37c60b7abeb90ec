"""
### Airloop's pipelines folder, checked

Builds no DAG. Each pipeline file of `AIRLOOP_PIPELINES` that cannot be a pipeline (invalid YAML,
a field its config refuses, a name, registered model or serving port another pipeline has) makes
this file fail to import, with one line per broken file naming the file and the field: Airflow
shows it under the DAG import errors. The stage files (`airloop_training.py`, ...) build every
other pipeline's DAGs as usual, so one broken file never stops the others.
"""

from __future__ import annotations

from airloop_airflow.defaults import check_pipeline_files

check_pipeline_files()

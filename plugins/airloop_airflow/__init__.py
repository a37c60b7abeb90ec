"""Airflow glue for Airloop: Params, run context and the stage calls DAG tasks make.

Light at import time: DAG files import this package while the scheduler parses them.
"""

"""Airloop: closed-loop MLOps on Apache Airflow 3.

The core (this package) is plain Python: it knows nothing of Airflow, so every stage can be
called from a test, a shell or a DAG task alike.
"""

__version__ = "0.1.0"

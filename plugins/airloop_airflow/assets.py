"""Assets shared by producer and consumer DAGs, named once."""

from __future__ import annotations

from airflow.sdk import Asset


def degradation(pipeline: str) -> Asset:
    """Updated when the pipeline's monitoring has looked for degradation; the signal itself is in its signals folder."""
    return Asset(f"airloop://{pipeline}/monitoring/degradation")

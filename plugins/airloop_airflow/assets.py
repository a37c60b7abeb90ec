"""Assets shared by producer and consumer DAGs, declared once."""

from __future__ import annotations

from airflow.sdk import Asset

#: Updated when monitoring has looked for degradation; the signal itself is in the signals folder.
DEGRADATION = Asset("airloop://monitoring/degradation")

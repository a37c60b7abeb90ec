"""A monitoring window: a time range of served predictions, and the rows served in it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, model_validator

from airloop.serving.inference_log import read_inference_log

#: Columns every served-rows frame has besides the model's features.
SERVED_COLUMNS = ["request_id", "row", "timestamp", "model_name", "model_version", "prediction", "score"]


class MonitoringWindow(BaseModel):
    """[start, end) in UTC. Its id names its reports, runs and snapshots, so a rerun overwrites."""

    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _ordered_and_utc(self) -> MonitoringWindow:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=dt.UTC))
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} is not after its start {self.start}")
        return self

    @property
    def id(self) -> str:
        return f"{self.start.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}_{self.end.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def served_rows(inference_dir: Path, window: MonitoringWindow, model_name: str) -> pd.DataFrame:
    """Every row `model_name` served in the window: its features, prediction, score and ids."""
    first, last = window.start.astimezone(dt.UTC).date(), window.end.astimezone(dt.UTC).date()
    records = []
    features = []
    for record in read_inference_log(inference_dir, first, last + dt.timedelta(days=1)):
        if record["model_name"] != model_name:
            continue
        at = dt.datetime.fromisoformat(record["timestamp"])
        if not window.start <= at < window.end:
            continue
        features.append(record["features"])
        records.append([record[c] for c in SERVED_COLUMNS])
    meta = pd.DataFrame(records, columns=SERVED_COLUMNS)
    frame = pd.concat([meta, pd.DataFrame(features)], axis=1)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame["model_version"] = frame["model_version"].astype(str)
    return frame

"""The inference log: one JSON line per prediction, partitioned by day, for monitoring to read.

Each request's records are written with one `write` to a file opened for appending, so a crash
of the server loses at most the requests still in flight; nothing is buffered in the process.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

PARTITION = "date={date:%Y-%m-%d}"


class InferenceLog:
    """Appends prediction records under `folder/date=YYYY-MM-DD/`, one file per server process."""

    def __init__(self, folder: Path, *, model_name: str, model_version: str) -> None:
        self.folder = Path(folder)
        self.model_name = model_name
        self.model_version = model_version
        self._lock = threading.Lock()
        self._day: dt.date | None = None
        self._fd: int | None = None

    def append(self, request_id: str, at: dt.datetime, features: pd.DataFrame, labels: Any, scores: Any) -> None:
        """Record every row of one request with its prediction."""
        timestamp = at.isoformat()
        rows = features.replace({np.nan: None}).to_dict(orient="records")
        lines = b"".join(
            orjson.dumps(
                {
                    "request_id": request_id,
                    "row": i,
                    "timestamp": timestamp,
                    "model_name": self.model_name,
                    "model_version": self.model_version,
                    "features": row,
                    "prediction": label,
                    "score": float(score),
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            + b"\n"
            for i, (row, label, score) in enumerate(zip(rows, labels, scores, strict=True))
        )
        with self._lock:
            os.write(self._file_for(at.date()), lines)

    def check_writable(self, at: dt.datetime) -> None:
        """Open today's file now, so a log that cannot be written stops the server being ready."""
        with self._lock:
            self._file_for(at.date())

    def _file_for(self, day: dt.date) -> int:
        if day != self._day or self._fd is None:
            if self._fd is not None:
                os.close(self._fd)
            folder = self.folder / PARTITION.format(date=day)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{self.model_name}-v{self.model_version}-{os.getpid()}.jsonl"
            self._fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._day = day
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_inference_log(folder: Path, start: dt.date, end: dt.date) -> Iterator[dict[str, Any]]:
    """Every record logged on days in [start, end)."""
    day = start
    while day < end:
        for file in sorted((Path(folder) / PARTITION.format(date=day)).glob("*.jsonl")):
            with file.open("rb") as handle:
                for line in handle:
                    if line.endswith(b"\n"):  # a torn last line from a crash is skipped
                        yield orjson.loads(line)
        day += dt.timedelta(days=1)

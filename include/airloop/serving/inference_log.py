"""The inference log: one JSON line per request, partitioned by day, for monitoring to read.

A line is `{"request_id", "timestamp", "model_name", "model_version", "rows", "request": {...},
"prediction": [...], "score": [...]}`, `request` the JSON body as the client sent it (any of
MLflow's formats: `airloop.serving.payload`), copied into the line, not written out again: for a
1,000-row request that copy costs a small fraction of serializing its 19,000 values. A request
without such a body (CSV, JSON with NaN, a column left out; a shadow's copy) has `"features":
{column: [value per row]}` instead, as MLflow's `inputs` format has them, written by orjson from
the arrays. `read_inference_log` yields one record per row, `row` its index in the request, and
reads the one-line-per-row logs of earlier versions too.

Each request is written with one `write` to a file opened for appending, so a crash of the
server loses at most the requests still in flight; nothing is buffered in the process.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from airloop.serving.payload import rows_by_column
from airloop.serving.rows import Rows, row_count

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

    def append(
        self, request_id: str, at: dt.datetime, features: Rows, labels: Any, scores: Any, *, sent: bytes | None = None
    ) -> None:
        """Record one request's rows with their predictions, in one line (a missing or infinite value as null).

        `sent`: the request's body, strict JSON that parsed into these rows, kept as it is."""
        rows: dict[str, Any]
        if sent is None:
            rows = {"features": {str(name): _json_column(column) for name, column in features.items()}}
        else:  # a newline in valid JSON is whitespace: a space keeps the line one line
            rows = {"request": orjson.Fragment(sent.replace(b"\n", b" ") if b"\n" in sent else sent)}
        line = orjson.dumps(
            {
                "request_id": request_id,
                "timestamp": at.isoformat(),
                "model_name": self.model_name,
                "model_version": self.model_version,
                "rows": row_count(features),
                **rows,
                "prediction": _json_column(labels),
                "score": _json_column(np.asarray(scores, dtype="float64")),
            },
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
        )
        with self._lock:
            os.write(self._file_for(at.date()), line)

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


def _json_column(values: Any) -> Any:
    """A column as orjson writes it fastest: a numeric or boolean array as it is, anything else as a
    list with every missing value None."""
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if array.dtype.kind in "fiub":
        return np.ascontiguousarray(array)
    missing = pd.isna(array)
    if not missing.any():
        return array.tolist()
    return [None if gap else value for value, gap in zip(array.tolist(), missing.tolist(), strict=True)]


def read_inference_log(folder: Path, start: dt.date, end: dt.date) -> Iterator[dict[str, Any]]:
    """Every row logged on days in [start, end), one record each: request id, row, timestamp, model
    name and version, features (by column), prediction and score."""
    days = (start + dt.timedelta(days=n) for n in range((end - start).days))
    files = (f for day in days for f in sorted((Path(folder) / PARTITION.format(date=day)).glob("*.jsonl")))
    for request in _requests(files):
        yield from _rows(request)


def count_logged_rows(folder: Path) -> int:
    """How many rows the log under `folder` holds, every day."""
    return sum(_row_count(request) for request in _requests(Path(folder).rglob("*.jsonl")))


def _requests(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Each line of these files as written; a torn last line from a crash is skipped."""
    for file in files:
        with file.open("rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    yield orjson.loads(line)


def _one_row_per_line(request: dict[str, Any]) -> bool:
    """A line of a log written before requests were logged whole: one row, its own `row` index."""
    return "row" in request


def _row_count(request: dict[str, Any]) -> int:
    return 1 if _one_row_per_line(request) else int(request["rows"])


def _rows(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if _one_row_per_line(request):
        yield request
        return
    head = {key: request[key] for key in ("request_id", "timestamp", "model_name", "model_version")}
    features = rows_by_column(request["request"])[1] if "request" in request else request["features"]
    for row, (prediction, score) in enumerate(zip(request["prediction"], request["score"], strict=True)):
        yield {
            **head,
            "row": row,
            "features": {name: values[row] for name, values in features.items()},
            "prediction": prediction,
            "score": score,
        }

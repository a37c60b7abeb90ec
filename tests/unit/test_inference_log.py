"""The inference log's format: one line per request, its rows as columns; read back one record per row."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import orjson
import pandas as pd

from airloop.serving.inference_log import InferenceLog, count_logged_rows, read_inference_log

AT = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
DAY = AT.date()


def test_a_request_is_one_line_and_reads_back_as_one_record_per_row(tmp_path):
    features = pd.DataFrame(
        {
            "distance": [1.5, math.nan, math.inf],
            "carrier": ["UA", None, "9E"],
            "hour": [5.0, 6.0, 7.0],
        }
    )
    log = InferenceLog(tmp_path, model_name="m", model_version="3")
    log.append("req-1", AT, features, np.array(["late", "on time", "late"], dtype=object), np.array([0.9, 0.2, 0.7]))
    log.append("req-2", AT, features.head(1), np.array(["late"], dtype=object), np.array([0.9]))
    log.close()

    [file] = (tmp_path / f"date={DAY:%Y-%m-%d}").glob("*.jsonl")
    lines = file.read_bytes().splitlines()
    assert len(lines) == 2  # one per request, not per row
    assert orjson.loads(lines[0])["features"]["carrier"] == ["UA", None, "9E"]

    records = list(read_inference_log(tmp_path, DAY, DAY + dt.timedelta(days=1)))
    assert [(r["request_id"], r["row"]) for r in records] == [("req-1", 0), ("req-1", 1), ("req-1", 2), ("req-2", 0)]
    assert records[1] == {
        "request_id": "req-1",
        "timestamp": AT.isoformat(),
        "model_name": "m",
        "model_version": "3",
        "row": 1,
        "features": {"distance": None, "carrier": None, "hour": 6.0},  # missing stays missing: null
        "prediction": "on time",
        "score": 0.2,
    }
    assert records[2]["features"]["distance"] is None  # an infinite value, as JSON cannot say it
    assert count_logged_rows(tmp_path) == 4


def test_logs_written_one_row_per_line_are_still_read(tmp_path):
    folder = tmp_path / f"date={DAY:%Y-%m-%d}"
    folder.mkdir()
    old = {
        "request_id": "old",
        "row": 0,
        "timestamp": AT.isoformat(),
        "model_name": "m",
        "model_version": "1",
        "features": {"hour": 5.0},
        "prediction": 1,
        "score": 0.8,
    }
    (folder / "m-v1-1.jsonl").write_bytes(orjson.dumps(old) + b"\n" + b'{"torn": ')  # and a torn last line
    log = InferenceLog(tmp_path, model_name="m", model_version="2")
    log.append("new", AT, pd.DataFrame({"hour": [6.0]}), np.array([0]), np.array([0.1]))
    log.close()

    records = list(read_inference_log(tmp_path, DAY, DAY + dt.timedelta(days=1)))
    assert sorted((r["request_id"], r["model_version"], r["features"]["hour"]) for r in records) == [
        ("new", "2", 6.0),
        ("old", "1", 5.0),
    ]
    assert count_logged_rows(tmp_path) == 2

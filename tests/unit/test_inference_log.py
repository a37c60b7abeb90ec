"""The inference log's format: one line per request, its rows as columns; read back one record per row."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import orjson
import pandas as pd
import pytest

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


SIGNATURE = {"distance": "double", "carrier": "string", "hour": "long"}


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": ["hour", "carrier", "distance"], "data": [[5, "UA", 1.5], [6, None, None]]}},
        {"dataframe_records": [{"distance": 1.5, "carrier": "UA", "hour": 5}, {"hour": 6, "distance": None}]},
        {"inputs": {"distance": [1.5, None], "carrier": ["UA", None], "hour": [5, 6]}},
    ],
    ids=["split", "records", "inputs"],
)
def test_a_json_body_is_logged_as_sent_and_reads_back_as_the_rows_it_asked(tmp_path, document):
    """The body is copied into the line, not written out again: a pretty-printed one stays one line."""
    from airloop.serving.payload import parse_request

    body = json.dumps(document, indent=2).encode()
    asked = parse_request(body, SIGNATURE, set(SIGNATURE))
    assert asked.body is body
    log = InferenceLog(tmp_path, model_name="m", model_version="3")
    log.append("req", AT, asked.columns, np.array([1, 0]), np.array([0.9, 0.2]), sent=asked.body)
    log.close()

    [file] = (tmp_path / f"date={DAY:%Y-%m-%d}").glob("*.jsonl")
    [line] = file.read_bytes().splitlines()
    assert orjson.loads(line)["request"] == document
    records = list(read_inference_log(tmp_path, DAY, DAY + dt.timedelta(days=1)))
    assert [(r["row"], r["prediction"], r["score"]) for r in records] == [(0, 1, 0.9), (1, 0, 0.2)]
    features = pd.DataFrame([r["features"] for r in records])[list(SIGNATURE)]
    logged_by_column = pd.DataFrame(asked.columns)
    pd.testing.assert_frame_equal(features.astype(logged_by_column.dtypes.to_dict()), logged_by_column)
    assert count_logged_rows(tmp_path) == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": {"distance": [NaN], "carrier": ["UA"], "hour": [5]}}',  # Python's json: not strict JSON
        b'{"inputs": {"distance": [1.5], "hour": [5]}}',  # a column left out: the log writes it, as null
    ],
    ids=["nan", "column-left-out"],
)
def test_a_body_the_log_cannot_keep_as_sent_is_logged_by_column(tmp_path, body):
    from airloop.serving.payload import parse_request

    asked = parse_request(body, SIGNATURE, {"distance", "hour"})
    assert asked.body is None
    log = InferenceLog(tmp_path, model_name="m", model_version="3")
    log.append("req", AT, asked.columns, np.array([1]), np.array([0.9]), sent=asked.body)
    log.close()

    [record] = read_inference_log(tmp_path, DAY, DAY + dt.timedelta(days=1))
    assert set(record["features"]) == set(SIGNATURE)
    assert record["features"]["hour"] == 5.0

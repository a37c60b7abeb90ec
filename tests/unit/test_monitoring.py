"""Monitoring's building blocks: windows over the inference log, late labels, the degradation policy, alerts."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from airloop.config import AlertsConfig, LabelConfig, MonitoringConfig
from airloop.monitoring.alerts import Alert, AlertDeliveryError, read_alerts, send_alert
from airloop.monitoring.labels import join_labels, read_labels, write_labels
from airloop.monitoring.policy import assess
from airloop.monitoring.window import MonitoringWindow, served_rows
from airloop.serving.inference_log import InferenceLog

UTC = dt.UTC


def test_a_window_must_end_after_it_starts():
    with pytest.raises(ValueError, match="not after its start"):
        MonitoringWindow(start=dt.datetime(2026, 1, 2, tzinfo=UTC), end=dt.datetime(2026, 1, 1, tzinfo=UTC))


def test_a_naive_window_is_utc_and_its_id_is_stable():
    window = MonitoringWindow(start=dt.datetime(2026, 1, 1), end=dt.datetime(2026, 1, 2))
    assert window.start.tzinfo is not None
    assert window.id == "20260101T000000Z_20260102T000000Z"


def test_served_rows_keep_only_the_window_and_the_model(tmp_path):
    log = InferenceLog(tmp_path, model_name="m", model_version="2")
    other = InferenceLog(tmp_path, model_name="other", model_version="1")
    features = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", None]})
    for hour in (0, 5, 23):
        log.append(f"r{hour}", dt.datetime(2026, 1, 1, hour, tzinfo=UTC), features, [0, 1], [0.2, 0.7])
    log.append("late", dt.datetime(2026, 1, 2, 0, tzinfo=UTC), features, [0, 1], [0.2, 0.7])
    other.append("o", dt.datetime(2026, 1, 1, 6, tzinfo=UTC), features, [0, 1], [0.2, 0.7])
    log.close()
    other.close()
    window = MonitoringWindow(start=dt.datetime(2026, 1, 1, 1, tzinfo=UTC), end=dt.datetime(2026, 1, 2, tzinfo=UTC))
    rows = served_rows(tmp_path, window, "m")
    assert sorted(set(rows["request_id"])) == ["r23", "r5"]
    assert list(rows["row"]) == [0, 1, 0, 1]
    assert rows["model_version"].unique().tolist() == ["2"]
    assert rows["score"].tolist() == [0.2, 0.7, 0.2, 0.7]
    assert {"x", "c"} <= set(rows.columns)


def test_an_inference_record_is_one_json_object_per_row_with_what_was_asked_and_answered(tmp_path):
    import math

    from airloop.serving.inference_log import read_inference_log

    log = InferenceLog(tmp_path, model_name='m "quoted"', model_version="2")
    features = pd.DataFrame(
        {
            "x": [1.5, math.nan, math.inf, 1234567.125],
            "c": ['a "b"\nc', None, "\u00e9\u2028", "9E"],
            "flag": [True, False, True, False],
        }
    )
    at = dt.datetime(2026, 1, 1, 3, tzinfo=UTC)
    log.append('id,"1"', at, features, np.array([0, 1, 1, 0]), np.array([0.125, 0.875, math.nan, 1 / 3]))
    log.append("empty", at, features.iloc[:0], np.array([]), np.array([]))
    log.close()
    records = list(read_inference_log(tmp_path, at.date(), at.date() + dt.timedelta(days=1)))
    assert [r["row"] for r in records] == [0, 1, 2, 3]
    assert {r["request_id"] for r in records} == {'id,"1"'}
    assert {(r["model_name"], r["model_version"], r["timestamp"]) for r in records} == {
        ('m "quoted"', "2", at.isoformat())
    }
    assert [r["features"] for r in records] == [
        {"x": 1.5, "c": 'a "b"\nc', "flag": True},
        {"x": None, "c": None, "flag": False},  # missing: null
        {"x": None, "c": "\u00e9\u2028", "flag": True},  # not a number JSON can hold: null
        {"x": 1234567.125, "c": "9E", "flag": False},
    ]
    assert [r["prediction"] for r in records] == [0, 1, 1, 0]
    assert [r["score"] for r in records] == [0.125, 0.875, None, 1 / 3]  # scores exactly as computed


def test_labels_land_late_join_by_request_and_row_and_keep_the_latest(tmp_path):
    label = LabelConfig(column="arr_delay", threshold=15)
    served = pd.DataFrame({"request_id": ["a", "a", "b"], "row": [0, 1, 0], "score": [0.1, 0.9, 0.5]})
    assert read_labels(tmp_path, "arr_delay").empty
    write_labels(
        tmp_path,
        pd.DataFrame({"request_id": ["a", "b"], "row": [1, 0], "arr_delay": [30.0, None]}),
        label_column="arr_delay",
        arrived=dt.datetime(2026, 1, 2, tzinfo=UTC),
    )
    write_labels(
        tmp_path,
        pd.DataFrame({"request_id": ["a"], "row": [0], "arr_delay": [-5.0]}),
        label_column="arr_delay",
        arrived=dt.datetime(2026, 1, 3, tzinfo=UTC),
    )
    joined = join_labels(served, read_labels(tmp_path, "arr_delay"), label)
    assert joined.sort_values("row")[["request_id", "row", "target"]].values.tolist() == [["a", 0, 0], ["a", 1, 1]]


def test_a_labels_batch_without_its_keys_is_refused(tmp_path):
    with pytest.raises(ValueError, match="request_id"):
        write_labels(
            tmp_path, pd.DataFrame({"arr_delay": [1.0]}), label_column="arr_delay", arrived=dt.datetime.now(UTC)
        )


def _drift(drifted: list[str], total: int) -> dict:
    columns = [{"column": f"f{i}", "drifted": f"f{i}" in drifted} for i in range(total)]
    return {"columns": [*columns, {"column": "score", "drifted": True}], "outputs": ["score"]}


@pytest.mark.parametrize(
    ("drift", "kinds"),
    [
        pytest.param(_drift([], 10), [], id="healthy"),
        pytest.param(_drift(["f1", "f2"], 10), [], id="two-of-ten-is-below-the-share"),
        pytest.param(_drift(["f1", "f2", "f3"], 10), ["data_drift"], id="three-of-ten-is-drift"),
        pytest.param(_drift(["f0"], 10), ["key_feature_drift"], id="a-key-feature"),
    ],
)
def test_assess_with_drift_opted_in(drift, kinds):
    policy = MonitoringConfig.model_validate(
        {"drift": {"raises": True, "max_drifted_share": 0.3, "key_features": ["f0"]}}
    )
    found = assess(policy, drift=drift)
    assert [d.kind for d in found] == kinds
    assert all(d.detail for d in found)


def test_prediction_drift_is_reported_but_not_counted_as_a_feature():
    policy = MonitoringConfig.model_validate({"drift": {"raises": True}})
    assert assess(policy, drift=_drift([], 3)) == []


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_alerts_go_to_the_file_and_a_webhook_and_a_dead_channel_is_reported(tmp_path, monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HOOK", f"http://127.0.0.1:{server.server_port}/")
    try:
        send_alert(Alert(title="t", detail="d"), home=tmp_path, channels=AlertsConfig(webhook_url_env="HOOK"))
        assert _Hook.received[-1]["title"] == "t"
        monkeypatch.setenv("SLACK", "http://127.0.0.1:9/")  # nothing listens on the discard port
        with pytest.raises(AlertDeliveryError, match="slack"):
            send_alert(
                Alert(title="u", detail="d"), home=tmp_path, channels=AlertsConfig(slack_webhook_url_env="SLACK")
            )
    finally:
        server.shutdown()
    assert [a.title for a in read_alerts(tmp_path)] == ["t", "u"]  # kept even when a channel failed

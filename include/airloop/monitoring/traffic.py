"""A traffic simulator for replays: send landed flights to the serving endpoint, land their labels later.

It is what `make demo-loop` and the loop's tests use to play the world: each flight is scored at
its scheduled departure hour (sent as `X-Airloop-Event-Time`, which a server started with
`AIRLOOP_SERVING_REPLAY_CLOCK=true` logs as the time of the request), and its outcome becomes a
label only later, when :func:`land_labels` is called for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from pathlib import Path

import httpx
import orjson
import pandas as pd

from airloop.config import PipelineConfig
from airloop.data.sources import read_window
from airloop.monitoring.labels import write_labels


class TrafficError(RuntimeError):
    """The serving endpoint refused the simulated traffic."""


def flights_between(
    config: PipelineConfig, home: Path, start: dt.date, end: dt.date, *, rows: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """Landed flights of [start, end) (a seeded sample of `rows` of them), ordered by departure time."""
    frame, _ = read_window(config.dataset.source, home=home, start=start, end=end)
    if rows is not None and len(frame) > rows:
        frame = frame.sample(rows, random_state=seed)
    return frame.sort_values(config.dataset.time_column, kind="stable").reset_index(drop=True)


def send_traffic(
    url: str | httpx.Client,
    flights: pd.DataFrame,
    config: PipelineConfig,
    *,
    token: str | None = None,
    timeout: float = 30,
) -> pd.DataFrame:
    """Score every flight, one request per departure hour; returns (request_id, row, label) per flight.

    The label column is kept aside, for :func:`land_labels`: the server only sees features. `url`
    may be a client of its own (an in-process app's test client).
    """
    time_column, label = config.dataset.time_column, config.dataset.label.column
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    sent = []
    if isinstance(url, httpx.Client):
        connection: contextlib.AbstractContextManager[httpx.Client] = contextlib.nullcontext(url)
    else:
        connection = httpx.Client(base_url=url, timeout=timeout, headers=headers)
    with connection as client:
        for at, batch in flights.groupby(time_column, sort=True):
            request_id = uuid.uuid4().hex
            body = {"dataframe_split": batch[config.dataset.features].to_dict(orient="split", index=False)}
            answer = client.post(
                "/invocations",
                content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                headers={
                    "Content-Type": "application/json",
                    "X-Request-ID": request_id,
                    "X-Airloop-Event-Time": pd.Timestamp(at).isoformat(),
                },
            )
            if answer.status_code != 200:
                raise TrafficError(f"{client.base_url}/invocations answered {answer.status_code}: {answer.text[:300]}")
            sent.append(
                pd.DataFrame({"request_id": request_id, "row": range(len(batch)), label: batch[label].to_numpy()})
            )
    return pd.concat(sent, ignore_index=True) if sent else pd.DataFrame(columns=["request_id", "row", label])


def land_labels(folder: Path, sent: pd.DataFrame, config: PipelineConfig, *, arrived: dt.datetime) -> Path:
    """The flights have landed: their outcomes reach the labels feed."""
    return write_labels(folder, sent, label_column=config.dataset.label.column, arrived=arrived)

"""Dynamic batching: concurrent requests share a prediction and each gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd
import pytest

from airloop.serving.batching import MicroBatcher


class _Model:
    """Scores each row by its `x`; fails on x < 0; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.threads: list[int] = []

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(len(frame))
        self.threads.append(threading.get_ident())
        if (frame["x"] < 0).any():
            raise ValueError("negative x")
        return (frame["x"] > 5).to_numpy().astype(int), frame["x"].to_numpy() / 10


def _frame(*xs: float) -> pd.DataFrame:
    return pd.DataFrame({"x": list(xs)})


async def _gather(batcher: MicroBatcher, frames: list[pd.DataFrame]):
    return await asyncio.gather(*(batcher.predict(f) for f in frames), return_exceptions=True)


def test_a_lone_request_is_predicted_alone():
    model = _Model()
    labels, scores = asyncio.run(MicroBatcher(model.predict).predict(_frame(7, 1)))
    assert labels.tolist() == [1, 0]
    assert scores.tolist() == [0.7, 0.1]
    assert model.calls == [2]


def test_a_request_alone_in_the_server_is_predicted_on_the_event_loop_and_others_on_a_worker_thread():
    model = _Model()
    batcher = MicroBatcher(model.predict)

    async def two() -> None:
        labels, _ = await batcher.predict(_frame(7), inline=True)
        assert labels.tolist() == [1]
        await batcher.predict(_frame(1))

    asyncio.run(two())
    assert model.threads[0] == threading.get_ident()  # asyncio.run's loop runs on this thread
    assert model.threads[1] != threading.get_ident()


def test_inline_waits_its_turn_behind_a_queue():
    model = _Model()
    batcher = MicroBatcher(model.predict)

    async def behind() -> list[object]:
        return await asyncio.gather(batcher.predict(_frame(1)), batcher.predict(_frame(2), inline=True))

    results = asyncio.run(behind())
    assert [scores.tolist() for _, scores in results] == [[0.1], [0.2]]
    assert threading.get_ident() not in model.threads  # both on the worker: the queue was not empty


def test_concurrent_requests_share_calls_and_get_their_own_rows():
    model = _Model()
    frames = [_frame(i, i + 0.5) for i in range(8)]
    results = asyncio.run(_gather(MicroBatcher(model.predict), frames))
    for i, (labels, scores) in enumerate(results):
        assert scores.tolist() == pytest.approx([i / 10, (i + 0.5) / 10])
        assert labels.tolist() == [int(i > 5), int(i + 0.5 > 5)]
    assert sum(model.calls) == 16
    assert len(model.calls) < 8  # the first call runs alone; the rest wait for it and go together


def test_batches_stop_at_max_rows():
    model = _Model()
    asyncio.run(_gather(MicroBatcher(model.predict, max_rows=4), [_frame(1, 2, 3)] * 5))
    assert max(model.calls) <= 4


def test_one_bad_request_fails_alone():
    model = _Model()
    frames = [_frame(1), _frame(2), _frame(-1), _frame(3)]
    results = asyncio.run(_gather(MicroBatcher(model.predict), frames))
    assert isinstance(results[2], ValueError)
    assert [r[1].tolist() for i, r in enumerate(results) if i != 2] == [[0.1], [0.2], [0.3]]


def test_a_request_is_alone_only_when_one_connection_was_heard_from_in_the_last_second(tmp_path):
    from airloop.serving.app import ServingSettings, ServingState

    state = ServingState(ServingSettings(model_dir=tmp_path))
    state.in_flight = 1
    assert state.alone(("127.0.0.1", 5000), now=100.0)
    assert state.alone(("127.0.0.1", 5000), now=100.5)  # the same connection again
    assert not state.alone(("127.0.0.1", 5001), now=100.6)  # a second client: its requests may share
    assert not state.alone(("127.0.0.1", 5000), now=101.0)
    assert state.alone(("127.0.0.1", 5000), now=101.7)  # the second one has been quiet for over a second
    state.in_flight = 2
    assert not state.alone(("127.0.0.1", 5000), now=101.8)  # another request is being answered

"""The loop replay's shadow rule: a rejected challenger is re-judged on the live rows it shadowed."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_loop import Model, Run, _judge_shadow

from ..conftest import FLIGHTS_CONFIG

DAY = dt.timedelta(days=1)
TRAINED = dt.date(2013, 9, 12)  # the morning the challenger was trained and rejected


def _model(name: str) -> Model:
    return Model(id=name, trained_through=TRAINED - DAY, fitted=None, calibration=None, reference=None)


class _Replay:
    """What `_judge_shadow` asks of the replay: the rule's settings, a day's labels and a model's scores.

    Every day has the same labels; the champion ranks 70% of the pairs right, "better" all of them,
    "same" scores exactly as the champion does.
    """

    def __init__(self, rows_a_day: int = 900) -> None:
        from airloop.config import load_config

        self.config = load_config(FLIGHTS_CONFIG, {"promotion": {"shadow": {"days": 3, "min_rows": 500}}})
        labels = np.arange(rows_a_day) % 2
        self.features = defaultdict(lambda: (None, pd.Series(labels)))
        noisy = np.where(np.arange(rows_a_day) % 10 < 3, 1 - labels, labels) * 0.5 + 0.25
        self._scores = {"champion": noisy, "same": noisy, "better": labels.astype(float)}
        self.asked: list[tuple[str, dt.date]] = []

    def scores(self, model: Model, day: dt.date) -> np.ndarray:
        self.asked.append((model.id, day))
        return self._scores[model.id]


def _run(champion: Model, challenger: Model, served_days: int) -> Run:
    run = Run("policy", served={TRAINED + k * DAY: champion for k in range(served_days)})
    run.shadow = (challenger, TRAINED, {"key": "concept_shift:carrier=EV", "outcome": "rejected"})
    return run


@pytest.mark.parametrize(
    ("challenger_id", "served_days", "serves", "still_shadowing"),
    [
        pytest.param("better", 1, "better", False, id="wins-on-its-first-labelled-day"),
        pytest.param("same", 1, "champion", True, id="ties-and-keeps-shadowing"),
        pytest.param("same", 3, "champion", False, id="dropped-after-its-days"),
    ],
)
def test_a_shadowing_challenger_is_promoted_only_when_it_wins_on_the_same_rows(
    challenger_id, served_days, serves, still_shadowing
):
    champion, challenger = _model("champion"), _model(challenger_id)
    replay = _Replay()
    run = _run(champion, challenger, served_days)
    alarm = run.shadow[2]
    morning = TRAINED + served_days * DAY  # labels of the served days have landed (one day's delay)

    served = _judge_shadow(replay, run, champion, morning, delay=1)

    assert served.id == serves
    days = [TRAINED + k * DAY for k in range(served_days)]
    assert sorted(replay.asked) == sorted([("champion", d) for d in days] + [(challenger_id, d) for d in days])
    assert (run.shadow is not None) == still_shadowing
    assert run.shadow_promotions == ([morning] if serves == challenger_id else [])
    assert alarm["outcome"] == ("promoted after shadowing" if serves == challenger_id else "rejected")


def test_nothing_is_judged_before_a_shadowed_day_has_labels():
    champion, challenger = _model("champion"), _model("better")
    replay = _Replay()
    run = _run(champion, challenger, served_days=1)

    assert _judge_shadow(replay, run, champion, TRAINED, delay=1) is champion
    assert replay.asked == []
    assert run.shadow is not None


def test_too_few_labelled_rows_wait_for_more_days():
    champion, challenger = _model("champion"), _model("better")
    replay = _Replay(rows_a_day=300)  # min_rows 500: two days needed
    run = _run(champion, challenger, served_days=2)

    assert _judge_shadow(replay, run, champion, TRAINED + DAY, delay=1) is champion
    assert run.shadow is not None
    assert _judge_shadow(replay, run, champion, TRAINED + 2 * DAY, delay=1).id == "better"

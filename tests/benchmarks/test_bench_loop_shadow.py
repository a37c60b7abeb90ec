"""The loop replay's shadow rule: a rejected challenger is re-judged on the live rows it shadowed."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from benchmarks.bench_loop import Model, Run, _judge_shadow

from ..conftest import FLIGHTS_CONFIG

DAY = dt.timedelta(days=1)
TRAINED = dt.date(2013, 9, 12)  # the morning the challenger was trained and rejected


def _model(name: str) -> Model:
    return Model(id=name, trained_through=TRAINED - DAY, fitted=None, calibration=None, reference=None)


class _Replay:
    """What `_judge_shadow` asks of the replay: the rule's settings and ROC AUC on given days' rows."""

    def __init__(self, aucs: dict[str, float], rows_a_day: int = 900) -> None:
        from airloop.config import load_config

        self.config = load_config(FLIGHTS_CONFIG, {"promotion": {"shadow": {"days": 3, "min_rows": 500}}})
        self.features = defaultdict(lambda: (None, [0] * rows_a_day))  # a day's labels: only their count counts
        self.aucs = aucs
        self.asked: list[list[dt.date]] = []

    def auc_on(self, model: Model, days: list[dt.date]) -> float:
        self.asked.append(days)
        return self.aucs[model.id]


def _run(champion: Model, challenger: Model, served_days: int) -> Run:
    run = Run("policy", served={TRAINED + k * DAY: champion for k in range(served_days)})
    run.shadow = (challenger, TRAINED, {"key": "concept_shift:carrier=EV", "outcome": "rejected"})
    return run


@pytest.mark.parametrize(
    ("challenger_auc", "served_days", "serves", "still_shadowing"),
    [
        pytest.param(0.80, 1, "challenger", False, id="wins-on-its-first-labelled-day"),
        pytest.param(0.70, 1, "champion", True, id="ties-and-keeps-shadowing"),
        pytest.param(0.70, 3, "champion", False, id="dropped-after-its-days"),
    ],
)
def test_a_shadowing_challenger_is_promoted_only_when_it_wins_on_the_same_rows(
    challenger_auc, served_days, serves, still_shadowing
):
    champion, challenger = _model("champion"), _model("challenger")
    replay = _Replay({"champion": 0.70, "challenger": challenger_auc})
    run = _run(champion, challenger, served_days)
    alarm = run.shadow[2]
    morning = TRAINED + served_days * DAY  # labels of the served days have landed (one day's delay)

    served = _judge_shadow(replay, run, champion, morning, delay=1)

    assert served.id == serves
    assert replay.asked == [[TRAINED + k * DAY for k in range(served_days)]] * 2  # both, on the same days
    assert (run.shadow is not None) == still_shadowing
    assert run.shadow_promotions == ([morning] if serves == "challenger" else [])
    assert alarm["outcome"] == ("promoted after shadowing" if serves == "challenger" else "rejected")


def test_nothing_is_judged_before_a_shadowed_day_has_labels():
    champion, challenger = _model("champion"), _model("challenger")
    replay = _Replay({"champion": 0.5, "challenger": 0.9})
    run = _run(champion, challenger, served_days=1)

    assert _judge_shadow(replay, run, champion, TRAINED, delay=1) is champion
    assert replay.asked == []
    assert run.shadow is not None


def test_too_few_labelled_rows_wait_for_more_days():
    champion, challenger = _model("champion"), _model("challenger")
    replay = _Replay({"champion": 0.5, "challenger": 0.9}, rows_a_day=300)  # min_rows 500: two days needed
    run = _run(champion, challenger, served_days=2)

    assert _judge_shadow(replay, run, champion, TRAINED + DAY, delay=1) is champion
    assert _judge_shadow(replay, run, champion, TRAINED + 2 * DAY, delay=1).id == "challenger"
    assert replay.asked == [[TRAINED, TRAINED + DAY]] * 2

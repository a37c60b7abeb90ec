"""The one training procedure: held-out scoring, the refit on the whole window, recency weights."""

from __future__ import annotations

import pandas as pd
import pytest

from airloop.config import load_config
from airloop.training.features import feature_frame
from airloop.training.train import fit_and_evaluate, holdout_split
from tests.conftest import FLIGHTS_CONFIG

CARRIER = "EV"


@pytest.fixture(scope="module")
def shifted(landing_home):
    """Two weeks of flights; from the held-out days on, one carrier's flights arrive an hour later."""
    frame = pd.concat(pd.read_parquet(p) for p in sorted((landing_home / "landing" / "flights").glob("*/*.parquet")))
    frame = frame[frame["arr_delay"].notna()].reset_index(drop=True)
    config = load_config(FLIGHTS_CONFIG)
    _, holdout = holdout_split(frame, config)
    late = (frame["time_hour"] >= holdout["time_hour"].min()) & (frame["carrier"] == CARRIER)
    frame.loc[late, "arr_delay"] += 60
    return frame, frame[late]


def _fit(frame, **training):
    config = load_config(FLIGHTS_CONFIG, {"training": {"model": {"max_iter": 30}, "min_rows": 100, **training}})
    return config, fit_and_evaluate(frame, config)


def _mean_score(config, fitted, rows) -> float:
    return float(fitted.pipeline.predict_proba(feature_frame(rows, config.dataset))[:, 1].mean())


def test_the_refit_serves_what_the_held_out_days_taught_and_keeps_their_score(shifted):
    frame, late_rows = shifted
    config, refitted = _fit(frame, refit=True, recency_half_life_days=None)
    _, evaluated = _fit(frame, refit=False, recency_half_life_days=None)
    assert refitted.metrics == evaluated.metrics  # the held-out score judges the procedure, before the refit
    assert refitted.holdout_scores.tolist() == evaluated.holdout_scores.tolist()
    assert _mean_score(config, refitted, late_rows) > _mean_score(config, evaluated, late_rows) + 0.05


def test_recency_weights_learn_a_recent_change_faster(shifted):
    frame, late_rows = shifted
    config, even = _fit(frame, refit=True, recency_half_life_days=None)
    _, recent = _fit(frame, refit=True, recency_half_life_days=2)
    assert _mean_score(config, recent, late_rows) > _mean_score(config, even, late_rows)


def test_a_half_life_must_be_positive():
    with pytest.raises(ValueError, match="recency_half_life_days"):
        load_config(FLIGHTS_CONFIG, {"training": {"recency_half_life_days": 0}})

"""Shadow promotion on a real MLflow store, a real serving app's inference log and landed labels."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airloop import pipeline
from airloop.lineage import Lineage
from airloop.registry.shadow import SHADOW, compare_live, judge_shadow, start_shadow

from .test_training_and_promotion import _stages

WEAK = pipeline.RunOptions(window_days=7, model={"max_iter": 1, "max_leaf_nodes": 2, "learning_rate": 0.01})
STRONG = pipeline.RunOptions(window_days=7, model={"max_iter": 50})
LIVE_DAYS = [dt.date(2026, 3, 8), dt.date(2026, 3, 9), dt.date(2026, 3, 10)]  # after both models' data


@pytest.fixture(scope="module")
def world(tmp_path_factory, landing_home):
    """A weak champion that served three days of live traffic (labels not landed yet), and a strong
    challenger trained on the same window, which shadows it."""
    from starlette.testclient import TestClient

    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.traffic import flights_between
    from airloop.registry.versions import ModelRegistry
    from airloop.serving.app import ServingSettings, create_app
    from airloop.serving.model import fetch_model
    from airloop.settings import AirloopSettings

    root = tmp_path_factory.mktemp("shadow")
    home = root / "home"
    home.mkdir()
    (home / "landing").symlink_to(landing_home / "landing")
    settings = AirloopSettings(home=home, mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}", deploy_target="none")
    cwd = Path.cwd()
    os.chdir(root)  # the SQLite store keeps artifacts under the working directory
    try:
        versions = {}
        for name, options in (("weak", WEAK), ("strong", STRONG)):
            lineage = Lineage(run_id=f"manual__{name}")
            config, validated = _stages(settings, options, lineage)
            versions[name] = pipeline.register(
                settings, config, pipeline.train(settings, config, validated, lineage), lineage
            ).version
        registry = ModelRegistry(config.model_name, tracking_uri=settings.tracking_uri)
        registry.move_champion(versions["weak"])
        fetch_model(
            f"models:/{config.model_name}/{versions['weak']}", root / "served", tracking_uri=settings.tracking_uri
        )
    finally:
        os.chdir(cwd)
    paths = MonitoringPaths(settings, config)
    serving = ServingSettings(model_dir=root / "served", inference_log_dir=paths.inference, replay_clock=True)
    sent = {}
    with TestClient(create_app(serving)) as client:
        from airloop.monitoring.traffic import send_traffic

        for day in LIVE_DAYS:
            flights = flights_between(config, home, day, day + dt.timedelta(days=1), rows=700, seed=day.day)
            sent[day] = send_traffic(client, flights, config)
    return {"settings": settings, "config": config, "paths": paths, "sent": sent, "root": root, **versions}


def _land(world, days: list[dt.date]) -> None:
    from airloop.monitoring.traffic import land_labels

    for day in days:
        arrived = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), dt.UTC)
        land_labels(world["paths"].labels, world["sent"][day], world["config"], arrived=arrived)


def _judge(world, **shadow):
    config = world["config"].model_copy(deep=True)
    config.promotion.shadow = config.promotion.shadow.model_copy(update=shadow)
    cwd = Path.cwd()
    os.chdir(world["root"])
    try:
        return judge_shadow(world["settings"], config, now=dt.datetime(2026, 3, 20, tzinfo=dt.UTC))
    finally:
        os.chdir(cwd)


def _registry(world):
    from airloop.registry.versions import ModelRegistry

    return ModelRegistry(world["config"].model_name, tracking_uri=world["settings"].tracking_uri)


def test_the_shadow_waits_for_labels_then_wins_on_the_same_live_rows_and_is_promoted_through_the_gate(world):
    from airloop.deploy.service import promote_shadow_winner

    registry = _registry(world)
    start_shadow(registry, world["strong"], world["weak"])
    assert _judge(world).verdict == "pending"  # served, but no label has landed

    _land(world, LIVE_DAYS[:1])
    waiting = _judge(world, days=3, min_rows=1000)
    labelled = int(world["sent"][LIVE_DAYS[0]][world["config"].dataset.label.column].notna().sum())
    assert waiting.verdict == "pending"
    assert waiting.rows == labelled  # a cancelled flight never gets a label
    assert f"{labelled} labelled live rows so far (< 1000)" in waiting.reason
    assert registry.tags(world["strong"])[SHADOW] == "shadowing"

    _land(world, LIVE_DAYS[1:])
    verdict = _judge(world, days=2, min_rows=500)
    assert verdict.verdict == "won", verdict.reason
    assert verdict.days == ["2026-03-08", "2026-03-09"]  # only its first two labelled (UTC) days count
    assert 500 <= verdict.rows < sum(int(s.iloc[:, 2].notna().sum()) for s in world["sent"].values())
    assert verdict.challenger_score > verdict.champion_score + world["config"].promotion.min_improvement
    tags = registry.tags(world["strong"])
    assert tags[SHADOW] == "won"
    assert float(tags[f"{SHADOW}_champion_score"]) == pytest.approx(verdict.champion_score, abs=1e-6)

    assert _judge(world) is None  # the verdict was final: nothing shadows any more

    deployment = promote_shadow_winner(world["settings"], world["config"], verdict)
    assert deployment is not None
    assert deployment.target == "none"
    assert registry.champion() == world["strong"]
    assert registry.tags(world["strong"])["promotion.decision"] == "promoted"
    assert registry.tags(world["strong"])["promotion.reason"].startswith("won in shadow")
    registry.move_champion(world["weak"])  # as it was, for the next test


def test_a_shadow_whose_champion_changed_is_superseded(world):
    registry = _registry(world)
    start_shadow(registry, world["strong"], champion="99")  # it shadowed a version that no longer is champion
    verdict = _judge(world)
    assert verdict.verdict == "superseded"
    assert f"the champion is now v{world['weak']}" in verdict.reason
    assert registry.tags(world["strong"])[SHADOW] == "superseded"


def test_a_newer_shadow_supersedes_an_older_one(world):
    registry = _registry(world)
    start_shadow(registry, world["weak"], champion=world["strong"])
    start_shadow(registry, world["strong"], champion=world["weak"])
    assert registry.tags(world["weak"])[SHADOW] == "superseded"
    assert registry.tagged(SHADOW, "shadowing") == [world["strong"]]


def _live(days: list[str], rows: int, *, champion_noise: float, challenger_noise: float):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, rows * len(days))

    def scores(noise: float) -> np.ndarray:  # probabilities that rank the rows better the less noise
        return 1 / (1 + np.exp(-(2 * target - 1 + rng.normal(0, noise, len(target)))))

    frame = pd.DataFrame({"served_day": np.repeat(days, rows), "target": target, "score": scores(champion_noise)})
    return frame, scores(challenger_noise)


@pytest.mark.parametrize(
    ("days", "champion_noise", "challenger_noise", "verdict"),
    [
        pytest.param(["d1", "d2", "d3"], 1.0, 0.3, "won", id="better-live"),
        pytest.param(["d1", "d2", "d3"], 0.3, 1.0, "lost", id="worse-after-all-its-days"),
        pytest.param(["d1"], 0.3, 1.0, "pending", id="worse-with-days-to-go"),
        pytest.param(["d1", "d2", "d3"], 0.5, 0.5, "lost", id="a-tie-keeps-the-champion"),
    ],
)
def test_compare_live(flights_config, days, champion_noise, challenger_noise, verdict):
    config = flights_config.model_copy(deep=True)
    config.promotion.shadow = config.promotion.shadow.model_copy(update={"days": 3, "min_rows": 100})
    labelled, challenger = _live(days, 200, champion_noise=champion_noise, challenger_noise=challenger_noise)
    if champion_noise == challenger_noise:
        challenger = labelled["score"].to_numpy()
    assert compare_live(config, labelled, challenger)[0] == verdict


def test_compare_live_counts_only_the_first_days_and_needs_enough_rows(flights_config):
    config = flights_config.model_copy(deep=True)
    config.promotion.shadow = config.promotion.shadow.model_copy(update={"days": 2, "min_rows": 500})
    labelled, challenger = _live(["d1", "d2", "d3"], 200, champion_noise=1.0, challenger_noise=0.3)
    verdict, reason, found = compare_live(config, labelled, challenger)
    assert (verdict, found["rows"], found["days"]) == ("pending", 400, ["d1", "d2"])
    assert "(< 500)" in reason


def test_a_live_shadow_scores_each_request_beside_the_champion_and_is_judged_on_those_scores(world, tmp_path):
    """Issue 11's shadow: the rejected challenger is served beside the champion (the endpoint's shadow
    slot), scores a copy of each request under its id, and the judge reads those scores."""
    import time

    from starlette.testclient import TestClient

    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.traffic import flights_between, land_labels, send_traffic
    from airloop.registry.shadow import sync_shadow_slot
    from airloop.serving.app import ServingSettings, create_app
    from airloop.serving.inference_log import read_inference_log
    from airloop.serving.model import read_model_info

    home = tmp_path / "home"
    home.mkdir()
    (home / "landing").symlink_to(world["settings"].home / "landing")
    settings = world["settings"].model_copy(update={"home": home})
    config, registry = world["config"], _registry(world)
    paths = MonitoringPaths(settings, config)
    start_shadow(registry, world["strong"], world["weak"])
    cwd = Path.cwd()
    os.chdir(world["root"])
    try:
        assert sync_shadow_slot(settings, config) == world["strong"]
    finally:
        os.chdir(cwd)
    assert read_model_info(paths.shadow_slot).version == world["strong"]

    served_dir = world["root"] / "served"
    serving = ServingSettings(
        model_dir=served_dir, inference_log_dir=paths.inference, replay_clock=True, shadow_poll_seconds=0.05
    )
    sent = {}
    with TestClient(create_app(serving)) as client:
        deadline = time.monotonic() + 60
        while (client.get("/version").json()["shadow"]["model"] or {}).get("version") != world["strong"]:
            assert time.monotonic() < deadline, client.get("/version").json()
            time.sleep(0.05)
        assert client.get("/version").json()["version"] == world["weak"]  # the champion answers
        for day in LIVE_DAYS[:2]:
            flights = flights_between(config, home, day, day + dt.timedelta(days=1), rows=700, seed=day.day)
            sent[day] = send_traffic(client, flights, config)
        client.app.state.serving.shadow.drain()
    served = list(read_inference_log(paths.inference, LIVE_DAYS[0], LIVE_DAYS[2]))
    copied = list(read_inference_log(paths.shadow_inference, LIVE_DAYS[0], LIVE_DAYS[2]))
    assert {r["model_version"] for r in served} == {world["weak"]}
    assert {r["model_version"] for r in copied} == {world["strong"]}
    assert sorted((r["request_id"], r["row"]) for r in copied) == sorted((r["request_id"], r["row"]) for r in served)

    for day in LIVE_DAYS[:2]:
        arrived = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), dt.UTC)
        land_labels(paths.labels, sent[day], config, arrived=arrived)
    judged = config.model_copy(deep=True)
    judged.promotion.shadow = judged.promotion.shadow.model_copy(update={"days": 2, "min_rows": 500})
    os.chdir(world["root"])
    try:
        verdict = judge_shadow(settings, judged, now=dt.datetime(2026, 3, 20, tzinfo=dt.UTC))
    finally:
        os.chdir(cwd)
    assert verdict.verdict == "won", verdict.reason
    assert f"{verdict.rows} of {verdict.rows} of them scored live by the shadow" in verdict.reason
    assert not paths.shadow_slot.exists()  # judged: the slot is emptied, the endpoint stops shadowing

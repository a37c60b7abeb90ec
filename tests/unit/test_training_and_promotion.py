"""Training, registration and promotion against a real MLflow store (SQLite, no server)."""

from __future__ import annotations

import datetime as dt

import pytest

from airloop import pipeline
from airloop.lineage import Lineage
from airloop.pipeline import RunOptions
from airloop.registry import CHALLENGER, CHAMPION
from airloop.training.features import features_and_label, time_split
from airloop.training.train import TrainingDataError
from tests.conftest import flights

RUN_DATE = dt.date(2026, 3, 8)
WEEK = RunOptions(window_days=7)


@pytest.fixture
def mlflow_client(settings, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a file store keeps artifacts under the working directory
    return MlflowClient(tracking_uri=settings.tracking_uri)


def _alias(client, name, alias):
    return str(client.get_model_version_by_alias(name, alias).version)


def _stages(settings, options, lineage):
    config = pipeline.pipeline_config(flights(settings), options)
    snapshot = pipeline.ingest(settings, config, *pipeline.data_window(config, options, RUN_DATE))
    validated = pipeline.validate(settings, config, snapshot, lineage)
    return config, validated


def test_time_split_holds_out_the_latest_rows(flights_config, settings):
    frame = __import__("pandas").read_parquet(settings.home / "landing/flights/date=2026-03-02/flights.parquet")
    train, holdout = time_split(frame, "time_hour", 0.25)
    assert train["time_hour"].max() <= holdout["time_hour"].min()
    assert len(holdout) == round(len(frame) * 0.25)


def test_time_split_of_rows_already_in_order_is_the_same_split(flights_config, settings):
    frame = __import__("pandas").read_parquet(settings.home / "landing/flights/date=2026-03-02/flights.parquet")
    ordered = frame.sort_values("time_hour", kind="stable").reset_index(drop=True)
    assert not frame["time_hour"].is_monotonic_increasing  # the shuffled case sorts
    pairs = zip(time_split(ordered, "time_hour", 0.25), time_split(frame, "time_hour", 0.25), strict=True)
    for split, expected in pairs:
        __import__("pandas").testing.assert_frame_equal(split.reset_index(drop=True), expected.reset_index(drop=True))


def test_label_is_late_arrival_and_unlabelled_rows_are_left_out(flights_config, settings):
    frame = __import__("pandas").read_parquet(settings.home / "landing/flights/date=2026-03-02/flights.parquet")
    features, label = features_and_label(frame, flights_config.dataset)
    assert len(features) == frame["arr_delay"].notna().sum()
    assert label.tolist() == (frame["arr_delay"].dropna() >= 15).astype(int).tolist()
    assert "arr_delay" not in features.columns
    assert "dep_delay" not in features.columns


def test_first_model_becomes_champion_with_lineage(settings, mlflow_client, capsys, caplog):
    lineage = Lineage(dag_id="airloop_flights_training", run_id="manual__1", reason="test")
    config, validated = _stages(settings, WEEK, lineage)
    trained = pipeline.train(settings, config, validated, lineage)
    capsys.readouterr()
    caplog.set_level("INFO", logger="airloop.registry.promotion")
    candidate = pipeline.register(settings, config, trained, lineage)
    # MLflow prints its notices to stderr, which an Airflow task logs as errors: they are logged at INFO
    assert "Created version" not in capsys.readouterr().err
    notices = [r for r in caplog.records if r.name == "airloop.registry.promotion" and r.levelname == "INFO"]
    assert f"Created version '{candidate.version}' of model '{config.model_name}'." in [r.message for r in notices]
    decision = pipeline.promote(settings, config, candidate, force=False)

    assert decision.decision == "promoted"
    assert decision.reason == "no champion yet"
    assert 0.5 < trained.metrics["roc_auc"] < 1.0
    name = config.model_name
    assert _alias(mlflow_client, name, CHAMPION) == candidate.version
    assert _alias(mlflow_client, name, CHALLENGER) == candidate.version
    tags = mlflow_client.get_model_version(name, candidate.version).tags
    assert tags["airloop.snapshot_hash"] == validated.snapshot.content_hash
    assert tags["airloop.airflow_run_id"] == "manual__1"
    assert tags["airloop.promotion.decision"] == "promoted"
    assert tags["airloop.git_commit"]

    run = mlflow_client.get_run(trained.mlflow_run_id)
    assert run.data.tags["airloop.airflow_dag_id"] == "airloop_flights_training"
    assert run.data.tags["airloop.validation_run_id"] == validated.mlflow_run_id
    digests = {i.dataset.digest for i in run.inputs.dataset_inputs}
    assert digests == {validated.snapshot.content_hash[:32]}
    model = __import__("mlflow").pyfunc.load_model(trained.model_uri)
    inputs = {c.name for c in model.metadata.get_input_schema().inputs}
    assert inputs == set(config.dataset.features)


def test_rerunning_the_same_run_trains_and_registers_nothing_new(settings, mlflow_client):
    lineage = Lineage(dag_id="airloop_flights_training", run_id="manual__2")
    config, validated = _stages(settings, WEEK, lineage)
    first = pipeline.register(settings, config, pipeline.train(settings, config, validated, lineage), lineage)
    retrained = pipeline.train(settings, config, validated, lineage)
    again = pipeline.register(settings, config, retrained, lineage)
    assert retrained.reused
    assert retrained.mlflow_run_id == first.train.mlflow_run_id
    assert again.version == first.version
    assert len(mlflow_client.search_model_versions(f"name = '{config.model_name}'")) == 1


def test_weaker_challenger_is_rejected_and_the_champion_stays(settings, mlflow_client):
    strong, weak = Lineage(run_id="manual__strong"), Lineage(run_id="manual__weak")
    config, validated = _stages(settings, WEEK, strong)
    champion = pipeline.register(settings, config, pipeline.train(settings, config, validated, strong), strong)
    pipeline.promote(settings, config, champion, force=False)

    weak_options = RunOptions(window_days=7, model={"max_iter": 1, "max_leaf_nodes": 2, "learning_rate": 0.01})
    weak_config, weak_validated = _stages(settings, weak_options, weak)
    challenger = pipeline.register(
        settings, weak_config, pipeline.train(settings, weak_config, weak_validated, weak), weak
    )
    decision = pipeline.promote(settings, weak_config, challenger, force=False)

    assert decision.decision == "rejected"
    assert "does not beat" in decision.reason
    assert decision.champion_version == champion.version
    assert decision.champion_score > decision.challenger_score
    name = config.model_name
    assert _alias(mlflow_client, name, CHAMPION) == champion.version
    assert _alias(mlflow_client, name, CHALLENGER) == challenger.version
    assert mlflow_client.get_model_version(name, challenger.version).tags["airloop.promotion.decision"] == "rejected"

    forced = pipeline.promote(settings, weak_config, challenger, force=True)
    assert forced.decision == "promoted"
    assert forced.reason.startswith("forced")
    assert _alias(mlflow_client, name, CHAMPION) == challenger.version


def test_too_little_data_fails_with_advice(settings, mlflow_client):
    lineage = Lineage(run_id="manual__tiny")
    config, validated = _stages(settings, RunOptions(window_days=1), lineage)
    config.training.min_rows = 5000
    with pytest.raises(TrainingDataError, match="window_days"):
        pipeline.train(settings, config, validated, lineage)


def test_evaluation_decides_without_moving_the_champion(settings, mlflow_client):
    from airloop.registry.promotion import evaluate_challenger

    first, second = Lineage(run_id="manual__first"), Lineage(run_id="manual__second")
    config, validated = _stages(settings, WEEK, first)
    champion = pipeline.register(settings, config, pipeline.train(settings, config, validated, first), first)
    pipeline.promote(settings, config, champion, force=False)
    other = RunOptions(window_days=7, model={"max_iter": 20})
    other_config, other_validated = _stages(settings, other, second)
    challenger = pipeline.register(
        settings, other_config, pipeline.train(settings, other_config, other_validated, second), second
    )

    evaluation = evaluate_challenger(config, challenger, tracking_uri=settings.tracking_uri, force=True)

    assert evaluation.promote
    assert evaluation.champion_version == champion.version
    name = config.model_name
    assert _alias(mlflow_client, name, CHAMPION) == champion.version  # moved only once it proved servable
    tags = mlflow_client.get_model_version(name, challenger.version).tags
    assert "airloop.promotion.decision" not in tags
    assert tags["airloop.promotion.champion_version"] == champion.version


def test_a_winner_that_is_not_servable_leaves_alias_and_serving_on_the_champion(settings, mlflow_client, tmp_path):
    import socket

    import httpx

    from airloop.deploy import NotServableError
    from airloop.deploy.local import LocalDeployer
    from airloop.deploy.service import deploy_and_promote
    from airloop.registry.promotion import evaluate_challenger

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings.serving_port = probe.getsockname()[1]
    lineage = Lineage(run_id="manual__servable")
    config, validated = _stages(settings, WEEK, lineage)
    first = pipeline.register(settings, config, pipeline.train(settings, config, validated, lineage), lineage)
    try:
        served = deploy_and_promote(
            settings,
            config,
            evaluate_challenger(config, first, tracking_uri=settings.tracking_uri),
            target="local",
            lineage=lineage,
        )
        assert (served.decision.decision, served.deployment.version) == ("promoted", first.version)
        name = config.model_name
        assert _alias(mlflow_client, name, CHAMPION) == first.version

        retrained = RunOptions(window_days=7, model={"max_iter": 20})
        again = Lineage(run_id="manual__not_servable")
        second_config, second_validated = _stages(settings, retrained, again)
        second = pipeline.register(
            settings, second_config, pipeline.train(settings, second_config, second_validated, again), again
        )
        second_config.promotion.servability.p95_latency_ms = 0  # no instance answers in no time
        evaluation = evaluate_challenger(second_config, second, tracking_uri=settings.tracking_uri, force=True)
        with pytest.raises(NotServableError, match="latency"):
            deploy_and_promote(settings, second_config, evaluation, target="local", lineage=again)

        assert _alias(mlflow_client, name, CHAMPION) == first.version
        version = httpx.get(f"http://127.0.0.1:{settings.serving_port}/version", timeout=10).json()["version"]
        assert version == first.version
        tags = mlflow_client.get_model_version(name, second.version).tags
        assert tags["airloop.servable"] == "false"
        assert "p95_latency_ms" in tags["airloop.not_servable_reason"]
        assert tags["airloop.promotion.decision"] == "not_servable"
        assert mlflow_client.get_model_version(name, first.version).tags["airloop.servable"] == "true"
    finally:
        LocalDeployer(settings.home, settings.serving_port).stop()


def test_a_refitted_champion_is_scored_only_on_rows_it_was_not_fitted_on(settings, mlflow_client):
    """Refitted on its whole week, the champion has seen the start of a younger challenger's held-out rows."""
    import pandas as pd

    from airloop.data.snapshot import read_snapshot
    from airloop.registry.promotion import evaluate_challenger
    from airloop.tasks import evaluate
    from airloop.training.train import holdout_split

    older, younger = Lineage(run_id="manual__older"), Lineage(run_id="manual__younger")
    refit = RunOptions(window_days=7, model={"max_iter": 30})
    config, validated = _stages(settings, refit, older)
    config.training.refit = True
    champion = pipeline.register(settings, config, pipeline.train(settings, config, validated, older), older)
    pipeline.promote(settings, config, champion, force=False)
    fitted_through = pd.Timestamp(mlflow_client.get_run(champion.train.mlflow_run_id).data.params["fitted_through"])

    later = RunOptions(window_days=7, model={"max_iter": 30}, window_end=RUN_DATE + dt.timedelta(days=1))
    later_config, later_validated = _stages(settings, later, younger)
    later_config.training.refit = True
    challenger = pipeline.register(
        settings, later_config, pipeline.train(settings, later_config, later_validated, younger), younger
    )
    evaluation = evaluate_challenger(later_config, challenger, tracking_uri=settings.tracking_uri)

    _, holdout = holdout_split(read_snapshot(challenger.train.snapshot), later_config)
    x, y = features_and_label(holdout, later_config.dataset)
    times = pd.to_datetime(holdout.loc[y.index, later_config.dataset.time_column], utc=True)
    seen = (times <= fitted_through).to_numpy()
    assert 0 < seen.sum() < len(seen) - 200  # the champion saw some of these rows, and 200+ it did not
    model = __import__("mlflow").sklearn.load_model(f"models:/{config.model_name}/{champion.version}")
    on = {
        "unseen": evaluate("binary", y[~seen], model.predict_proba(x[~seen])[:, 1])["roc_auc"],
        "all": evaluate("binary", y, model.predict_proba(x)[:, 1])["roc_auc"],
    }
    assert evaluation.champion_score == pytest.approx(on["unseen"])
    assert on["all"] > on["unseen"]  # what the champion would have been credited with on rows it had seen
    assert evaluation.challenger_score != challenger.train.metrics["roc_auc"]  # the same rows for both


@pytest.mark.parametrize(
    ("hours_after", "fitted", "expected"),
    [
        pytest.param([1, 2, 3], None, [True, True, True], id="no-record-every-row"),
        pytest.param([-2, -1, *range(1, 201)], 0, [False, False, *[True] * 200], id="rows-after-the-champion"),
        pytest.param([-2, -1, 1, 2], 0, [True, True, True, True], id="too-few-left-every-row"),
    ],
)
def test_unseen_by_champion(hours_after, fitted, expected):
    from airloop.registry.promotion import unseen_by_champion

    origin = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
    times = [origin + dt.timedelta(hours=h) for h in hours_after]
    assert unseen_by_champion(times, None if fitted is None else origin).tolist() == expected

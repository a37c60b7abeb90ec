"""The model-health summary, read from a real MLflow registry (SQLite) and a real state folder."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from airloop.health.page import Links, render_page
from airloop.health.summary import (
    AirflowRun,
    Pipeline,
    pipeline_health,
    quarantine_report,
    window_report,
)
from airloop.monitoring.drift import compute_drift
from airloop.monitoring.monitor import WindowRecord
from airloop.monitoring.paths import MonitoringPaths
from airloop.monitoring.policy import Degradation
from airloop.monitoring.retraining import DegradationSignal, LedgerEntry, RetrainingLedger, SignalStore
from airloop.monitoring.signals import drifted_share
from airloop.monitoring.window import MonitoringWindow

MODEL = "airloop-flights-delay"
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
TRAINED = AirflowRun(
    dag_id="airloop_flights_training",
    run_id="manual__v1",
    state="success",
    start_date=T0,
    end_date=T0 + dt.timedelta(hours=1),
)
RETRAINED = AirflowRun(dag_id="airloop_flights_training", run_id="retrain__abc", state="failed", start_date=T0)


class RecordedRuns:
    """A `RunHistory` over runs given up front (in the plugin, Airflow's database stands behind it)."""

    def __init__(self, runs: Sequence[AirflowRun]) -> None:
        self.runs = list(runs)

    def find(self, dag_ids: Sequence[str], run_id: str) -> AirflowRun | None:
        return next((r for r in self.runs if r.run_id == run_id and r.dag_id in dag_ids), None)

    def recent(self, dag_id: str, limit: int) -> list[AirflowRun]:
        return [r for r in reversed(self.runs) if r.dag_id == dag_id][:limit]


class _Answer(BaseHTTPRequestHandler):
    status = 200
    body: ClassVar[dict] = {}

    def do_GET(self) -> None:
        payload = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answer() -> Iterator:
    """Start a real HTTP server answering every request with `(status, body)`; yields its URL maker."""
    servers = []

    def start(status: int, body: dict) -> str:
        handler = type("Handler", (_Answer,), {"status": status, "body": body})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pipeline(settings) -> Pipeline:
    return settings.load_pipelines().get("flights")


@pytest.fixture
def registry(settings):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    client.create_registered_model(MODEL)
    return client


def _register(client, settings, tags: dict[str, str]) -> str:
    experiment = client.get_experiment_by_name("health") or client.get_experiment(
        client.create_experiment("health", artifact_location=str(settings.home / "artifacts"))
    )
    run = client.create_run(experiment.experiment_id)
    version = client.create_model_version(
        MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags
    )
    return str(version.version)


def _closed_port() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_a_new_pipeline_has_nothing_to_show_yet(settings, pipeline, registry):
    health = pipeline_health(settings, pipeline, registry=registry, runs=RecordedRuns([]))

    assert (health.pipeline, health.model_name, health.metric) == ("flights", MODEL, "roc_auc")
    assert health.champion is None
    assert health.challenger is None
    assert health.serving is None
    assert health.windows == health.retraining == health.quarantined == health.versions == []
    assert health.registry_error is None
    assert health.mlflow_model_url is None  # a SQLite store has no UI to link to
    json.dumps(health.model_dump(mode="json"))  # JSON-able as it is


@pytest.mark.parametrize(
    "endpoint_state",
    [
        pytest.param(("1", f"{MODEL} v1"), id="endpoint-serves-the-champion"),
        pytest.param(("0", f"{MODEL} v0"), id="endpoint-serves-another-version"),
        pytest.param((None, None), id="endpoint-does-not-answer"),
    ],
)
def test_champion_and_challenger_with_their_scores_and_where_the_champion_serves(
    settings, pipeline, registry, answer, endpoint_state
):
    serves, answering = endpoint_state
    endpoint = answer(200, {"name": MODEL, "version": serves}) if serves else _closed_port()
    champion = _register(
        registry,
        settings,
        {
            "airloop.metric.roc_auc": "0.712300",
            "airloop.metric.f1": "0.501000",
            "airloop.promotion.decision": "promoted",
            "airloop.promotion.reason": "no champion yet",
            "airloop.promotion.champion_version": "none",
            "airloop.snapshot_id": "2026-03-01_2026-03-08",
            "airloop.airflow_dag_id": "airloop_flights_training",
            "airloop.airflow_run_id": TRAINED.run_id,
            "airloop.trigger_reason": "integration test",
            "airloop.deploy.target": "docker",
            "airloop.deploy.endpoint": endpoint,
            "airloop.deploy.image": "airloop/serving:airloop-flights-delay-v1",
            "airloop.deploy.instance": "airloop-serving-blue",
            "airloop.deploy.airflow_run_id": TRAINED.run_id,
        },
    )
    challenger = _register(
        registry,
        settings,
        {
            "airloop.metric.roc_auc": "0.700000",
            "airloop.promotion.decision": "rejected",
            "airloop.promotion.reason": "does not beat champion",
            "airloop.promotion.champion_version": champion,
            "airloop.promotion.champion_score": "0.715000",
            "airloop.airflow_run_id": "retrain__abc",
        },
    )
    registry.set_registered_model_alias(MODEL, "champion", champion)
    registry.set_registered_model_alias(MODEL, "challenger", challenger)

    health = pipeline_health(settings, pipeline, registry=registry, runs=RecordedRuns([TRAINED, RETRAINED]))

    assert health.champion is not None
    assert health.challenger is not None
    assert (health.champion.version, health.champion.aliases) == ("1", ["champion"])
    assert (health.champion.score, health.champion.metrics["f1"]) == (0.7123, 0.501)
    assert (health.champion.decision, health.champion.compared_with) == ("promoted", None)
    assert health.champion.training_run == TRAINED  # with its state, from the run history
    assert (health.challenger.version, health.challenger.aliases) == ("2", ["challenger"])
    assert (health.challenger.score, health.challenger.champion_score) == (0.7, 0.715)
    assert (health.challenger.decision, health.challenger.compared_with) == ("rejected", "1")
    assert health.challenger.training_run == RETRAINED  # no DAG tag: looked up among the pipeline's DAGs
    assert [v.version for v in health.versions] == ["2", "1"]

    serving = health.serving
    assert serving is not None
    assert (serving.version, serving.target, serving.endpoint) == ("1", "docker", endpoint)
    assert (serving.image, serving.instance) == ("airloop/serving:airloop-flights-delay-v1", "airloop-serving-blue")
    assert serving.deployed_by == TRAINED
    assert serving.since == TRAINED.end_date  # when the run that deployed it finished
    assert serving.answering == answering


def test_a_champion_never_deployed_serves_nowhere(settings, pipeline, registry):
    version = _register(registry, settings, {"airloop.metric.roc_auc": "0.7"})
    registry.set_registered_model_alias(MODEL, "champion", version)

    health = pipeline_health(settings, pipeline, registry=registry)

    assert health.champion is not None
    assert health.champion.version == version
    assert health.champion.training_run is None
    assert health.serving is None


def test_a_registry_that_refuses_is_reported_and_the_state_folder_still_shown(settings, pipeline, answer):
    from mlflow.tracking import MlflowClient

    refusing = answer(403, {"error_code": "PERMISSION_DENIED", "message": "Permission denied for the registry"})
    _save_window(settings, pipeline, _window(0), served_rows=0, note="no traffic in this window")

    health = pipeline_health(settings, pipeline, registry=MlflowClient(tracking_uri=refusing))

    assert health.registry_error is not None
    assert "Permission denied for the registry" in health.registry_error
    assert health.champion is None
    assert [w.note for w in health.windows] == ["no traffic in this window"]


def _window(day: int) -> MonitoringWindow:
    start = T0 + dt.timedelta(days=day)
    return MonitoringWindow(start=start, end=start + dt.timedelta(days=1))


def _save_window(settings, pipeline, window: MonitoringWindow, **fields) -> WindowRecord:
    """A window's record where `monitor_window` writes it."""
    record = WindowRecord(window=window, model_name=pipeline.config.model_name, computed_at=window.end, **fields)
    folder = MonitoringPaths(settings, pipeline.config).window_dir(window)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "window.json").write_text(record.model_dump_json())
    return record


def _drift(shift: float) -> dict:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"distance": rng.normal(1000, 200, 800), "carrier": rng.choice(["AA", "B6"], 800)})
    current = reference.assign(distance=reference["distance"] + shift)
    return compute_drift(reference, current, numeric=["distance"], categorical=["carrier"]).to_dict()


def test_windows_oldest_first_with_drift_share_and_scores_against_the_floor(settings, pipeline):
    drifted = _drift(shift=300.0)
    _save_window(settings, pipeline, _window(2), model_version="1", served_rows=900, drift=drifted, champion_score=0.71)
    _save_window(
        settings,
        pipeline,
        _window(1),
        model_version="1",
        served_rows=800,
        labels_used=600,
        drift=_drift(shift=0.0),
        performance={"roc_auc": 0.69, "precision": 0.4},
        estimated_performance={"roc_auc": 0.7, "reference_roc_auc": 0.72},
        champion_score=0.71,
        degradations=[Degradation(kind="concept_shift", detail="carrier=EV: 99% late", key="concept_shift:EV")],
    )
    _save_window(settings, pipeline, _window(0), note="no traffic in this window")

    windows = pipeline_health(settings, pipeline, registry=_no_registry(settings)).windows

    assert [w.id for w in windows] == [_window(d).id for d in (0, 1, 2)]
    empty, labelled, shifted = windows
    assert (empty.drift_share, empty.performance, empty.model_version) == (None, None, None)
    assert empty.note == "no traffic in this window"
    assert labelled.drift_share == 0.0
    assert (labelled.performance, labelled.estimated, labelled.validation_score) == (0.69, 0.7, 0.71)
    assert labelled.degradations == ["carrier=EV: 99% late"]
    assert shifted.drift_share == drifted_share(drifted) == 0.5  # one of the two features
    assert shifted.drifted == ["distance"]
    assert shifted.performance is None  # no labels yet

    latest = pipeline_health(settings, pipeline, registry=_no_registry(settings), windows=2).windows
    assert [w.id for w in latest] == [_window(d).id for d in (1, 2)]


def _no_registry(settings):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri)


def _signal(window: str, model: str = MODEL) -> DegradationSignal:
    return DegradationSignal(
        model_name=model,
        model_version="1",
        window_id=window,
        window_start=T0,
        window_end=T0 + dt.timedelta(days=1),
        reasons=[Degradation(kind="concept_shift", detail="carrier=EV: 99% late", key="concept_shift:carrier=EV")],
        raised_at=T0 + dt.timedelta(days=1),
    )


def test_the_retraining_ledger_newest_first_with_its_training_runs_and_pending_signals(settings, pipeline):
    paths = MonitoringPaths(settings, pipeline.config)
    ledger = RetrainingLedger(paths.ledger)
    first, second = _signal("w1"), _signal("w2")
    ledger.append(LedgerEntry.of(first, at=T0, action="retrain", reason="retraining for concept_shift"))
    ledger.append(
        LedgerEntry.of(
            first,
            at=T0 + dt.timedelta(hours=2),
            action="outcome",
            reason="challenger v2 rejected",
            outcome="rejected",
            training_run_id=RETRAINED.run_id,
        )
    )
    ledger.append(LedgerEntry.of(_signal("w1", model="another-model"), at=T0, action="retrain", reason="elsewhere"))
    ledger.append(LedgerEntry.of(second, at=T0 + dt.timedelta(hours=3), action="suppress", reason="duplicate"))
    store = SignalStore(paths.signals)
    store.raise_signal(_signal("w3"))
    store.raise_signal(_signal("w3", model="another-model"))

    health = pipeline_health(settings, pipeline, registry=_no_registry(settings), runs=RecordedRuns([RETRAINED]))

    assert [(e.action, e.outcome, e.reason) for e in health.retraining] == [
        ("suppress", None, "duplicate"),
        ("outcome", "rejected", "challenger v2 rejected"),
        ("retrain", None, "retraining for concept_shift"),
    ]
    assert health.retraining[1].training_run == RETRAINED
    assert health.retraining[0].key == "concept_shift:carrier=EV"
    assert [(s.window_id, s.kind) for s in health.pending_signals] == [("w3", "concept_shift")]
    assert health.recent_runs == [RETRAINED]


def test_a_quarantined_batch_names_its_failed_expectations_and_its_report(settings, pipeline):
    from airloop.data.snapshot import read_snapshot, write_snapshot
    from airloop.lineage import Lineage
    from airloop.pipeline import ingest
    from airloop.validation import DataValidationError
    from airloop.validation.checks import validate_snapshot

    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 8)
    frame = read_snapshot(ingest(settings, pipeline.config, start, end))
    frame.loc[frame.index[:7], "distance"] = -5
    bad = write_snapshot(frame, lake=settings.state.lake, dataset="flights", start=start, end=end, source="test")
    with pytest.raises(DataValidationError):
        validate_snapshot(
            pipeline.config, bad, lake=settings.state.lake, tracking_uri=None, lineage=Lineage(dag_id="t", run_id="r1")
        )

    health = pipeline_health(settings, pipeline, registry=_no_registry(settings))

    [batch] = health.quarantined
    assert (batch.snapshot_id, batch.window_start, batch.window_end) == ("2026-03-01_2026-03-08", start, end)
    assert batch.rows == len(frame)
    assert batch.failed == ["expect_column_values_to_be_between(distance)"]
    assert batch.evaluated is not None
    assert batch.evaluated > 1
    assert batch.has_report
    assert (batch.blocked_run.dag_id, batch.blocked_run.run_id) == ("t", "r1")
    assert batch.attempts == 0
    report = quarantine_report(settings, pipeline.config, batch.snapshot_id)
    assert report is not None
    assert "<html" in report.read_text().lower()


@pytest.mark.parametrize(
    "asked",
    [
        pytest.param("../../../etc", id="path-out-of-the-folder"),
        pytest.param("20260101T000000Z_20260102T000000Z", id="a-window-never-monitored"),
    ],
)
def test_reports_are_served_only_for_what_monitoring_and_validation_wrote(settings, pipeline, asked):
    record = _save_window(settings, pipeline, _window(0), model_version="1", served_rows=10)
    folder = MonitoringPaths(settings, pipeline.config).window_dir(record.window)
    (folder / "drift.html").write_text("<html>drift</html>")
    record.reports = {"drift": str(folder / "drift.html")}
    (folder / "window.json").write_text(record.model_dump_json())

    assert window_report(settings, pipeline.config, record.window.id, "drift") == folder / "drift.html"
    assert window_report(settings, pipeline.config, record.window.id, "performance") is None
    assert window_report(settings, pipeline.config, asked, "drift") is None
    assert quarantine_report(settings, pipeline.config, asked) is None


def test_each_stage_dag_belongs_to_its_pipeline(settings):
    found = settings.load_pipelines()
    assert found.of_dag("airloop_flights_monitoring") == found.get("flights")
    assert found.of_dag("example_bash_operator") is None


def test_a_version_leads_back_to_its_data_code_and_image_and_on_to_what_it_caused(settings, pipeline, registry):
    lineage = {"airloop.snapshot_id": "2026-02-01_2026-03-01", "airloop.snapshot_hash": "ab" * 32}
    champion = _register(
        registry,
        settings,
        {**lineage, "airloop.git_commit": "0123456789abcdef", "airloop.deploy.image": "airloop/serving:v1"},
    )
    registry.set_registered_model_alias(MODEL, "champion", champion)
    retrained = _register(
        registry,
        settings,
        {"airloop.airflow_dag_id": RETRAINED.dag_id, "airloop.airflow_run_id": RETRAINED.run_id},
    )
    for day in (0, 1):
        _save_window(settings, pipeline, _window(day), model_version=champion, served_rows=100)
    _save_window(settings, pipeline, _window(2), model_version=retrained, served_rows=100)
    signal = _signal("w1").model_copy(update={"model_version": champion})
    ledger = RetrainingLedger(MonitoringPaths(settings, pipeline.config).ledger)
    ledger.append(LedgerEntry.of(signal, at=T0, action="retrain", reason="r", training_run_id=RETRAINED.run_id))

    health = pipeline_health(settings, pipeline, registry=registry, runs=RecordedRuns([RETRAINED]))

    first = next(v for v in health.versions if v.version == champion)
    assert (first.snapshot_id, first.snapshot_hash) == (lineage["airloop.snapshot_id"], "ab" * 32)
    assert (first.git_commit, first.image) == ("0123456789abcdef", "airloop/serving:v1")
    assert first.windows == [_window(0).id, _window(1).id]
    assert first.retrained_into == [retrained]
    assert health.champion is not None
    assert health.champion.retrained_into == [retrained]
    assert health.retraining[0].produced_version == retrained
    second = next(v for v in health.versions if v.version == retrained)
    assert (second.windows, second.retrained_into, second.image) == ([_window(2).id], [], None)

    page = render_page([health], links=Links())
    assert "(data hash abababababab)" in page
    assert "0123456789ab" in page
    assert f"<dt>retrained into</dt><dd>v{retrained}</dd>" in page
    assert f"<dt>served windows</dt><dd>2 of those below ({_window(0).id} to {_window(1).id})</dd>" in page

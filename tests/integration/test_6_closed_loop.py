"""The closed loop on the real services: serving -> inference log -> monitoring -> signal ->
deferred sensor -> storm guards -> airloop_flights_training -> promotion -> deployment.

The world is replayed 2013 (serving runs with the replay clock, so a flight is logged at its own
departure hour). The steps build on each other and run in file order:

1. a frozen January champion is trained and deployed;
2. January-like traffic: no drift, so no retraining;
3. its labels land late: the January window's performance is recomputed by a later run;
4. July traffic: every weather and calendar feature drifts, which raises nothing by itself; but the
   January champion is six months old (`retraining.max_age_days`): exactly one retraining, for
   age, a new champion deployed, nothing more;
5. a harmful shift (carrier EV's flights all late, in the landing zone and the labels) seen on two
   labelled days in a row: a concept shift naming the carrier, exactly one retraining for it;
6. retraining that cannot win (the same data again) leaves the champion serving, counts toward
   the circuit breaker, and once it is open an alert goes out instead of another run;
7. the last of those losers shadows the champion: the endpoint scores a copy of each request with
   it under the same request id, and once the labels land the live comparison decides.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from airloop.config import load_config
from airloop.data.replay import fill_landing_zone
from airloop.monitoring.alerts import read_alerts
from airloop.monitoring.monitor import read_window_record
from airloop.monitoring.paths import MonitoringPaths
from airloop.monitoring.policy import Degradation
from airloop.monitoring.retraining import DegradationSignal, RetrainingLedger, SignalStore, consecutive_losses
from airloop.monitoring.traffic import flights_between, land_labels, send_traffic
from airloop.monitoring.window import MonitoringWindow
from airloop.registry.shadow import SHADOW, SHADOW_CHAMPION, SHADOWING
from airloop.registry.versions import ModelRegistry
from airloop.serving.inference_log import read_inference_log
from tests.conftest import flights_file

pytestmark = pytest.mark.integration

TRAINING, MONITORING, RETRAINING = (
    "airloop_flights_training",
    "airloop_flights_monitoring",
    "airloop_flights_retraining",
)
JANUARY = MonitoringWindow(start=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), end=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
JULY = MonitoringWindow(start=dt.datetime(2026, 7, 2, tzinfo=dt.UTC), end=dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
AUGUST_5 = MonitoringWindow(start=dt.datetime(2026, 8, 5, tzinfo=dt.UTC), end=dt.datetime(2026, 8, 6, tzinfo=dt.UTC))
AUGUST_6 = MonitoringWindow(start=dt.datetime(2026, 8, 6, tzinfo=dt.UTC), end=dt.datetime(2026, 8, 7, tzinfo=dt.UTC))
AUGUST_7 = MonitoringWindow(start=dt.datetime(2026, 8, 7, tzinfo=dt.UTC), end=dt.datetime(2026, 8, 8, tzinfo=dt.UTC))
QUIET = MonitoringWindow(start=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), end=dt.datetime(2026, 2, 2, tzinfo=dt.UTC))
ROWS = 2000  # fewer rows make high-cardinality columns (dest) look drifted by chance


@pytest.fixture(scope="module")
def loop(stack_settings, airflow, mlflow_client):
    """The state the steps share: config, paths, and the runs seen so far."""
    fill_landing_zone(stack_settings.state.landing / "flights", dt.date(2026, 1, 1), dt.date(2026, 8, 7))
    config = load_config(flights_file(stack_settings))
    paths = MonitoringPaths(stack_settings, config)
    # Unpausing starts a scheduled run over the last day, which watched the earlier tests'
    # traffic; let it finish and drop what it found, so the loop starts from a clean state.
    for dag_id in (MONITORING, RETRAINING):
        airflow.wait_for_dag(dag_id)
    airflow.unpause(MONITORING)
    scheduled = _wait_for(lambda: airflow.dag_runs(MONITORING), 120, "the scheduled monitoring run")[0]
    airflow.follow(MONITORING, scheduled["dag_run_id"], timeout=600)
    for leftover in SignalStore(paths.signals).pending_dir.glob("*.json"):
        leftover.unlink()
    airflow.unpause(RETRAINING)
    return {"config": config, "paths": paths, "state": {}}


def _serving(settings) -> dict:
    return httpx.get(f"http://127.0.0.1:{settings.serving_port}/version", timeout=10).json()


def _monitor(airflow, window: MonitoringWindow) -> str:
    run = airflow.trigger(
        MONITORING,
        logical_date=None,
        conf={"window_start": window.start.isoformat(), "window_end": window.end.isoformat(), "reason": "test"},
    )
    final = airflow.follow(MONITORING, run["dag_run_id"], timeout=600)
    assert final["state"] == "success", airflow.task_log(MONITORING, run["dag_run_id"], "monitor")[-3000:]
    return run["dag_run_id"]


def _training_runs(airflow) -> list[dict]:
    return [r for r in airflow.dag_runs(TRAINING) if r["dag_run_id"].startswith("retrain__")]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _settle(airflow, signals: SignalStore, timeout: float = 900) -> None:
    """Wait until no signal is pending and no retraining or training run is active."""

    def idle() -> bool:
        busy = [
            r
            for dag in (TRAINING, RETRAINING)
            for r in airflow.dag_runs(dag)
            if r["state"] in {"queued", "running"} and not _only_waiting(airflow, dag, r)
        ]
        return not busy and not signals.has_pending()

    _wait_for(idle, timeout, "the loop to settle")


def _only_waiting(airflow, dag: str, run: dict) -> bool:
    """A retraining run whose sensor is deferred, waiting: the loop's resting state."""
    if dag != RETRAINING:
        return False
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(dag, run["dag_run_id"])}
    return states.get("wait_for_degradation") in {"deferred", "scheduled", "queued", None}


def test_1_a_frozen_january_champion_serves(stack_settings, airflow, loop, mlflow_client):
    config = loop["config"]
    run = airflow.trigger(
        TRAINING,
        logical_date=None,
        conf={"window_end": "2026-02-01", "force_promote": True, "reason": "test: the January model"},
    )
    final = airflow.follow(TRAINING, run["dag_run_id"], timeout=900)
    assert final["state"] == "success"
    champion = mlflow_client.get_model_version_by_alias(config.model_name, "champion")
    assert _serving(stack_settings)["version"] == str(champion.version)
    loop["state"]["january"] = str(champion.version)


def test_2_traffic_like_the_training_data_raises_no_signal(stack_settings, airflow, loop):
    config, paths = loop["config"], loop["paths"]
    flights = flights_between(config, stack_settings.home, JANUARY.start.date(), JANUARY.end.date(), rows=ROWS)
    url = f"http://127.0.0.1:{stack_settings.serving_port}"
    loop["state"]["january_sent"] = send_traffic(url, flights, config)
    loop["state"]["january_flights"] = flights
    before = len(_training_runs(airflow))

    run_id = _monitor(airflow, JANUARY)

    record = read_window_record(paths, JANUARY.id)
    assert record is not None
    assert record.model_version == loop["state"]["january"]
    departures = pd.to_datetime(flights[config.dataset.time_column], utc=True)
    assert record.served_rows == int(((departures >= JANUARY.start) & (departures < JANUARY.end)).sum())
    assert record.drift is not None
    assert record.degradations == [], record.drift
    assert record.performance is None  # no labels yet
    assert airflow.xcom(MONITORING, run_id, "raise_signals") == []
    assert not SignalStore(paths.signals).has_pending()
    # The endpoint's own /metrics, beside the window: the traffic just sent, all answered.
    health = airflow.xcom(MONITORING, run_id, "check_serving")
    assert health["reachable"], health
    assert health["requests"] >= 1, health
    assert health["server_errors"] == 0, health
    assert json.loads(paths.serving_health(JANUARY).read_text())["requests"] == health["requests"]
    assert record.mlflow_run_id in (airflow.extra_links(MONITORING, run_id, "monitor")["MLflow run"] or "")
    # Evidently's reports are the `report` task's, beside the signals: on the window's record and its run.
    links = airflow.extra_links(MONITORING, run_id, "report")
    assert record.evidently_snapshot_ids[0] in (links["Evidently report"] or "")
    assert httpx.get(links["Evidently report"].split("/projects")[0] + "/api/version", timeout=10).status_code == 200
    assert Path(record.reports["drift"]).exists()
    time.sleep(3 * stack_settings.signal_poll_seconds)
    assert len(_training_runs(airflow)) == before


def test_3_late_labels_recompute_the_past_window(stack_settings, airflow, loop, mlflow_client):
    config, paths = loop["config"], loop["paths"]
    sent = loop["state"]["january_sent"]
    land_labels(paths.labels, sent, config, arrived=dt.datetime(2026, 2, 2, tzinfo=dt.UTC))

    run_id = _monitor(airflow, QUIET)  # a later run, over a window with no traffic at all

    recomputed = airflow.xcom(MONITORING, run_id, "backfill_late_labels")
    assert [r["window"] for r in recomputed] == [JANUARY.model_dump(mode="json")]
    record = read_window_record(paths, JANUARY.id)
    flights = loop["state"]["january_flights"]
    departures = pd.to_datetime(flights[config.dataset.time_column], utc=True)
    in_window = (departures >= JANUARY.start) & (departures < JANUARY.end)
    assert record.labels_used == int((in_window & flights[config.dataset.label.column].notna()).sum())
    assert record.performance is not None
    assert 0.5 < record.performance["roc_auc"] <= 1
    assert {"precision", "recall", "roc_auc"} <= set(record.performance)
    assert (paths.window_dir(JANUARY) / "performance.html").exists()
    run = mlflow_client.get_run(record.mlflow_run_id)
    assert run.data.metrics["perf.roc_auc"] == pytest.approx(record.performance["roc_auc"])
    assert run.data.tags["airloop.model_version"] == loop["state"]["january"]


def test_4_drift_alone_raises_nothing_but_an_old_champion_retrains_once(stack_settings, airflow, loop, mlflow_client):
    config, paths = loop["config"], loop["paths"]
    signals = SignalStore(paths.signals)
    flights = flights_between(config, stack_settings.home, JULY.start.date(), JULY.end.date(), rows=ROWS)
    send_traffic(f"http://127.0.0.1:{stack_settings.serving_port}", flights, config)
    before = len(_training_runs(airflow))

    _monitor(airflow, JULY)
    record = read_window_record(paths, JULY.id)
    drifted = [c["column"] for c in record.drift["columns"] if c["drifted"]]
    assert {"temp", "month"} <= set(drifted), record.drift
    assert record.degradations == []  # drift is reported, for people; it decides nothing
    assert record.estimated_performance is not None
    _monitor(airflow, JULY)  # the same finding again: not a second signal, not a second run

    runs = _wait_for(lambda: _training_runs(airflow)[before:], 300, "a retraining run")
    final = airflow.follow(TRAINING, runs[0]["dag_run_id"], timeout=900)
    assert final["state"] == "success"
    _settle(airflow, signals)

    runs = _training_runs(airflow)[before:]
    assert len(runs) == 1, [r["dag_run_id"] for r in runs]
    conf = runs[0]["conf"]
    assert conf["window_end"] == "2026-08-01"
    assert conf["degradation"]["window_id"] == JULY.id
    assert conf["reason"].startswith("retraining (stale)"), conf["reason"]
    assert f"max_age_days {config.retraining.max_age_days}" in conf["reason"]
    champion = mlflow_client.get_model_version_by_alias(config.model_name, "champion")
    assert str(champion.version) != loop["state"]["january"], "the July challenger should beat the January model"
    assert champion.tags["airloop.trigger_reason"].startswith("retraining (stale)")
    assert _serving(stack_settings)["version"] == str(champion.version)
    ledger = RetrainingLedger(paths.ledger).entries()
    assert [e.outcome for e in ledger if e.action == "outcome"] == ["promoted"]
    loop["state"]["july"] = str(champion.version)


def _carrier_late(stack_settings, day: dt.date, carrier: str = "EV", minutes: float = 60) -> None:
    """The world changes: from `day` on, one carrier's flights arrive an hour later (in the landing zone)."""
    partition = stack_settings.state.landing / "flights" / f"date={day:%Y-%m-%d}" / "flights.parquet"
    frame = pd.read_parquet(partition)
    frame.loc[frame["carrier"] == carrier, "arr_delay"] += minutes
    frame.to_parquet(partition, index=False)


def test_5_a_harmful_shift_seen_two_days_in_a_row_retrains_once_for_it(stack_settings, airflow, loop, mlflow_client):
    config, paths = loop["config"], loop["paths"]
    signals = SignalStore(paths.signals)
    url = f"http://127.0.0.1:{stack_settings.serving_port}"
    champion = loop["state"]["july"]
    before = len(_training_runs(airflow))
    for window in (AUGUST_5, AUGUST_6):
        _carrier_late(stack_settings, window.start.date())
        flights = flights_between(config, stack_settings.home, window.start.date(), window.end.date())
        sent = send_traffic(url, flights, config)
        land_labels(paths.labels, sent, config, arrived=window.end + dt.timedelta(hours=1))
        _monitor(airflow, window)

    first, second = read_window_record(paths, AUGUST_5.id), read_window_record(paths, AUGUST_6.id)
    assert first.model_version == second.model_version == champion
    assert first.degradations == []  # one labelled day is not yet a shift
    assert [(s.column, s.value) for s in first.shifts if s.column == "carrier"] == [("carrier", "EV")]
    (shift,) = second.degradations
    assert shift.kind == "concept_shift"
    assert shift.key == "concept_shift:carrier=EV"
    assert shift.evidence_days == 2

    runs = _wait_for(lambda: _training_runs(airflow)[before:], 300, "a retraining run")
    final = airflow.follow(TRAINING, runs[0]["dag_run_id"], timeout=900)
    assert final["state"] == "success"
    _settle(airflow, signals)
    runs = _training_runs(airflow)[before:]
    assert len(runs) == 1, [r["dag_run_id"] for r in runs]
    assert runs[0]["conf"]["reason"].startswith("retraining (concept_shift)")
    assert "carrier=EV" in runs[0]["conf"]["reason"]
    assert runs[0]["conf"]["window_end"] == "2026-08-07"
    ledger = RetrainingLedger(paths.ledger).entries()
    assert ledger[-1].action == "outcome"
    assert ledger[-1].key == "concept_shift:carrier=EV"
    served = mlflow_client.get_model_version_by_alias(config.model_name, "champion")
    assert _serving(stack_settings)["version"] == str(served.version)
    loop["state"]["champion"] = str(served.version)


def test_6_losing_challengers_keep_the_champion_and_open_the_circuit_breaker(
    stack_settings, airflow, loop, mlflow_client
):
    config, paths = loop["config"], loop["paths"]
    signals = SignalStore(paths.signals)
    champion = loop["state"]["champion"]
    before = len(_training_runs(airflow))
    lost = consecutive_losses(RetrainingLedger(paths.ledger).entries(), config.model_name, champion)
    to_open = config.monitoring.guards.circuit_breaker_after - lost
    assert to_open >= 1

    # Retraining on the champion's own (or older) data cannot beat it.
    kinds = ("data_drift", "key_feature_drift", "stale")[: to_open + 1]
    for n, kind in enumerate(kinds, start=1):
        assert signals.raise_signal(
            DegradationSignal(
                model_name=config.model_name,
                model_version=champion,
                window_id=f"manual-{n}",
                window_start=JULY.start,
                window_end=JULY.end,
                reasons=[Degradation(kind=kind, detail=f"test signal {n}")],
                raised_at=dt.datetime.now(dt.UTC),
            )
        )
        _wait_for(lambda: not signals.has_pending(), 300, f"signal {n} to be taken")
        _settle(airflow, signals)

    runs = _training_runs(airflow)[before:]
    assert len(runs) == to_open, "the last signal must meet the open circuit breaker, not start a run"
    assert [airflow.dag_run(TRAINING, r["dag_run_id"])["state"] for r in runs] == ["success"] * to_open
    assert str(mlflow_client.get_model_version_by_alias(config.model_name, "champion").version) == champion
    assert _serving(stack_settings)["version"] == champion
    ledger = RetrainingLedger(paths.ledger).entries()
    assert [e.outcome for e in ledger if e.action == "outcome"][-to_open:] == ["rejected"] * to_open
    assert ledger[-1].action == "alert"
    assert "circuit breaker open" in ledger[-1].reason
    alerts = read_alerts(stack_settings.home)
    assert any(a.title == "retraining stopped" and a.severity == "critical" for a in alerts)


def test_7_the_last_loser_shadows_live_requests_and_the_live_comparison_decides(
    stack_settings, airflow, loop, mlflow_client
):
    config, paths = loop["config"], loop["paths"]
    champion = loop["state"]["champion"]
    registry = ModelRegistry(config.model_name, tracking_uri=stack_settings.tracking_uri)
    (shadow,) = registry.tagged(SHADOW, SHADOWING)  # the last rejected challenger; the earlier ones superseded
    assert registry.tags(shadow)[SHADOW_CHAMPION] == champion
    assert shadow != champion
    # The deploy that rejected it put its model in the endpoint's shadow slot; the endpoint loads it.
    _wait_for(
        lambda: (_serving(stack_settings)["shadow"]["model"] or {}).get("version") == shadow,
        120,
        f"the serving endpoint to shadow v{shadow}",
    )

    # A day the champion has learned (carrier EV late, as on the two days before) and the
    # challenger, trained on data up to August 1, has not.
    _carrier_late(stack_settings, AUGUST_7.start.date())
    flights = flights_between(config, stack_settings.home, AUGUST_7.start.date(), AUGUST_7.end.date())
    scored = _serving(stack_settings)["shadow"]["scored"]
    sent = send_traffic(f"http://127.0.0.1:{stack_settings.serving_port}", flights, config)
    scored += sent["request_id"].nunique()
    _wait_for(lambda: _serving(stack_settings)["shadow"]["scored"] >= scored, 120, "the shadow to score the copies")
    assert _serving(stack_settings)["shadow"]["dropped"] == 0  # one request at a time: it never falls behind

    ids, day = set(sent["request_id"]), AUGUST_7.start.date()
    span = (day, day + dt.timedelta(days=2))  # the evening's flights are logged on the next UTC day
    served = [r for r in read_inference_log(paths.inference, *span) if r["request_id"] in ids]
    shadowed = [r for r in read_inference_log(paths.shadow_inference, *span) if r["request_id"] in ids]
    keys = set(zip(sent["request_id"], sent["row"], strict=True))
    assert {(r["request_id"], r["row"]) for r in served} == keys
    assert {(r["request_id"], r["row"]) for r in shadowed} == keys  # the same requests, under the same ids
    assert {r["model_version"] for r in served} == {champion}
    assert {r["model_version"] for r in shadowed} == {shadow}
    assert {r["timestamp"] for r in shadowed} == {r["timestamp"] for r in served}
    assert [r["score"] for r in shadowed] != [r["score"] for r in served]  # its own answers, kept from the client

    land_labels(paths.labels, sent, config, arrived=AUGUST_7.end + dt.timedelta(hours=1))
    run_id = _monitor(airflow, AUGUST_7)

    verdict = airflow.xcom(MONITORING, run_id, "judge_shadow")
    # Its first labelled day of live requests is the UTC day August 7 (the evening's flights are the 8th's).
    departures = pd.to_datetime(flights[config.dataset.time_column], utc=True)
    on_day = (departures >= AUGUST_7.start) & (departures < AUGUST_7.end)
    labelled = int((on_day & flights[config.dataset.label.column].notna()).sum())
    assert verdict["version"] == shadow
    assert verdict["rows"] == labelled >= config.promotion.shadow.min_rows
    assert verdict["days"] == [f"{day:%Y-%m-%d}"]
    assert f"{labelled} of {labelled} of them scored live by the shadow" in verdict["reason"]
    # One labelled day is all it gets here (`promotion.shadow.days` in the loop's config): it had
    # its day without learning what the champion had, so it is dropped.
    assert verdict["verdict"] == "lost", verdict
    assert verdict["challenger_score"] < verdict["champion_score"] + config.promotion.min_improvement
    tags = mlflow_client.get_model_version(config.model_name, shadow).tags
    assert tags[f"airloop.{SHADOW}"] == "lost"
    assert float(tags[f"airloop.{SHADOW}_champion_score"]) == pytest.approx(verdict["champion_score"], abs=1e-6)
    assert str(mlflow_client.get_model_version_by_alias(config.model_name, "champion").version) == champion
    assert _serving(stack_settings)["version"] == champion
    # Judged, it leaves the slot; the endpoint stops shadowing.
    assert not paths.shadow_slot.exists()
    _wait_for(lambda: _serving(stack_settings)["shadow"]["model"] is None, 120, "the endpoint to stop shadowing")

"""`airloop demo-loop`: replay 2013 against the running loop and print what happened when.

A frozen January model is trained and deployed. Then, month by month, a traffic simulator sends
that month's flights to the serving endpoint (logged at their departure times: the server runs
with the replay clock), the previous month's outcomes land as labels, and the pipeline's monitoring DAG
is triggered for the month. Nothing else is done by hand: degradation signals, the deferred
sensor, the storm guards, retraining, promotion and deployment are the loop's own. The timeline
and a month-by-month comparison with the frozen January model are printed at the end.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from airloop.pipelines import Pipeline
from airloop.settings import AirloopSettings

YEAR = 2026  # the replayed 2013 lands on this year's dates (see airloop.data.replay)
#: Storm guards for a year replayed in minutes: the production defaults are hours (see flights.yaml).
DEMO_GUARDS = {"cooldown_minutes": 1, "dedupe_hours": 24, "circuit_breaker_after": 3}
#: Monthly windows, labels a month late: look back further than the daily default.
DEMO_LABEL_LOOKBACK_DAYS = 120


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)

    def add(self, replay: str, what: str) -> None:
        line = f"{time.monotonic() - self.started:6.0f}s  {replay:10}  {what}"
        self.events.append(line)
        print(line, flush=True)


@dataclass(frozen=True)
class LoopDags:
    """The DAGs of the pipeline the demo plays."""

    training: str
    monitoring: str
    retraining: str

    @classmethod
    def of(cls, pipeline: Pipeline) -> LoopDags:
        return cls(*(pipeline.dag_id(stage) for stage in ("training", "monitoring", "retraining")))


def demo_settings(settings: AirloopSettings, pipeline: Pipeline) -> tuple[AirloopSettings, Pipeline]:
    """The settings and pipeline the demo runs: the pipeline alone in a folder of its own, its
    config with the demo's guards, and a quick signal poll."""
    raw = yaml.safe_load(Path(pipeline.path).read_text())
    raw.setdefault("monitoring", {})["guards"] = {**raw["monitoring"].get("guards", {}), **DEMO_GUARDS}
    raw["monitoring"]["label_lookback_days"] = DEMO_LABEL_LOOKBACK_DAYS
    folder = settings.state.demo_loop_pipelines
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.yaml"):
        stale.unlink()
    (folder / pipeline.path.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    settings = settings.model_copy(update={"pipelines": folder, "signal_poll_seconds": 3.0})
    return settings, settings.load_pipelines().get(pipeline.name)


def run_loop_demo(
    settings: AirloopSettings, pipeline: Pipeline, *, months: list[int], rows: int, timeout: float
) -> int:
    """Bring the stack up in replay mode, play `months` of 2013, print the timeline; 0 on success."""
    from airloop.data.replay import fill_landing_zone
    from airloop.stack import mlflow_auth
    from airloop.stack.airflow_api import AirflowClient
    from airloop.stack.embedded import EmbeddedStack

    settings, pipeline = demo_settings(settings, pipeline)
    config = pipeline.config
    dags = LoopDags.of(pipeline)
    stack = EmbeddedStack(settings)
    if any(stack.status().values()):
        print("restarting the services in replay mode (serving logs each flight at its departure time)")
        stack.down()
    os.environ["AIRLOOP_SERVING_REPLAY_CLOCK"] = "true"
    creds = stack.up()
    os.environ.update(mlflow_auth.client_environment(settings))
    fill_landing_zone(settings.state.landing / "flights", dt.date(YEAR, 1, 1), dt.date(YEAR + 1, 1, 1))
    timeline = Timeline()

    with AirflowClient(settings.airflow_url, creds.username, creds.password) as client:
        stack.unpause_dags(client)  # every Airloop DAG, deploy too, as `airloop up` leaves them
        _settle(client, settings, config, dags, timeout)  # unpausing starts each DAG's latest scheduled run
        run = client.trigger(
            dags.training,
            logical_date=None,
            conf={"window_end": f"{YEAR}-02-01", "force_promote": True, "reason": "demo-loop: the January model"},
        )
        if client.follow(dags.training, run["dag_run_id"], timeout=timeout)["state"] != "success":
            print(f"error: the January model's run {run['dag_run_id']} failed; see the Airflow UI")
            return 1
        january = _serving_version(settings, pipeline)
        timeline.add("2013-01", f"January model v{january} trained on Jan 2-31 and deployed (frozen baseline)")
        _play(client, settings, pipeline, dags, months=months, rows=rows, timeline=timeline, timeout=timeout)

    _print_timeline(timeline)
    _print_monthly_quality(settings, config, january)
    print(f"\nAirflow UI  {settings.airflow_url}  (runs of {dags.monitoring}, {dags.retraining}, {dags.training})")
    print(f"Evidently   {settings.evidently_url}  (one snapshot per month)")
    print(f"MLflow UI   {settings.tracking_uri}  (experiment {config.experiment}-monitoring)")
    return 0


def _play(
    client: Any,
    settings: AirloopSettings,
    pipeline: Pipeline,
    dags: LoopDags,
    *,
    months: list[int],
    rows: int,
    timeline: Timeline,
    timeout: float,
) -> None:
    from airloop.monitoring.monitor import read_window_record
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.retraining import SignalStore
    from airloop.monitoring.traffic import flights_between, land_labels, send_traffic
    from airloop.monitoring.window import MonitoringWindow

    config = pipeline.config
    paths = MonitoringPaths(settings, config)
    signals = SignalStore(paths.signals)
    url = f"http://{settings.host}:{pipeline.serving_port}"
    waiting: Any = None  # last month's flights, whose outcomes are not known yet
    seen_runs = {r["dag_run_id"] for r in client.dag_runs(dags.training)}
    for month in [*months, None]:
        if month is None:  # after the last month: its labels land, and a last run folds them in
            start = dt.datetime(YEAR, months[-1], 28, tzinfo=dt.UTC) + dt.timedelta(days=4)
            window = MonitoringWindow(start=start.replace(day=1), end=start.replace(day=2))
            label = f"2013-{window.start:%m}"
        else:
            start = dt.datetime(YEAR, month, 1, tzinfo=dt.UTC)
            end = dt.datetime(YEAR + (month == 12), month % 12 + 1, 1, tzinfo=dt.UTC)
            window = MonitoringWindow(start=start, end=end)
            label = f"2013-{month:02d}"
            flights = flights_between(config, settings.home, start.date(), end.date(), rows=rows, seed=month)
            version = _serving_version(settings, pipeline)
            sent = send_traffic(url, flights, config)
            timeline.add(label, f"served {len(sent)} flights with v{version}")
        if waiting is not None:
            land_labels(paths.labels, waiting, config, arrived=window.start)
            timeline.add(label, f"{len(waiting)} labels of last month landed")
        waiting = sent if month is not None else None

        run = client.trigger(
            dags.monitoring,
            logical_date=None,
            conf={
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "reason": "demo-loop",
            },
        )
        final = client.follow(dags.monitoring, run["dag_run_id"], timeout=timeout)
        if final["state"] != "success":
            timeline.add(label, f"monitoring run {run['dag_run_id']} {final['state']}: see its log")
            continue
        for past in client.xcom(dags.monitoring, run["dag_run_id"], "backfill_late_labels"):
            auc = (past.get("performance") or {}).get("roc_auc", float("nan"))
            timeline.add(
                label,
                f"late labels: 2013-{past['window']['start'][5:7]} recomputed, ROC AUC {auc:.3f} "
                f"on {past['labels_used']} labelled flights (v{past['model_version']})",
            )
        record = read_window_record(paths, window.id)
        if month is not None and record is not None and record.drift is not None:
            drifted = [c["column"] for c in record.drift["columns"] if c["drifted"]]
            verdict = "; ".join(d.detail for d in record.degradations) or f"healthy ({len(drifted)} columns drifted)"
            timeline.add(label, f"monitoring: {verdict}")
        for raised in _raised(signals, client.xcom(dags.monitoring, run["dag_run_id"], "raise_signals")):
            timeline.add(label, raised)
        _settle(client, settings, config, dags, timeout)
        for training in client.dag_runs(dags.training):
            if training["dag_run_id"] in seen_runs:
                continue
            seen_runs.add(training["dag_run_id"])
            decision = (
                client.xcom(dags.training, training["dag_run_id"], "deploy_and_promote")["decision"]
                if training["state"] == "success"
                else None
            )
            outcome = (
                f"v{decision['version']} {decision['decision']}: {decision['reason']}"
                if decision
                else training["state"]
            )
            timeline.add(label, f"retraining run {training['dag_run_id']}: {outcome}")
            timeline.add(label, f"serving v{_serving_version(settings, pipeline)}")
        for entry in _ledger_news(paths, seen_runs):
            timeline.add(label, entry)


def _raised(signals: Any, signal_ids: list[str] | None) -> list[str]:
    """What each retraining signal a monitoring run raised says."""
    lines = []
    for signal_id in signal_ids or []:
        signal = signals.find(signal_id)
        why = f"{signal.kind}: " + "; ".join(r.detail for r in signal.reasons) if signal else signal_id
        lines.append(f"retraining signal ({why}) -> the retraining DAG")
    return lines


def _ledger_news(paths: Any, seen: set[str]) -> list[str]:
    """Storm-guard decisions not shown yet (suppressed signals, open circuit breaker)."""
    from airloop.monitoring.retraining import RetrainingLedger

    news = []
    for entry in RetrainingLedger(paths.ledger).entries():
        key = f"ledger:{entry.signal_id}:{entry.action}"
        if entry.action in {"suppress", "alert"} and key not in seen:
            seen.add(key)
            news.append(f"storm guard: signal {entry.signal_id} {entry.action}ed — {entry.reason}")
    return news


def _settle(client: Any, settings: AirloopSettings, config: Any, dags: LoopDags, timeout: float) -> None:
    """Wait until no signal is pending and only the retraining sensor is running (waiting)."""
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.retraining import SignalStore

    signals = SignalStore(MonitoringPaths(settings, config).signals)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [
            (dag, r["dag_run_id"])
            for dag in (dags.training, dags.monitoring, dags.retraining)
            for r in client.dag_runs(dag)
            if r["state"] in {"queued", "running"}
        ]
        waiting = all(
            dag == dags.retraining
            and {t["task_id"]: t["state"] for t in client.task_instances(dag, run_id)}.get("wait_for_degradation")
            in {"deferred", "scheduled", "queued", None}
            for dag, run_id in busy
        )
        if waiting and not signals.has_pending():
            return
        time.sleep(3)
    raise TimeoutError(f"the loop did not settle within {timeout:.0f}s")


def _serving_version(settings: AirloopSettings, pipeline: Pipeline) -> str:
    return str(httpx.get(f"http://{settings.host}:{pipeline.serving_port}/version", timeout=10).json()["version"])


def _print_timeline(timeline: Timeline) -> None:
    print("\n== timeline (wall clock since start, replayed month, what happened)")
    for line in timeline.events:
        print(line)


def _print_monthly_quality(settings: AirloopSettings, config: Any, january: str) -> None:
    """ROC AUC per month on the labelled flights: the loop's serving model vs the frozen January model."""
    from sklearn.metrics import roc_auc_score

    from airloop.monitoring.labels import join_labels, read_labels
    from airloop.monitoring.monitor import window_records
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.window import served_rows
    from airloop.serving.model import cached_model

    paths = MonitoringPaths(settings, config)
    frozen = cached_model(config.model_name, january, paths.model_dir(january), tracking_uri=settings.tracking_uri)
    labels = read_labels(paths.labels, config.dataset.label.column)
    print("\n== monthly ROC AUC on the labelled flights: the loop's models vs the frozen January model")
    print(f"{'month':8} {'served by':10} {'loop':>6} {'frozen':>7} {'flights':>8}")
    for record in window_records(paths):
        if record.served_rows == 0 or record.window.start.year != YEAR:
            continue
        rows = join_labels(served_rows(paths.inference, record.window, config.model_name), labels, config.dataset.label)
        if rows["target"].nunique() < 2:
            continue
        frozen_scores = frozen.scores(rows[config.dataset.features])
        loop_auc = roc_auc_score(rows["target"], rows["score"])
        frozen_auc = roc_auc_score(rows["target"], frozen_scores)
        versions = ",".join(f"v{v}" for v in sorted(rows["model_version"].unique()))
        print(f"2013-{record.window.start:%m}  {versions:10} {loop_auc:6.3f} {frozen_auc:7.3f} {len(rows):8d}")

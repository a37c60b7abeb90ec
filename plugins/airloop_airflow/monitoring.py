"""What the monitoring and retraining DAGs' tasks do: read the run's context, call the core.

Light at import time: the core and its heavy libraries are imported inside each call.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from airloop_airflow import stages
from airloop_airflow.links import EvidentlyReportLink, MLflowRunLink, push_link
from airloop_airflow.notifiers import AirloopNotifier, fail_with_reason

if TYPE_CHECKING:
    from airloop.monitoring.monitor import WindowRecord

log = logging.getLogger(__name__)

Json = dict[str, Any]


def signals_dir(dag_id: str) -> Path:
    """Where the monitoring of `dag_id`'s pipeline leaves its degradation signals."""
    from airloop.monitoring.paths import MonitoringPaths

    settings, pipeline = stages.this_pipeline(dag_id)
    return MonitoringPaths(settings, pipeline.config).signals


def signal_poll_seconds() -> float:
    from airloop.settings import load_settings

    return load_settings().signal_poll_seconds


def _context() -> tuple[Any, Any, Any, Any]:
    from airloop.lineage import Lineage

    stages.start_task()
    context = get_current_context()
    dag_run = context["dag_run"]
    settings, pipeline = stages.this_pipeline(dag_run.dag_id)
    lineage = Lineage(dag_id=dag_run.dag_id, run_id=dag_run.run_id, reason=context["params"].get("reason"))
    return context, settings, pipeline, lineage


def _window(context: Any) -> Any:
    """The Params' window if given, else the run's data interval, else the day before it ran."""
    from airloop.monitoring.window import MonitoringWindow

    params = context["params"]
    if params.get("window_start") and params.get("window_end"):
        return MonitoringWindow(start=params["window_start"], end=params["window_end"])
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and end > start:
        return MonitoringWindow(start=start, end=end)
    end = context["dag_run"].run_after
    return MonitoringWindow(start=end - dt.timedelta(days=1), end=end)


def _summary(record: WindowRecord) -> Json:
    return record.model_dump(mode="json")


def monitor_window() -> Json:
    """`monitor`: drift, quality and performance of the run's window; links its MLflow run.

    Evidently's reports of it are the `report` task's, beside the signals: what the loop decides
    never waits for them, nor fails with them.
    """
    from airloop.monitoring.monitor import monitor_window as monitor

    context, settings, pipeline, lineage = _context()
    config = pipeline.config
    stages.check_champion_serves(settings, config.model_name)  # a mismatch is repaired by the reconcile DAG
    record = monitor(settings, config, _window(context), lineage=lineage, reports=False)
    push_link(context, MLflowRunLink, record.mlflow_run_url)
    return _summary(record)


def report_window(current: Json) -> dict[str, str]:
    """`report`: Evidently's reports of the window `monitor` recorded; links the report. Their paths by name."""
    from airloop.monitoring.monitor import report_window as report
    from airloop.monitoring.window import MonitoringWindow

    context, settings, pipeline, _ = _context()
    record = report(settings, pipeline.config, MonitoringWindow.model_validate(current["window"]))
    push_link(context, EvidentlyReportLink, record.evidently_url)
    if not record.reports:
        log.info("window %s: %s; nothing to report", record.window, record.note or "no reports")
    return record.reports


def check_serving() -> Json | None:
    """`check_serving`: the endpoint's latency and error rate since the last window, against the budget.

    A breach alerts; it never fails the run and never retrains (a slow endpoint is not a model problem).
    """
    from airloop.monitoring.alerts import Alert, send_alert
    from airloop.monitoring.serving_health import check_serving as check

    context, settings, pipeline, _ = _context()
    config = pipeline.config
    window = _window(context)
    health = check(settings, config, window, now=dt.datetime.now(dt.UTC))
    if health is None:
        return None
    if health.breaches:
        alert = Alert(
            title=f"{config.model_name} serving over budget",
            detail=f"{health.summary}; " + "; ".join(health.breaches),
            context={"window": window.id, "endpoint": health.endpoint},
        )
        send_alert(alert, home=settings.home, channels=config.monitoring.alerts)
    return health.model_dump(mode="json")


def backfill_late_labels(current: Json) -> list[Json]:
    """`backfill_late_labels`: recompute past windows that more labels have reached since."""
    from airloop.monitoring.monitor import monitor_window as monitor
    from airloop.monitoring.monitor import windows_with_new_labels
    from airloop.monitoring.window import MonitoringWindow

    _, settings, pipeline, lineage = _context()
    config = pipeline.config
    window = MonitoringWindow.model_validate(current["window"])
    stale = windows_with_new_labels(settings, config, window, run_id=lineage.run_id)
    records = [monitor(settings, config, w, lineage=lineage) for w in stale]
    for record in records:
        log.info("recomputed %s with %d labels: %s", record.window.id, record.labels_used, record.performance)
    return [_summary(r) for r in records]


def judge_shadow() -> Json | None:
    """`judge_shadow`: the challenger shadowing the champion against it on the live rows labelled so far.

    A win serves it and makes it champion through the servability gate (as the deploy DAG does);
    a version that fails the gate fails this task, with alias and traffic where they were.
    """
    from airloop.deploy import DeploymentError
    from airloop.deploy.service import promote_shadow_winner
    from airloop.registry.shadow import judge_shadow as judge

    _, settings, pipeline, lineage = _context()
    config = pipeline.config
    verdict = judge(settings, config, now=dt.datetime.now(dt.UTC))
    if verdict is None:
        log.info("no challenger shadows the champion")
        return None
    if verdict.verdict == "won":
        try:
            promote_shadow_winner(
                settings,
                config,
                verdict,
                docker_api=stages.docker_api(),
                kubernetes_api=stages.kubernetes_api,
                lineage=lineage,
            )
        except DeploymentError as err:
            fail_with_reason(f"{config.model_name} version {verdict.version} won in shadow but cannot serve", err)
    return verdict.model_dump(mode="json")


def raise_signals(current: Json, backfilled: list[Json]) -> list[str]:
    """`raise_signals`: a retraining signal for each degraded window of the champion, and for its age.

    Which reasons retrain and which only alert is the pipeline's `retraining.strategy`
    (`airloop.monitoring.policy.plan_signals`).
    """
    from airloop.monitoring.age import champion_age
    from airloop.monitoring.monitor import WindowRecord
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.policy import WindowFinding, plan_signals
    from airloop.monitoring.retraining import DegradationSignal, SignalStore
    from airloop.registry.promotion import champion_version

    context, settings, pipeline, _ = _context()
    config = pipeline.config
    paths = MonitoringPaths(settings, config)
    champion = champion_version(config.model_name, tracking_uri=settings.tracking_uri)
    records = {r.window.id: r for r in (WindowRecord.model_validate(j) for j in [current, *backfilled])}
    now = next(iter(records.values())).window.end  # the window's time: a backfilled run judges its own day
    stale = champion_age(settings, config, champion, now).stale if champion is not None else None
    plan = plan_signals(
        config.retraining,
        retrain_after_days=config.monitoring.concept_shift.retrain_after_days,
        windows=[
            WindowFinding(window_id=r.window.id, model_version=r.model_version, degradations=r.degradations)
            for r in records.values()
        ],
        champion=champion,
        stale=stale,
    )
    for window_id in plan.not_served:
        log.info(
            "window %s degraded, but v%s no longer serves as champion: no signal",
            window_id,
            records[window_id].model_version,
        )
    for window_id, reason, why in plan.alert:
        _alert_once(settings, config, paths, records[window_id], reason, why=why)
    store = SignalStore(paths.signals)
    raised = []
    for window_id, reasons in plan.retrain:
        record = records[window_id]
        signal = DegradationSignal(
            model_name=record.model_name,
            model_version=str(champion),
            window_id=record.window.id,
            window_start=record.window.start,
            window_end=record.window.end,
            reasons=reasons,
            report=str(paths.report(record.window, "drift")),  # the `report` task writes it
            mlflow_run_id=record.mlflow_run_id,
            raised_at=dt.datetime.now(dt.UTC),
        )
        if store.raise_signal(signal):
            raised.append(signal.id)
            log.info("signal %s raised: %s", signal.id, signal.summary)
            AirloopNotifier(title=f"{record.model_name} needs retraining", detail=signal.summary).notify(context)
        else:
            log.info("signal %s was raised before: not again", signal.id)
    return raised


def _alert_once(settings: Any, config: Any, paths: Any, record: Any, reason: Any, *, why: str) -> None:
    """Alert a degradation that does not retrain (yet) once per reason and served version."""
    from airloop.monitoring.alerts import Alert, send_alert
    from airloop.monitoring.policy import alert_key

    marker = paths.alerted / alert_key(record.model_version, reason)
    log.info("window %s: %s; %s", record.window.id, reason.detail, why)
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(reason.model_dump_json())
    alert = Alert(
        title=f"{record.model_name} v{record.model_version}: {reason.kind.replace('_', ' ')}",
        detail=f"{reason.detail}; {why}",
        context={"window": record.window.id},
    )
    send_alert(alert, home=settings.home, channels=config.monitoring.alerts)


def apply_storm_guards(signal: Json) -> Json:
    """`apply_storm_guards`: retrain, or skip with the guard's reason (alerting if the breaker is open)."""
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.retraining import (
        DegradationSignal,
        LedgerEntry,
        RetrainingLedger,
        SignalStore,
        decide,
    )
    from airloop.registry.promotion import champion_version

    context, settings, pipeline, _ = _context()
    config = pipeline.config
    degradation = DegradationSignal.model_validate(signal)
    ledger = RetrainingLedger(MonitoringPaths(settings, config).ledger)
    active = context["ti"].get_dr_count(dag_id=pipeline.dag_id("training"), states=["running", "queued"])
    now = dt.datetime.now(dt.UTC)
    decision = decide(
        degradation,
        ledger=ledger.entries(),
        guards=config.monitoring.guards,
        champion_version=champion_version(config.model_name, tracking_uri=settings.tracking_uri),
        active_training_runs=active,
        now=now,
    )
    run_id = f"retrain__{degradation.id}"
    ledger.append(
        LedgerEntry.of(
            degradation,
            at=now,
            action=decision.action,
            reason=decision.reason,
            training_run_id=run_id if decision.action == "retrain" else None,
        )
    )
    SignalStore(MonitoringPaths(settings, config).signals).mark_handled(degradation, decision)
    log.info("signal %s (%s): %s — %s", degradation.id, degradation.summary, decision.action, decision.reason)
    if decision.action == "alert":
        AirloopNotifier(title="retraining stopped", detail=decision.reason, severity="critical").notify(context)
    if decision.action != "retrain":
        raise AirflowSkipException(f"{decision.action}: {decision.reason}")
    conf = degradation.training_conf()
    return {"conf": conf, "run_id": run_id, "note": conf["reason"][:1000]}


def record_outcome(guarded: Json) -> Json:
    """`record_outcome`: did the challenger win? Losses count toward the circuit breaker."""
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.retraining import LedgerEntry, RetrainingLedger, consecutive_losses
    from airloop.registry.promotion import decision_of_run

    context, settings, pipeline, _ = _context()
    config, training_dag = pipeline.config, pipeline.dag_id("training")
    degradation = guarded["conf"]["degradation"]
    run_id = guarded["run_id"]
    found = decision_of_run(config.model_name, run_id, tracking_uri=settings.tracking_uri)
    outcome = "failed" if found is None else ("promoted" if found[1] == "promoted" else "rejected")
    ledger = RetrainingLedger(MonitoringPaths(settings, config).ledger)
    ledger.append(
        LedgerEntry(
            at=dt.datetime.now(dt.UTC),
            signal_id=degradation["signal_id"],
            model_name=config.model_name,
            model_version=degradation["model_version"],
            kind=degradation["kind"],
            key=degradation.get("key", ""),
            action="outcome",
            reason=f"{pipeline.dag_id('training')} run {run_id}: "
            + (f"v{found[0]} {found[1]}" if found else "registered no model"),
            training_run_id=run_id,
            outcome=outcome,
        )
    )
    losses = consecutive_losses(ledger.entries(), config.model_name, degradation["model_version"])
    if outcome != "promoted":
        AirloopNotifier(
            title="retrained challenger did not replace the champion",
            detail=f"{training_dag} run {run_id}: {outcome}; {losses} in a row for champion "
            f"v{degradation['model_version']} (circuit breaker after {config.monitoring.guards.circuit_breaker_after})",
            severity="info" if outcome == "rejected" else "warning",
        ).notify(context)
    return {"outcome": outcome, "version": found[0] if found else None, "losses_in_a_row": losses}

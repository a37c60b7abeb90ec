"""What a training run would do, said before it does anything: `airloop plan` and the `dry_run` Param.

A plan reads (the source's rows for the window, the registry, the state folder's ledger and
signals, whether a Docker engine answers) and writes nothing: no snapshot, no MLflow run, no
version, no signal, no image.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pydantic import BaseModel, Field

from airloop.config import PipelineConfig
from airloop.pipeline import RunOptions, data_window
from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)


class GuardView(BaseModel):
    """What the storm guards would say now: about each pending signal, and the breaker and cooldown."""

    pending: list[str] = Field(default_factory=list)  # "signal <id> (<kind>): retrain | suppress ...: why"
    breaker: str
    cooldown: str
    age: str  # the retraining policy's age bound on the champion


class TrainingPlan(BaseModel):
    """A training run's plan: its window and rows, the gates it runs, the champion, the target, the guards."""

    model_name: str
    window_start: dt.date
    window_end: dt.date  # exclusive
    source: str
    rows: int | None  # None: the source could not be read (see source_error)
    missing_days: list[dt.date] = Field(default_factory=list)  # a files source's days without a partition
    min_rows: int  # training.min_rows
    source_error: str | None = None
    gates: list[str]
    champion: str | None
    champion_score: float | None
    metric: str
    target: str  # where a winner would be deployed: docker, kubernetes, local or none
    target_setting: str  # AIRLOOP_DEPLOY_TARGET (auto: docker if an engine with the base image answers)
    guards: GuardView

    def lines(self) -> list[str]:
        """The plan as a person reads it, one line each."""
        days = (self.window_end - self.window_start).days
        missing = (
            f" ({len(self.missing_days)} of {days} days have no partition: "
            + ", ".join(f"{d}" for d in self.missing_days[:5])
            + (", ..." if len(self.missing_days) > 5 else "")
            + ")"
            if self.missing_days
            else ""
        )
        read = f"{self.rows}{missing}" if self.rows is not None else f"cannot be read: {self.source_error}"
        if self.rows is not None and self.rows < self.min_rows:
            read += f"; fewer than training.min_rows ({self.min_rows}): the run would stop there"
        champion = (
            f"v{self.champion}, {self.metric} {self.champion_score:.4f} on its own held-out rows"
            if self.champion and self.champion_score is not None
            else f"v{self.champion} (no {self.metric} recorded)"
            if self.champion
            else "none yet: a valid challenger becomes the first champion"
        )
        setting = f" (deploy target {self.target_setting})" if self.target_setting != self.target else ""
        return [
            f"plan for {self.model_name} (a dry run: nothing is written, trained, registered or deployed)",
            f"window     {self.window_start} to {self.window_end} (end exclusive), {days} days from {self.source}",
            f"rows       {read}",
            f"champion   {champion}",
            f"target     {self.target}{setting}",
            *(f"gate {n}     {gate}" for n, gate in enumerate(self.gates, start=1)),
            f"guards     circuit breaker: {self.guards.breaker}",
            f"           cooldown: {self.guards.cooldown}",
            f"           age: {self.guards.age}",
            *(f"           pending {line}" for line in self.guards.pending or ["signals: none"]),
        ]


def plan_training(
    settings: AirloopSettings,
    config: PipelineConfig,
    options: RunOptions,
    run_date: dt.date,
    *,
    now: dt.datetime,
    docker_api: Any = None,
    active_training_runs: int = 0,
) -> TrainingPlan:
    """The plan of a training run dated `run_date` with `options`; reads only (see the module)."""
    from airloop.registry.versions import ModelRegistry

    start, end = data_window(config, options, run_date)
    from airloop.data.sources import missing_days

    rows, source, error = _count_rows(settings, config, start, end)
    registry = ModelRegistry(config.model_name, tracking_uri=settings.tracking_uri)
    champion = registry.champion()
    metric = config.promotion_metric
    score = registry.tags(champion).get(f"metric.{metric}") if champion else None
    from airloop.deploy.service import resolve_target

    target = resolve_target(settings, settings.deploy_target, docker_api, pull=False)
    return TrainingPlan(
        model_name=config.model_name,
        window_start=start,
        window_end=end,
        source=source,
        rows=rows,
        missing_days=missing_days(config.dataset.source, home=settings.home, start=start, end=end),
        min_rows=config.training.min_rows,
        source_error=error,
        gates=_gates(config, options, champion, target),
        champion=champion,
        champion_score=float(score) if score is not None else None,
        metric=metric,
        target=target,
        target_setting=settings.deploy_target,
        guards=_guards(settings, config, champion, now, active_training_runs),
    )


def _count_rows(
    settings: AirloopSettings, config: PipelineConfig, start: dt.date, end: dt.date
) -> tuple[int | None, str, str | None]:
    """(rows, where from, why unreadable) for [start, end): read, never written."""
    from airloop.data.sources import NoDataError, read_window

    source = config.dataset.source
    where = str(getattr(source, "path", None) or "the SQL source")
    try:
        frame, where = read_window(source, home=settings.home, start=start, end=end)
    except NoDataError:
        return 0, where, None
    except Exception as err:  # noqa: BLE001 - a plan reports an unreadable source instead of failing on it
        return None, where, f"{type(err).__name__}: {err}"
    return len(frame), where, None


def _gates(config: PipelineConfig, options: RunOptions, champion: str | None, target: str) -> list[str]:
    promotion = config.promotion
    from airloop.tasks import greater_is_better
    from airloop.validation.checks import load_suite

    suite = load_suite(config.dataset.suite_path)
    training = config.training
    gates = [
        f"validate: {len(suite.expectations)} expectations of {config.dataset.suite.name}; a failure quarantines "
        "the batch and stops the run",
        f"train: at least {training.min_rows} rows; scored on the latest {training.holdout_fraction:.0%}"
        + (", then refitted on the whole window" if training.refit else ""),
    ]
    if options.force_promote:
        gates.append("evaluate: force_promote: the challenger replaces the champion whatever it scores")
    elif champion is None:
        gates.append("evaluate: no champion yet: the challenger wins")
    else:
        gates.append(
            f"evaluate: the challenger must beat champion v{champion} by {promotion.min_improvement:g} "
            f"{config.promotion_metric} ({'greater' if greater_is_better(config.promotion_metric) else 'smaller'} "
            "is better) on the same held-out rows"
            + (
                f"; if it loses it shadows the champion for {promotion.shadow.days} labelled days "
                f"(at least {promotion.shadow.min_rows} rows)"
                if promotion.shadow.days
                else ""
            )
        )
    approval = promotion.approval == "required" or options.require_approval
    gates.append(
        f"approve: a person answers in Required Actions within {promotion.approval_timeout_hours:g} h (else rejected)"
        if approval
        else "approve: not asked (promotion.approval none)"
    )
    if target == "none":
        gates.append("deploy: target none: champion moves, nothing is deployed")
    else:
        budget = promotion.servability
        gates.append(
            f"deploy: candidate slot on {target}: health, contract, p95 <= {budget.p95_latency_ms:g} ms "
            f"over {budget.requests} requests; then traffic and champion move together"
        )
    return gates


def _guards(
    settings: AirloopSettings, config: PipelineConfig, champion: str | None, now: dt.datetime, active: int
) -> GuardView:
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.retraining import (
        RetrainingLedger,
        SignalStore,
        consecutive_losses,
        cooldown_until,
        decide,
    )

    paths = MonitoringPaths(settings, config)
    guards = config.monitoring.guards
    ledger = RetrainingLedger(paths.ledger).entries()
    losses = consecutive_losses(ledger, config.model_name, champion) if champion else 0
    breaker = (
        f"open: {losses} retrained challengers in a row lost to v{champion}"
        if losses >= guards.circuit_breaker_after
        else f"closed ({losses} of {guards.circuit_breaker_after} losses in a row)"
    )
    last_and_until = cooldown_until(ledger, config.model_name, guards)  # as `decide` counts it
    if last_and_until is None:
        cooldown = "no retraining yet"
    elif (until := last_and_until[1]) > now:
        cooldown = f"until {until:%Y-%m-%d %H:%M} UTC (last retraining {last_and_until[0]:%Y-%m-%d %H:%M})"
    else:
        cooldown = f"over (last retraining {last_and_until[0]:%Y-%m-%d %H:%M} UTC)"
    pending = []
    for signal in SignalStore(paths.signals).pending():
        if signal.model_name != config.model_name:
            continue
        decision = decide(
            signal,
            ledger=ledger,
            guards=guards,
            champion_version=champion,
            active_training_runs=active,
            now=now,
        )
        pending.append(f"signal {signal.id} ({signal.key or signal.kind}): {decision.action}: {decision.reason}")
    return GuardView(pending=pending, breaker=breaker, cooldown=cooldown, age=_age(settings, config, champion, now))


def _age(settings: AirloopSettings, config: PipelineConfig, champion: str | None, now: dt.datetime) -> str:
    from airloop.monitoring.age import champion_age

    retraining = config.retraining
    if not retraining.retrains_on_age:
        return f"not a trigger (retraining.strategy {retraining.strategy})"
    if champion is None:
        return "no champion"
    try:
        age = champion_age(settings, config, champion, now)
    except Exception as err:  # noqa: BLE001 - a plan says what it could not find out
        return f"unknown: {type(err).__name__}: {err}"
    if age.stale is not None:
        return f"due: {age.stale.detail}"
    landed = f"{age.landed_through:%Y-%m-%d}" if age.landed_through else "nothing new"
    return (
        f"not due: v{champion} was trained on data before {age.trained_through:%Y-%m-%d}, data has landed "
        f"through {landed} (exclusive); it retrains once {retraining.max_age_days} days have"
    )

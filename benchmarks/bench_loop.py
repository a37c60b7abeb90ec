"""The loop's decisions, replayed on NYC flights 2013 day by day against the simple alternatives.

Every morning after a served day, the policy sees what `airloop_flights_monitoring` would: the day's served
rows and scores, and the labels that have landed (a flight's outcome `label_delay_days` after its
day). It decides with the same core functions the DAGs call (`signals.segment_shifts`,
`signals.persistent_shifts`, `policy.assess`, `policy.staleness`, `policy.retraining_reasons`,
`retraining.decide` with its storm guards and ledger); a retraining fits the configured pipeline on
the window of labelled data before the morning (`training.fit_and_evaluate`) and is promoted only
by the promotion rule (`promotion.challenger_wins`, the champion scored on the challenger's
held-out rows). The same world is served by the frozen January model and by nightly, weekly,
monthly and cost-matched (as many retrainings as the policy made, evenly spaced) schedules, each
through the same promotion gate. Quality is the mean over served days of each day's ROC AUC.

Two documented shifts are injected into the world (training data and labels alike):
- harmful, from `HARMFUL_FROM`: carrier `HARMFUL_CARRIER`'s flights arrive 60 minutes later
  (an operational meltdown: the model's view of that carrier is wrong from then on);
- harmless, `HARMLESS_FROM` for 7 days: the calendar columns are stamped a week late (`day`,
  `month` drift under every test; outcomes are untouched).

Every strategy's challengers meet the shipped promotion rule, shadowing included
(`promotion.shadow`, see `airloop.registry.shadow`): one the held-out rule rejected shadows the
champion and is promoted if it beats it on the same rows of its first labelled days.
`--override '{"promotion": {"shadow": {"days": 0}}}'` replays without it.

Models are shared between strategies (the pipeline fitted on the same window is the same model),
so the nightly schedule's fits are the replay's main cost. `python -m benchmarks.bench_loop
--size smoke|full` prints the figures as JSON; `make evaluate-loop` runs the full replay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("benchmarks.loop")

HARMFUL_CARRIER = "EV"
HARMFUL_DELAY_MINUTES = 60
SIZES = {
    # first served day, last served day, harmful shift start, harmless shift start, boosting iterations
    "full": (dt.date(2013, 2, 1), dt.date(2013, 12, 31), dt.date(2013, 9, 9), dt.date(2013, 5, 13), None),
    "smoke": (dt.date(2013, 2, 1), dt.date(2013, 3, 20), dt.date(2013, 3, 4), dt.date(2013, 2, 18), 20),
}
RECOVERY_TOLERANCE = 0.01  # quality is back when the served model trails a fresh one by at most this (3-day mean)
USEFUL_HORIZON_DAYS = 7  # a signal was useful when a fresh model beat the served one over the next week


def _world(first: dt.date, last: dt.date, harmful_from: dt.date, harmless_from: dt.date, config: Any) -> pd.DataFrame:
    """Flights of 2013 with weather, label known, the two shifts applied; one `_day` column."""
    from airloop.data.replay import load_flights_2013

    frame = load_flights_2013()
    frame = frame[frame[config.dataset.label.column].notna()].reset_index(drop=True)
    frame["_day"] = pd.to_datetime(dict(year=frame["year"], month=frame["month"], day=frame["day"])).dt.date
    start = first - dt.timedelta(days=config.training.window_days + 1)
    frame = frame[(frame["_day"] >= start) & (frame["_day"] <= last)].reset_index(drop=True)
    harmful = (frame["_day"] >= harmful_from) & (frame["carrier"] == HARMFUL_CARRIER)
    frame.loc[harmful, config.dataset.label.column] += HARMFUL_DELAY_MINUTES
    harmless = (frame["_day"] >= harmless_from) & (frame["_day"] < harmless_from + dt.timedelta(days=7))
    stamped = pd.to_datetime(frame.loc[harmless, "_day"]) + pd.Timedelta(days=7)
    frame.loc[harmless, "month"] = stamped.dt.month.to_numpy()
    frame.loc[harmless, "day"] = stamped.dt.day.to_numpy()
    return frame


@dataclass
class Model:
    """A fitted pipeline, what it was trained on, and what monitoring needs of it."""

    id: str
    trained_through: dt.date
    fitted: Any  # training.train.FittedModel
    calibration: Any  # signals.Calibration
    reference: pd.DataFrame  # the training window's features and scores: drift's reference
    importances: dict[str, float] = field(default_factory=dict)


class Replay:
    """The world and the models fitted on it, shared by every strategy."""

    def __init__(self, config: Any, world: pd.DataFrame) -> None:
        from airloop.training.features import features_and_label

        self.config = config
        self.world = world
        self.by_day = {day: rows for day, rows in world.groupby("_day", sort=True)}
        self.features = {day: features_and_label(rows, config.dataset) for day, rows in self.by_day.items()}
        self.models: dict[dt.date, Model] = {}
        self._scores: dict[tuple[str, dt.date], np.ndarray] = {}
        self._aucs: dict[tuple[str, dt.date], float] = {}
        self.fits = 0
        self.fit_s = 0.0

    def model(self, trained_through: dt.date, *, importances: bool = False) -> Model:
        """The pipeline fitted on the `window_days` days up to `trained_through` (cached)."""
        from airloop.monitoring.monitor import SCORE
        from airloop.monitoring.signals import Calibration
        from airloop.training.features import feature_frame
        from airloop.training.train import fit_and_evaluate

        if trained_through not in self.models:
            start = trained_through - dt.timedelta(days=self.config.training.window_days - 1)
            rows = self.world[(self.world["_day"] >= start) & (self.world["_day"] <= trained_through)]
            began = time.perf_counter()
            fitted = fit_and_evaluate(rows, self.config, name=f"the window up to {trained_through}")
            self.fit_s += time.perf_counter() - began
            self.fits += 1
            reference = feature_frame(rows, self.config.dataset)
            reference[SCORE] = fitted.pipeline.predict_proba(reference)[:, 1]
            self.models[trained_through] = Model(
                id=f"through-{trained_through}",
                trained_through=trained_through,
                fitted=fitted,
                calibration=Calibration.fit(fitted.holdout_scores, fitted.holdout_labels),
                reference=reference,
            )
        model = self.models[trained_through]
        if importances and not model.importances:
            model.importances = self._importances(model)
        return model

    def scores(self, model: Model, day: dt.date) -> np.ndarray:
        key = (model.id, day)
        if key not in self._scores:
            self._scores[key] = model.fitted.pipeline.predict_proba(self.features[day][0])[:, 1]
        return self._scores[key]

    def auc(self, model: Model, day: dt.date) -> float:
        from sklearn.metrics import roc_auc_score

        key = (model.id, day)
        if key not in self._aucs:
            self._aucs[key] = float(roc_auc_score(self.features[day][1], self.scores(model, day)))
        return self._aucs[key]

    def scores_on_holdout(self, champion: Model, challenger: Model) -> tuple[float, float]:
        """Challenger and champion on the challenger's held-out rows the champion was not fitted on (as the DAG)."""
        from airloop.registry.promotion import unseen_by_champion
        from airloop.tasks import evaluate
        from airloop.training.features import features_and_label
        from airloop.training.train import holdout_split

        config = self.config
        start = challenger.trained_through - dt.timedelta(days=config.training.window_days - 1)
        rows = self.world[(self.world["_day"] >= start) & (self.world["_day"] <= challenger.trained_through)]
        _, holdout = holdout_split(rows, config)
        x, y = features_and_label(holdout, config.dataset)
        times = holdout.loc[y.index, config.dataset.time_column]
        unseen = unseen_by_champion(times, champion.fitted.fitted_through)
        metric = config.promotion_metric
        proba = champion.fitted.pipeline.predict_proba(x[unseen])[:, 1]
        challenger_score = evaluate("binary", y[unseen], challenger.fitted.holdout_scores[unseen])[metric]
        return challenger_score, evaluate("binary", y[unseen], proba)[metric]

    def _importances(self, model: Model) -> dict[str, float]:
        """Permutation importances on the last served-like rows (the training window's holdout)."""
        from sklearn.inspection import permutation_importance

        rows = model.reference.drop(columns=["score"]).tail(4000)
        labels = model.fitted.holdout_labels[-len(rows) :] if len(model.fitted.holdout_labels) >= len(rows) else None
        if labels is None:
            return {}
        found = permutation_importance(
            model.fitted.pipeline, rows, labels, scoring="roc_auc", n_repeats=2, random_state=0
        )
        return {c: max(float(v), 0.0) for c, v in zip(rows.columns, found.importances_mean, strict=True)}


@dataclass
class Run:
    """One strategy's year: which model served each day, its quality, what it decided."""

    name: str
    served: dict[dt.date, Model] = field(default_factory=dict)
    daily_auc: dict[dt.date, float] = field(default_factory=dict)
    retrains: list[dt.date] = field(default_factory=list)  # mornings a challenger was trained
    promotions: list[dt.date] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)  # degradation signals raised (not age)
    alerts: list[dt.date] = field(default_factory=list)
    trainings_per_reason: dict[str, int] = field(default_factory=dict)
    # A rejected challenger, the first day it shadowed and the alarm that caused it (if one did).
    shadow: tuple[Model, dt.date, dict[str, Any] | None] | None = None
    shadow_promotions: list[dt.date] = field(default_factory=list)

    @property
    def mean_auc(self) -> float:
        return float(np.mean(list(self.daily_auc.values())))


def _retrain(
    replay: Replay, run: Run, champion: Model, morning: dt.date, delay: int, *, alarm: dict[str, Any] | None = None
) -> tuple[Model, bool]:
    """Train on the labelled window before `morning`; promote by the promotion rule."""
    from airloop.registry.promotion import challenger_wins

    challenger = replay.model(morning - dt.timedelta(days=delay))
    run.retrains.append(morning)
    if challenger.id == champion.id:
        return champion, False
    wins = challenger_wins(*replay.scores_on_holdout(champion, challenger), replay.config)
    if wins:
        run.promotions.append(morning)
        run.shadow = None
        return challenger, True
    if replay.config.promotion.shadow.days:
        run.shadow = (challenger, morning, alarm)
    return champion, False


def _judge_shadow(replay: Replay, run: Run, champion: Model, morning: dt.date, delay: int) -> Model:
    """The shadowing challenger against the champion on the labelled days it shadowed (same rows),
    judged by `airloop.registry.shadow.compare_live` itself."""
    from airloop.registry.shadow import compare_live

    if run.shadow is None:
        return champion
    challenger, since, alarm = run.shadow
    landed = morning - dt.timedelta(days=delay)
    shadowed = [d for d in sorted(run.served) if since <= d <= landed][: replay.config.promotion.shadow.days]
    if not shadowed:
        return champion
    live = _live_rows(replay, champion, shadowed)
    challenger_scores = np.concatenate([replay.scores(challenger, d) for d in shadowed])
    outcome, _, _ = compare_live(replay.config, live, challenger_scores)
    if outcome == "won":
        run.shadow = None
        run.promotions.append(morning)
        run.shadow_promotions.append(morning)
        if alarm is not None:
            alarm["outcome"] = "promoted after shadowing"
        return challenger
    if outcome == "lost":
        run.shadow = None  # it had its days: dropped
    return champion


def _live_rows(replay: Replay, champion: Model, days: list[dt.date]) -> pd.DataFrame:
    """The labelled rows `champion` served on `days`, as the shadow judge reads them from the inference log."""
    from airloop.registry.shadow import SERVED_DAY

    labels = [replay.features[d][1].to_numpy() for d in days]
    return pd.DataFrame(
        {
            SERVED_DAY: np.concatenate([np.full(len(y), str(d)) for d, y in zip(days, labels, strict=True)]),
            "target": np.concatenate(labels),
            "score": np.concatenate([replay.scores(champion, d) for d in days]),
        }
    )


def replay_schedule(
    replay: Replay, name: str, days: list[dt.date], *, delay: int, first: Model, retrain_on: Callable[[dt.date], bool]
) -> Run:
    """A calendar strategy: retrain on the mornings `retrain_on` picks, promote if the challenger wins."""
    run = Run(name)
    champion = first
    for day in days:
        morning = day  # the decision before serving `day`
        champion = _judge_shadow(replay, run, champion, morning, delay)
        if day != days[0] and retrain_on(morning):
            champion, _ = _retrain(replay, run, champion, morning, delay)
        run.served[day] = champion
        run.daily_auc[day] = replay.auc(champion, day)
    return run


def _persistent_shifts(
    replay: Replay, run: Run, champion: Model, landed: dt.date, cache: dict[tuple[str, dt.date], list[Any]]
) -> list[Any]:
    """What `monitor_window` finds: segments shifted on the champion's latest labelled days (up to `landed`)."""
    from airloop.monitoring.signals import persistent_shifts, segment_shifts

    config = replay.config
    shift = config.monitoring.concept_shift
    served_days = [d for d in sorted(run.served) if run.served[d].id == champion.id and d <= landed]
    recent = served_days[-shift.retrain_after_days :]
    for day in recent:
        if (champion.id, day) not in cache:
            frame = replay.by_day[day]
            labelled = pd.DataFrame(
                {
                    "score": replay.scores(champion, day),
                    "target": replay.features[day][1].to_numpy(),
                    "day": str(day),
                    **{c: frame[c].to_numpy() for c in config.segments},
                }
            )
            cache[(champion.id, day)] = segment_shifts(
                labelled,
                calibration=champion.calibration,
                segments=config.segments,
                min_rows=shift.min_rows,
                min_z=shift.min_z,
                min_effect=shift.min_effect,
            )
    found = [s for day in recent for s in cache[(champion.id, day)]]
    return persistent_shifts(found, [str(d) for d in recent], shift.persist_days)


def replay_policy(replay: Replay, days: list[dt.date], delay: int, first: Model) -> Run:
    """Airloop's policy: the morning monitoring of each served day, decided by the core functions."""
    from airloop.monitoring.policy import WindowFinding, alert_key, assess, plan_signals, staleness
    from airloop.monitoring.retraining import DegradationSignal, LedgerEntry, decide, last_retraining

    config = replay.config
    shift = config.monitoring.concept_shift
    run = Run("policy")
    champion = first
    ledger: list[LedgerEntry] = []
    cache: dict[tuple[str, dt.date], list[Any]] = {}
    alerted: set[str] = set()
    for day in days:
        morning = day
        champion = _judge_shadow(replay, run, champion, morning, delay)
        if day != days[0]:
            now = dt.datetime.combine(morning, dt.time(3), tzinfo=dt.UTC)
            window_id = f"{morning - dt.timedelta(days=1)}"
            persistent = _persistent_shifts(replay, run, champion, morning - dt.timedelta(days=delay), cache)
            plan = plan_signals(
                config.retraining,
                retrain_after_days=shift.retrain_after_days,
                windows=[
                    WindowFinding(
                        window_id=window_id,
                        model_version=champion.id,
                        degradations=assess(config.monitoring, drift=None, shifts=persistent),
                    )
                ],
                champion=champion.id,
                stale=staleness(
                    config.retraining,
                    trained_through=dt.datetime.combine(
                        champion.trained_through + dt.timedelta(days=1), dt.time(), dt.UTC
                    ),
                    last_retraining=last_retraining(ledger, config.model_name),
                    landed_through=dt.datetime.combine(morning, dt.time(), dt.UTC),  # a day's flights land by its end
                    now=now,
                ),
            )
            for _, reason, _why in plan.alert:  # alert-only: once per reason and served version
                if alert_key(champion.id, reason) not in alerted:
                    alerted.add(alert_key(champion.id, reason))
                    run.alerts.append(morning)
                    run.alarms.append(
                        {
                            "morning": morning,
                            "key": reason.key,
                            "kind": reason.kind,
                            "action": "alert",
                            "version": champion.id,
                        }
                    )
            for _, reasons in plan.retrain:
                signal = DegradationSignal(
                    model_name=config.model_name,
                    model_version=champion.id,
                    window_id=window_id,
                    window_start=now - dt.timedelta(days=1),
                    window_end=now,
                    reasons=reasons,
                    raised_at=now,
                )
                decision = decide(
                    signal,
                    ledger=ledger,
                    guards=config.monitoring.guards,
                    champion_version=champion.id,
                    active_training_runs=0,
                    now=now,
                )
                entry: dict[str, Any] = {"morning": morning, "action": decision.action}
                evidence = sorted({r.key for r in reasons if r.kind != "stale"})
                if evidence:  # an alarm (age alone is not one): one per reason and version
                    key = "+".join(evidence)
                    alarm = next((a for a in run.alarms if a["key"] == key and a["version"] == champion.id), None)
                    if alarm is None:
                        alarm = {**entry, "key": key, "kind": "concept_shift", "version": champion.id}
                        run.alarms.append(alarm)
                        run.alerts.append(morning)
                    else:
                        alarm["action"] = decision.action
                    entry = alarm
                ledger.append(LedgerEntry.of(signal, at=now, action=decision.action, reason=decision.reason))
                if decision.action == "alert":
                    run.alerts.append(morning)
                if decision.action != "retrain":
                    continue
                reason_key = f"{signal.key} on {champion.id}"  # a reason is what was wrong with which champion
                run.trainings_per_reason[reason_key] = run.trainings_per_reason.get(reason_key, 0) + 1
                champion, promoted = _retrain(replay, run, champion, morning, delay, alarm=entry)
                outcome = "promoted" if promoted else "rejected"
                entry["outcome"] = outcome
                ledger.append(LedgerEntry.of(signal, at=now, action="outcome", reason=outcome, outcome=outcome))
                break  # one retraining a morning: the next signal meets the new champion tomorrow
        run.served[day] = champion
        run.daily_auc[day] = replay.auc(champion, day)
    return run


def candidate_signals(replay: Replay, run: Run, days: list[dt.date]) -> dict[str, dict[str, float | None]]:
    """How often each candidate signal fires on the policy's served models, and how often usefully.

    A firing is useful when the model a retraining that morning would have produced beats the served
    one over the next `USEFUL_HORIZON_DAYS` days by at least `promotion.min_improvement`.
    """
    from airloop.monitoring.drift import compute_drift
    from airloop.monitoring.monitor import SCORE
    from airloop.monitoring.signals import drifted_share, estimated_roc_auc
    from airloop.training.features import feature_frame

    config = replay.config
    fired: dict[str, list[bool]] = {"drift_share": [], "weighted_drift_share": [], "estimated_auc_drop": []}
    fired["labelled_floor"] = []
    for i, day in enumerate(days[1:-USEFUL_HORIZON_DAYS], start=1):
        served = run.served[days[i - 1]]
        fresh = replay.model(day - dt.timedelta(days=1))
        ahead = days[i : i + USEFUL_HORIZON_DAYS]
        gain = np.mean([replay.auc(fresh, d) for d in ahead]) - np.mean([replay.auc(served, d) for d in ahead])
        useful = bool(gain >= config.promotion.min_improvement)
        yesterday = days[i - 1]
        current = feature_frame(replay.by_day[yesterday], config.dataset)
        current[SCORE] = replay.scores(served, yesterday)
        drift = compute_drift(
            served.reference,
            current,
            numeric=[*config.dataset.numeric_features, SCORE],
            categorical=config.dataset.categorical_features,
        ).to_dict()
        drift["outputs"] = [SCORE]
        weights = replay.model(served.trained_through, importances=True).importances
        estimated = estimated_roc_auc(current[SCORE].to_numpy(), served.calibration)
        reference_estimate = estimated_roc_auc(served.fitted.holdout_scores, served.calibration)
        validation = served.fitted.metrics[config.promotion_metric]
        for name, fires in (
            ("drift_share", drifted_share(drift) >= config.monitoring.drift.max_drifted_share),
            ("weighted_drift_share", drifted_share(drift, weights) >= config.monitoring.drift.max_drifted_share),
            ("estimated_auc_drop", reference_estimate - estimated >= 0.03),
            ("labelled_floor", replay.auc(served, yesterday) < 0.95 * validation),
        ):
            if fires:
                fired[name].append(useful)
    windows = len(days) - 1 - USEFUL_HORIZON_DAYS
    return {
        name: {
            "fired_share": round(len(hits) / windows, 3),
            "useful_share": round(float(np.mean(hits)), 3) if hits else None,
        }
        for name, hits in fired.items()
    }


def _recovery_days(replay: Replay, run: Run, start: dt.date, delay: int) -> float:
    """Days from `start` until the served model, fitted on shifted data, is as good as a fresh one.

    Paired, so one day's noise (a day's ROC AUC varies by about 0.08) cancels: each served day's
    ROC AUC is set against that of the model fitted on the labelled window before its morning (what
    nightly retraining would serve that day). Back: over three days the served model trails the
    fresh one by at most `RECOVERY_TOLERANCE`. Not back by the end of the replay: the days to its
    end plus one (a lower bound, never NaN).
    """
    days = sorted(run.daily_auc)
    for i, day in enumerate(days):
        if day < start or run.served[day].trained_through < start:
            continue
        ahead = days[i : i + 3]
        gap = np.mean([replay.auc(replay.model(d - dt.timedelta(days=delay)), d) - run.daily_auc[d] for d in ahead])
        if gap <= RECOVERY_TOLERANCE:
            return float((day - start).days)
    return float((days[-1] - start).days + 1)


def run(
    size: str,
    *,
    label_delay_days: int = 1,
    overrides: dict[str, Any] | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Replay the loop at `size` ("smoke" or "full") and return the `loop.*` figures.

    `overrides` are merged over the shipped flights config (e.g. another `retraining` policy).
    `quick` leaves out what needs a fit a day or a week (nightly, weekly, the candidate signals):
    for trying a policy against monthly and cost-matched in a third of the time.
    """
    from airloop.config import load_config
    from airloop.settings import PROJECT_ROOT

    first, last, harmful_from, harmless_from, iterations = SIZES[size]
    merged: dict[str, Any] = {"training": {"model": {"max_iter": iterations}}} if iterations else {}
    config = load_config(PROJECT_ROOT / "include" / "pipelines" / "flights.yaml", {**merged, **(overrides or {})})
    began = time.perf_counter()
    world = _world(first, last, harmful_from, harmless_from, config)
    replay = Replay(config, world)
    days = [d for d in sorted(replay.by_day) if first <= d <= last]
    january = replay.model(first - dt.timedelta(days=1))

    policy = replay_policy(replay, days, label_delay_days, january)
    runs = {"policy": policy}
    runs["frozen"] = replay_schedule(
        replay, "frozen", days, delay=label_delay_days, first=january, retrain_on=lambda m: False
    )
    if not quick:
        runs["nightly"] = replay_schedule(
            replay, "nightly", days, delay=label_delay_days, first=january, retrain_on=lambda m: True
        )
        runs["weekly"] = replay_schedule(
            replay, "weekly", days, delay=label_delay_days, first=january, retrain_on=lambda m: m.weekday() == 0
        )
    runs["monthly"] = replay_schedule(
        replay, "monthly", days, delay=label_delay_days, first=january, retrain_on=lambda m: m.day == 1
    )
    count = max(len(policy.retrains), 1)
    spacing = len(days) / (count + 1)
    mornings = {days[round(spacing * (k + 1))] for k in range(count)}
    runs["cost_matched"] = replay_schedule(
        replay, "cost_matched", days, delay=label_delay_days, first=january, retrain_on=mornings.__contains__
    )
    candidates = {} if quick else candidate_signals(replay, policy, days)

    harmless_end = harmless_from + dt.timedelta(days=7 + 2 + label_delay_days)
    harmless_alarms = [a for a in policy.alarms if harmless_from < a["morning"] <= harmless_end]
    # False (the definition): a challenger it caused lost, or it came from the harmless shift.
    false_alarms = [a for a in policy.alarms if a.get("outcome") == "rejected" or a in harmless_alarms]
    unretrained = [a for a in policy.alarms if "outcome" not in a]
    harmful = [a for a in policy.alarms if a["morning"] > harmful_from]
    months = pd.Series([d.strftime("%Y-%m") for d in policy.alerts]).value_counts()
    figures: dict[str, Any] = {
        "label_delay_days": label_delay_days,
        "served_days": len(days),
        **{f"{name}_mean_roc_auc": round(r.mean_auc, 4) for name, r in runs.items()},
        **{f"{name}_retrains": len(r.retrains) for name, r in runs.items() if name != "frozen"},
        "policy_promotions": len(policy.promotions),
        "shadow_days": config.promotion.shadow.days,
        **{f"{name}_shadow_promotions": len(r.shadow_promotions) for name, r in runs.items() if name != "frozen"},
        "policy_alarms": len(policy.alarms),
        "false_alarm_share": round(len(false_alarms) / len(policy.alarms), 3) if policy.alarms else 0.0,
        "alarms_never_retrained": len(unretrained),  # alerted, gone before a fair challenger could be trained
        # Not flagged by the end of the replay: the days to its end plus one (a lower bound).
        "harmful_shift_detection_days": (harmful[0]["morning"] - harmful_from).days
        if harmful
        else (days[-1] - harmful_from).days + 1,
        "harmful_shift_recovery_days": _recovery_days(replay, policy, harmful_from, label_delay_days),
        "monthly_harmful_shift_recovery_days": _recovery_days(replay, runs["monthly"], harmful_from, label_delay_days),
        "harmless_shift_alarms": len(harmless_alarms),
        "max_trainings_per_reason": max(
            [n for k, n in policy.trainings_per_reason.items() if not k.startswith("stale")], default=0
        ),
        "max_alerts_per_month": int(months.max()) if len(months) else 0,
        "fits": replay.fits,
        "fit_s": round(replay.fit_s, 1),
        "replay_s": round(time.perf_counter() - began, 1),
        "notes": _notes(policy, candidates, harmful_from, harmless_from),
    }
    for name, found in candidates.items():
        figures[f"candidate_{name}_fired_share"] = found["fired_share"]
        figures[f"candidate_{name}_useful_share"] = found["useful_share"]
    return figures


def _notes(policy: Run, candidates: dict[str, Any], harmful_from: dt.date, harmless_from: dt.date) -> str:
    alarms = ", ".join(
        f"{a['morning']} {a['key']} ({a['action']}{', ' + a['outcome'] if 'outcome' in a else ''})"
        for a in policy.alarms
    )
    table = "; ".join(
        f"{name}: fires on {c['fired_share']:.0%} of days, useful {_share(c['useful_share'])}"
        for name, c in candidates.items()
    )
    return (
        f"Harmful shift from {harmful_from} ({HARMFUL_CARRIER} +{HARMFUL_DELAY_MINUTES} min), harmless calendar "
        f"re-stamp {harmless_from} for 7 days. Policy alarms: {alarms or 'none'}. Retrained on "
        f"{', '.join(map(str, policy.retrains))}. Candidate signals on the policy's served models: {table}."
    )


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="full")
    parser.add_argument("--label-delay-days", type=int, default=1)
    parser.add_argument("--strategy", choices=("schedule", "degradation", "both"), help="instead of the config's")
    parser.add_argument("--max-age-days", type=int, help="instead of the config's retraining.max_age_days")
    parser.add_argument("--override", default="{}", help='config keys as JSON, e.g. \'{"training": {"refit": true}}\'')
    parser.add_argument("--quick", action="store_true", help="policy, frozen, monthly and cost-matched only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    retraining = {k: v for k, v in (("strategy", args.strategy), ("max_age_days", args.max_age_days)) if v}
    overrides = {"retraining": retraining, **json.loads(args.override)}
    figures = run(args.size, label_delay_days=args.label_delay_days, overrides=overrides, quick=args.quick)
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()

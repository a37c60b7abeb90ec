"""How old the champion is, counted in data that landed after it was trained (`retraining.max_age_days`).

Read by monitoring's `raise_signals` (which retrains on it) and by `airloop plan` (which only says it).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from airloop.config import PipelineConfig
from airloop.monitoring.policy import Degradation, staleness
from airloop.monitoring.retraining import RetrainingLedger, last_retraining
from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChampionAge:
    """What the age bound sees for a champion at `now`."""

    trained_through: dt.datetime  # the end of its training window (exclusive)
    landed_through: dt.datetime | None  # the end of the newest day landed since, or None
    last_retraining: dt.datetime | None  # the ledger's last retraining of the model
    stale: Degradation | None  # the `stale` reason, once max_age_days of data have landed


def champion_age(settings: AirloopSettings, config: PipelineConfig, champion: str, now: dt.datetime) -> ChampionAge:
    """The champion's age at `now`: its training window's end, what landed since, and whether that is too old."""
    from airloop.monitoring.paths import MonitoringPaths

    trained = trained_through(settings, config, champion)
    landed = landed_through(settings, config, trained, now)
    last = last_retraining(RetrainingLedger(MonitoringPaths(settings, config).ledger).entries(), config.model_name)
    stale = staleness(config.retraining, trained_through=trained, last_retraining=last, landed_through=landed, now=now)
    return ChampionAge(trained_through=trained, landed_through=landed, last_retraining=last, stale=stale)


def trained_through(settings: AirloopSettings, config: PipelineConfig, version: str) -> dt.datetime:
    """The end of `version`'s training window (exclusive), from its snapshot tag."""
    from mlflow.tracking import MlflowClient

    from airloop.lineage import TAG_PREFIX

    found = MlflowClient(tracking_uri=settings.tracking_uri).get_model_version(config.model_name, version)
    end = found.tags.get(f"{TAG_PREFIX}snapshot_id", "").rpartition("_")[2]
    if not end:  # registered by hand: its age counts from its registration
        return dt.datetime.fromtimestamp(found.creation_timestamp / 1000, dt.UTC)
    return dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC)


def landed_through(
    settings: AirloopSettings, config: PipelineConfig, since: dt.datetime, now: dt.datetime
) -> dt.datetime | None:
    """The end of the newest day of data in the source after `since` (up to `now`'s day), or None."""
    from airloop.data.sources import newest_landed

    newest = newest_landed(
        config.dataset.source,
        home=settings.home,
        time_column=config.dataset.time_column,
        since=since.date(),
        until=now.date() + dt.timedelta(days=1),
    )
    if newest is None:
        log.info("no data has landed since the champion's training data (before %s)", f"{since:%Y-%m-%d}")
        return None
    log.info("data has landed through %s; the champion's training data ends before %s", newest, f"{since:%Y-%m-%d}")
    return dt.datetime.combine(newest + dt.timedelta(days=1), dt.time(), dt.UTC)

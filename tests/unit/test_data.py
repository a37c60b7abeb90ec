from __future__ import annotations

import datetime as dt
import logging
import sqlite3

import pandas as pd
import pytest

from airloop.config import FilesSource, SqlSource
from airloop.data.replay import fill_landing_zone
from airloop.data.snapshot import content_hash, find_snapshot, read_snapshot, write_snapshot
from airloop.data.sources import NoDataError, newest_landed, read_window

MARCH_1 = dt.date(2026, 3, 1)


def test_replay_moves_2013_days_onto_landing_days(landing_home):
    frame = pd.read_parquet(landing_home / "landing/flights/date=2026-03-05/flights.parquet")
    assert len(frame) > 500
    assert set(frame[["year", "month", "day"]].drop_duplicates().itertuples(index=False)) == {(2026, 3, 5)}
    # Local 2026-03-05 departures are at most a day off in UTC.
    assert frame["time_hour"].dt.date.isin([dt.date(2026, 3, 5), dt.date(2026, 3, 6)]).all()
    assert frame["temp"].notna().mean() > 0.9  # weather joined on


def test_replay_is_idempotent_and_keeps_existing_partitions(landing_home):
    folder = landing_home / "landing" / "flights"
    assert fill_landing_zone(folder, dt.date(2026, 3, 1), dt.date(2026, 3, 14)) == 0


def test_replay_of_a_leap_day_uses_february_28(tmp_path):
    assert fill_landing_zone(tmp_path, dt.date(2028, 2, 29), dt.date(2028, 2, 29)) == 1
    frame = pd.read_parquet(tmp_path / "date=2028-02-29/flights.parquet")
    assert (frame["day"] == 29).all()
    assert len(frame) > 500


def test_replay_refuses_a_reversed_range(tmp_path):
    with pytest.raises(ValueError, match="before start"):
        fill_landing_zone(tmp_path, dt.date(2026, 3, 2), dt.date(2026, 3, 1))


def test_read_window_takes_start_inclusive_end_exclusive(landing_home):
    source = FilesSource(path=landing_home / "landing" / "flights")
    frame, _ = read_window(source, home=landing_home, start=MARCH_1, end=dt.date(2026, 3, 3))
    assert set(frame["day"]) == {1, 2}


def test_read_window_with_no_partitions_raises(landing_home):
    source = FilesSource(path=landing_home / "landing" / "flights")
    with pytest.raises(NoDataError, match="no rows"):
        read_window(source, home=landing_home, start=dt.date(2030, 1, 1), end=dt.date(2030, 1, 3))


def test_read_window_drops_a_column_some_partitions_lack(tmp_path, caplog):
    for day, frame in [("2026-01-01", pd.DataFrame({"a": [1], "b": [2]})), ("2026-01-02", pd.DataFrame({"a": [3]}))]:
        (tmp_path / f"date={day}").mkdir()
        frame.to_parquet(tmp_path / f"date={day}" / "part.parquet")
    with caplog.at_level(logging.WARNING):
        frame, _ = read_window(
            FilesSource(path=tmp_path), home=tmp_path, start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 3)
        )
    assert list(frame.columns) == ["a"]
    assert "not in every partition: ['b']" in caplog.text


def test_sql_source_reads_the_interval(tmp_path):
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        pd.DataFrame({"day": ["2026-01-01", "2026-01-02", "2026-01-03"], "x": [1, 2, 3]}).to_sql("t", conn)
    source = SqlSource(url=f"sqlite:///{db}", query="SELECT day, x FROM t WHERE day >= :start AND day < :end")
    frame, origin = read_window(source, home=tmp_path, start=dt.date(2026, 1, 2), end=dt.date(2026, 1, 4))
    assert frame["x"].tolist() == [2, 3]
    assert "warehouse.db" in origin


def test_newest_landed_is_the_last_partition_in_the_interval(landing_home):
    source = FilesSource(path=landing_home / "landing" / "flights")
    find = dict(home=landing_home, time_column="time_hour")
    assert newest_landed(source, **find, since=MARCH_1, until=dt.date(2026, 3, 8)) == dt.date(2026, 3, 7)
    assert newest_landed(source, **find, since=MARCH_1, until=dt.date(2030, 1, 1)) == dt.date(2026, 3, 14)
    assert newest_landed(source, **find, since=dt.date(2026, 3, 15), until=dt.date(2026, 4, 1)) is None


def test_newest_landed_asks_a_sql_source_for_its_newest_row(tmp_path):
    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        pd.DataFrame({"day": ["2026-01-01", "2026-01-02", "2026-01-05"], "x": [1, 2, 3]}).to_sql("t", conn)
    source = SqlSource(url=f"sqlite:///{db}", query="SELECT day, x FROM t WHERE day >= :start AND day < :end")
    find = dict(home=tmp_path, time_column="day")
    assert newest_landed(source, **find, since=dt.date(2026, 1, 1), until=dt.date(2026, 1, 4)) == dt.date(2026, 1, 2)
    assert newest_landed(source, **find, since=dt.date(2026, 1, 1), until=dt.date(2026, 2, 1)) == dt.date(2026, 1, 5)
    assert newest_landed(source, **find, since=dt.date(2026, 1, 6), until=dt.date(2026, 2, 1)) is None


def test_snapshot_rewrite_of_the_same_data_is_the_same_snapshot(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "t": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True)})
    first = write_snapshot(frame, lake=tmp_path, dataset="d", start=MARCH_1, end=dt.date(2026, 3, 2), source="s")
    again = write_snapshot(frame, lake=tmp_path, dataset="d", start=MARCH_1, end=dt.date(2026, 3, 2), source="s")
    assert first == again
    assert [p.name for p in (tmp_path / "snapshots" / "d").iterdir()] == ["2026-03-01_2026-03-02"]
    pd.testing.assert_frame_equal(read_snapshot(first), frame)


def test_a_source_that_changed_is_the_new_snapshot_and_the_old_content_is_kept_by_hash(tmp_path):
    window = dict(start=MARCH_1, end=dt.date(2026, 3, 2))
    kwargs = dict(lake=tmp_path, dataset="d", **window, source="s")
    first = write_snapshot(pd.DataFrame({"a": [1]}), **kwargs)
    second = write_snapshot(pd.DataFrame({"a": [2]}), **kwargs)
    assert first.path == second.path
    assert first.content_hash != second.content_hash
    assert read_snapshot(second)["a"].tolist() == [2]
    # A model trained on the first content still finds exactly that content, by its hash.
    trained_on = find_snapshot(tmp_path, "d", **window, content=first.content_hash)
    assert trained_on is not None
    assert trained_on.path != second.path
    assert read_snapshot(trained_on)["a"].tolist() == [1]
    assert find_snapshot(tmp_path, "d", **window, content=second.content_hash).path == second.path
    assert find_snapshot(tmp_path, "d", **window, content="0" * 64) is None


def test_tampered_snapshot_is_refused(tmp_path):
    manifest = write_snapshot(
        pd.DataFrame({"a": [1]}), lake=tmp_path, dataset="d", start=MARCH_1, end=dt.date(2026, 3, 2), source="s"
    )
    pd.DataFrame({"a": [9]}).to_parquet(manifest.data_path, index=False)
    with pytest.raises(ValueError, match="does not match its manifest"):
        read_snapshot(manifest)


def test_reading_some_columns_still_checks_every_column(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [0.5, 1.5]})
    manifest = write_snapshot(frame, lake=tmp_path, dataset="d", start=MARCH_1, end=dt.date(2026, 3, 2), source="s")
    pd.testing.assert_frame_equal(read_snapshot(manifest, ["c", "a"]), frame[["c", "a"]])
    frame.assign(b=["x", "tampered"]).to_parquet(manifest.data_path, index=False)
    with pytest.raises(ValueError, match="does not match its manifest"):
        read_snapshot(manifest, ["a"])  # a change in a column not asked for is still found


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(pd.DataFrame({"a": [1, 3]}), id="value"),
        pytest.param(pd.DataFrame({"b": [1, 2]}), id="column-name"),
        pytest.param(pd.DataFrame({"a": [1.0, 2.0]}), id="dtype"),
        pytest.param(pd.DataFrame({"a": [2, 1]}), id="order"),
    ],
)
def test_content_hash_changes_with_any_difference(other):
    assert content_hash(pd.DataFrame({"a": [1, 2]})) != content_hash(other)

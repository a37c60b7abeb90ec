"""What `airloop up` and `make demo` print about the DAGs: which run, on what schedule, when next."""

from __future__ import annotations

import datetime as dt

import pytest

from airloop.cli import describe_schedules, overdue

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def _dag(dag_id: str, summary: str | None, *, paused: bool = False, next_run: str | None = None) -> dict:
    return {
        "dag_id": dag_id,
        "is_paused": paused,
        "timetable_summary": summary,
        "timetable_description": "At 03:00" if summary == "0 3 * * *" else None,
        "next_dagrun_run_after": next_run,
    }


LIVE = [
    _dag("airloop_flights_training", "None"),
    _dag("airloop_flights_monitoring", "0 3 * * *", next_run="2026-05-02T03:00:00Z"),
    _dag("airloop_flights_retraining", "@continuous", next_run="2026-05-01T11:59:00Z"),
    _dag("airloop_flights_deploy", None),
]


def test_each_dag_says_how_it_runs_and_monitoring_when_next():
    lines = describe_schedules(LIVE, now=NOW)
    assert [line.split()[0] for line in lines] == [
        "airloop_flights_deploy",
        "airloop_flights_monitoring",
        "airloop_flights_retraining",
        "airloop_flights_training",
    ]
    by_dag = {line.split()[0]: line for line in lines}
    assert (
        "0 3 * * * (At 03:00), next run 2026-05-02 03:00 UTC (in 15 h 00 min)" in by_dag["airloop_flights_monitoring"]
    )
    assert "on demand" in by_dag["airloop_flights_deploy"]
    assert "on demand" in by_dag["airloop_flights_training"]
    assert "continuous" in by_dag["airloop_flights_retraining"]


def test_the_schedules_line_up_whatever_the_pipelines_names():
    lines = describe_schedules([*LIVE, _dag("airloop_arrival_delay_monitoring", "0 3 * * *")], now=NOW)
    starts = {len(line) - len(line[2:].split(" ", 1)[1].lstrip()) for line in lines}
    assert len(starts) == 1  # every "how it runs" starts in one column


@pytest.mark.parametrize(
    ("dag", "expected"),
    [
        pytest.param(_dag("m", "0 3 * * *", paused=True, next_run="2026-05-02T03:00:00Z"), "paused", id="paused"),
        pytest.param(_dag("m", "0 3 * * *", next_run="2026-05-01T03:00:00+00:00"), "due now", id="due"),
        pytest.param(_dag("m", "0 3 * * *"), "0 3 * * * (At 03:00)", id="no-next-run-yet"),
    ],
)
def test_a_scheduled_dag_that_does_not_run_soon_says_why(dag, expected):
    (line,) = describe_schedules([dag], now=NOW)
    assert expected in line


def test_overdue_lists_only_unpaused_scheduled_dags_whose_run_is_due():
    dags = [
        *LIVE,
        _dag("airloop_due", "0 3 * * *", next_run="2026-05-01T03:00:00Z"),
        _dag("airloop_paused_due", "0 3 * * *", paused=True, next_run="2026-05-01T03:00:00Z"),
    ]
    # The continuous DAG's run-after is always about now: it is not waited for.
    assert overdue(dags, now=NOW) == ["airloop_due"]

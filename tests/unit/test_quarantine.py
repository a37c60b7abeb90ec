"""Re-admitting a quarantined batch: validated again with the real suite, nothing lost on the way.

The landing zone here is this test's own copy, so breaking and fixing a day touches no other test.
The same flow through a real Airflow run (the blocked run goes on) is in
tests/integration/test_1_training_pipeline.py.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pytest

from airloop.lineage import Lineage
from airloop.pipeline import ingest, validate
from airloop.settings import AirloopSettings
from airloop.validation import DataValidationError
from airloop.validation.quarantine import (
    BlockedRun,
    QuarantineError,
    history_dir,
    quarantine_dir,
    quarantined_ids,
    readmissions,
    readmit,
)

START, END = dt.date(2026, 3, 1), dt.date(2026, 3, 8)
BATCH = "2026-03-01_2026-03-08"
BLOCKED = Lineage(dag_id="airloop_flights_training", run_id="manual__2026-03-08")
NOW = dt.datetime(2026, 3, 9, 8, 30, tzinfo=dt.UTC)


@pytest.fixture
def own_landing(landing_home, tmp_path) -> AirloopSettings:
    home = tmp_path / "home"
    shutil.copytree(landing_home / "landing", home / "landing")
    return AirloopSettings(home=home, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _day(settings: AirloopSettings, day: dt.date):
    return settings.state.landing / "flights" / f"date={day:%Y-%m-%d}" / "flights.parquet"


def _break(settings: AirloopSettings, day: dt.date = dt.date(2026, 3, 4)) -> pd.DataFrame:
    path = _day(settings, day)
    good = pd.read_parquet(path)
    bad = good.copy()
    bad.loc[bad.index[:7], "distance"] = -5
    bad.to_parquet(path, index=False)
    return good


def _quarantine(settings: AirloopSettings, flights_config) -> None:
    with pytest.raises(DataValidationError) as caught:
        validate(settings, flights_config, ingest(settings, flights_config, START, END), BLOCKED)
    assert f"airloop quarantine [--pipeline NAME] readmit {BATCH}" in str(caught.value)


def test_a_fixed_source_is_readmitted_and_the_quarantined_batch_kept(own_landing, flights_config):
    settings = own_landing
    good = _break(settings)
    _quarantine(settings, flights_config)
    assert quarantined_ids(settings.state.lake, "flights") == [BATCH]

    good.to_parquet(_day(settings, dt.date(2026, 3, 4)), index=False)  # the source is fixed
    attempt = readmit(settings, flights_config, BATCH, by="dana", why="upstream re-sent 3/4", now=NOW)

    assert attempt.admitted
    assert attempt.failures == []
    assert attempt.blocked == BlockedRun(dag_id="airloop_flights_training", run_id="manual__2026-03-08")
    assert quarantined_ids(settings.state.lake, "flights") == []
    snapshot = settings.state.lake / "snapshots" / "flights" / BATCH
    assert json.loads((snapshot / "manifest.json").read_text())["content_hash"] == attempt.content_hash
    # The quarantined batch, its reports and the run it blocked are kept in the history.
    assert attempt.history == history_dir(settings.state.lake, "flights") / BATCH / "20260309T083000000000Z"
    assert {"data.parquet", "manifest.json", "validation.json", "validation.html", "blocked.json"} <= {
        p.name for p in attempt.history.iterdir()
    }
    [logged] = readmissions(settings.state.lake, "flights")
    assert (logged.by, logged.why, logged.admitted, logged.at) == ("dana", "upstream re-sent 3/4", True, NOW)


def test_a_source_still_broken_another_way_stays_quarantined_naming_the_blocked_run(own_landing, flights_config):
    settings = own_landing
    _break(settings)
    _quarantine(settings, flights_config)
    path = _day(settings, dt.date(2026, 3, 5))
    other = pd.read_parquet(path)
    other.loc[other.index[:3], "origin"] = "XXX"  # "fixed" by someone who broke the next day
    other.to_parquet(path, index=False)

    attempt = readmit(settings, flights_config, BATCH, by="dana", why="re-sent", now=NOW)

    assert not attempt.admitted
    assert any(f.startswith("expect_column_values_to_be_in_set(origin)") for f in attempt.failures), attempt.failures
    assert quarantined_ids(settings.state.lake, "flights") == [BATCH]
    batch = quarantine_dir(settings.state.lake, "flights") / BATCH
    assert BlockedRun.model_validate_json((batch / "blocked.json").read_text()).run_id == "manual__2026-03-08"
    assert not (settings.state.lake / "snapshots" / "flights" / BATCH).exists()
    assert attempt.history is not None
    assert (attempt.history / "validation.json").is_file()  # the first failure's report is not overwritten
    assert [a.admitted for a in readmissions(settings.state.lake, "flights")] == [False]


def test_an_unfixed_source_or_an_unknown_batch_is_refused_and_nothing_changes(own_landing, flights_config):
    settings = own_landing
    _break(settings)
    _quarantine(settings, flights_config)

    with pytest.raises(QuarantineError, match="still holds the quarantined data"):
        readmit(settings, flights_config, BATCH, by="dana", why="retry")
    with pytest.raises(QuarantineError, match=f"quarantined: \\['{BATCH}'\\]"):
        readmit(settings, flights_config, "2026-01-01_2026-01-08", by="dana", why="retry")
    with pytest.raises(QuarantineError, match="say why"):
        readmit(settings, flights_config, BATCH, by="dana", why=" ")

    assert quarantined_ids(settings.state.lake, "flights") == [BATCH]
    assert readmissions(settings.state.lake, "flights") == []
    assert not history_dir(settings.state.lake, "flights").exists()


def test_a_second_failed_run_of_the_same_window_keeps_the_first_ones_report(own_landing, flights_config):
    settings = own_landing
    _break(settings)
    _quarantine(settings, flights_config)
    _quarantine(settings, flights_config)

    assert quarantined_ids(settings.state.lake, "flights") == [BATCH]
    [kept] = list((history_dir(settings.state.lake, "flights") / BATCH).iterdir())
    assert (kept / "validation.html").is_file()


def test_the_cli_lists_shows_and_readmits(own_landing, flights_config, monkeypatch, capsys):
    from airloop.cli import main

    settings = own_landing
    good = _break(settings)
    _quarantine(settings, flights_config)
    monkeypatch.setenv("AIRLOOP_HOME", str(settings.home))
    monkeypatch.setenv("AIRLOOP_PIPELINES", str(settings.pipelines))
    monkeypatch.setenv("AIRLOOP_MLFLOW_TRACKING_URI", settings.tracking_uri)

    assert main(["quarantine", "--pipeline", "flights", "list"]) == 0
    listed = capsys.readouterr().out
    assert BATCH in listed
    assert "expect_column_values_to_be_between(distance)" in listed
    assert main(["quarantine", "--pipeline", "flights", "show", BATCH]) == 0
    shown = capsys.readouterr().out
    assert "blocked    airloop_flights_training run manual__2026-03-08" in shown
    assert "validation.html" in shown

    assert main(["quarantine", "--pipeline", "flights", "readmit", BATCH, "--why", "nothing fixed yet"]) == 2
    assert "still holds the quarantined data" in capsys.readouterr().out
    good.to_parquet(_day(settings, dt.date(2026, 3, 4)), index=False)
    readmit = ["readmit", BATCH, "--why", "re-sent", "--by", "dana", "--no-resume"]
    assert main(["quarantine", "--pipeline", "flights", *readmit]) == 0
    out = capsys.readouterr().out
    assert f"{BATCH} re-admitted by dana: re-sent" in out
    assert "clear airloop_flights_training run manual__2026-03-08 to go on" in out
    assert main(["quarantine", "--pipeline", "flights", "list"]) == 0
    assert "no quarantined flights batches" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        pytest.param(None, "no Airflow admin login is set here", id="no-login-none-made-up"),
        pytest.param("secret", "ConnectError", id="airflow-unreachable"),
    ],
)
def test_a_readmitted_batch_whose_run_cannot_be_resumed_says_how_to_go_on(tmp_path, password, expected):
    import datetime as dt

    from airloop.quarantine_cli import _resume
    from airloop.settings import AirloopSettings
    from airloop.validation.quarantine import BlockedRun, Readmission
    from tests.conftest import free_port

    settings = AirloopSettings(home=tmp_path, admin_password=password, airflow_port=free_port())
    attempt = Readmission(
        snapshot_id="2026-03-15_2026-03-22",
        by="ci",
        why="re-sent",
        at=dt.datetime(2026, 3, 23, tzinfo=dt.UTC),
        admitted=True,
        blocked=BlockedRun(dag_id="airloop_flights_training", run_id="manual__1"),
    )
    said = _resume(settings, attempt)
    assert said.startswith("re-admitted, but airloop_flights_training run manual__1 was not resumed (")
    assert expected in said
    assert said.endswith("clear it from ingest on in the Airflow UI to go on")
    assert not (tmp_path / "admin_password").exists()  # no login was made up on the way

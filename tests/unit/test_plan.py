"""`airloop plan` and the `dry_run` Param: what a training run would do, on real data, changing nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from airloop.config import SqlSource
from airloop.monitoring.paths import MonitoringPaths
from airloop.monitoring.policy import Degradation
from airloop.monitoring.retraining import DegradationSignal, LedgerEntry, RetrainingLedger, SignalStore
from airloop.pipeline import RunOptions, pipeline_config
from airloop.plan import plan_training
from airloop.settings import AirloopSettings
from tests.conftest import flights, flights_file, sqlite_champion

RUN_DATE = dt.date(2026, 3, 8)
NOW = dt.datetime(2026, 3, 8, 6, tzinfo=dt.UTC)


def _landed_rows(settings: AirloopSettings, start: dt.date, end: dt.date) -> int:
    days = pd.date_range(start, end - dt.timedelta(days=1), freq="D")
    folder = settings.state.landing / "flights"
    return sum(len(pd.read_parquet(f)) for d in days for f in (folder / f"date={d:%Y-%m-%d}").rglob("*.parquet"))


def _plan(settings: AirloopSettings, options: RunOptions, run_date: dt.date = RUN_DATE, source=None):
    """The plan as the `ingest` task and `airloop plan` make it: the config with the run's choices laid over."""
    config = pipeline_config(flights(settings), options)
    if source is not None:
        config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"source": source})})
    return plan_training(settings, config, options, run_date, now=NOW)


def _tree(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")} if folder.exists() else set()


def test_a_first_run_is_planned_from_the_source_and_nothing_is_written(settings: AirloopSettings) -> None:
    before = _tree(settings.home)

    plan = _plan(settings, RunOptions(window_days=7))

    assert (plan.window_start, plan.window_end) == (dt.date(2026, 3, 1), RUN_DATE)
    assert plan.rows == _landed_rows(settings, plan.window_start, plan.window_end) > 0
    assert plan.missing_days == []
    assert plan.champion is None
    assert plan.target == "local"  # auto, and no Docker engine handed in
    assert any(g.startswith("evaluate: no champion yet") for g in plan.gates)
    assert any("candidate slot on local" in g for g in plan.gates)
    assert plan.guards.pending == []
    assert plan.guards.age == "no champion"
    text = "\n".join(plan.lines())
    assert f"rows       {plan.rows}\n" in text
    assert "target     local (deploy target auto)" in text
    # Read, never written: no snapshot, ledger or signal; no MLflow run or model.
    assert _tree(settings.home) == before
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=settings.tracking_uri)
    assert mlflow.search_registered_models() == []
    assert mlflow.get_experiment_by_name(plan.model_name) is None


def test_a_window_without_data_says_so(settings: AirloopSettings) -> None:
    plan = _plan(settings, RunOptions(window_days=3, window_end=dt.date(2026, 6, 1)))
    assert (plan.rows, plan.source_error) == (0, None)
    assert plan.missing_days == [dt.date(2026, 5, 29), dt.date(2026, 5, 30), dt.date(2026, 5, 31)]
    assert (
        "rows       0 (3 of 3 days have no partition: 2026-05-29, 2026-05-30, 2026-05-31); fewer than "
        "training.min_rows (500): the run would stop there"
    ) in plan.lines()


def test_an_unreadable_source_is_reported_not_raised(settings: AirloopSettings) -> None:
    unreadable = SqlSource(type="sql", url="sqlite:////nonexistent/folder/db.sqlite", query="SELECT 1")
    plan = _plan(settings, RunOptions(), source=unreadable)
    assert plan.rows is None
    assert "OperationalError" in (plan.source_error or "")
    assert "cannot be read: OperationalError" in "\n".join(plan.lines())


@pytest.fixture(scope="module")
def with_champion(landing_home: Path, tmp_path_factory: pytest.TempPathFactory):
    return sqlite_champion(tmp_path_factory.mktemp("plan"), landing_home, max_iter=20, run_id="plan")


def _signal(version: str, key: str) -> DegradationSignal:
    return DegradationSignal(
        model_name="airloop-flights-delay",
        model_version=version,
        window_id="2026-03-07",
        window_start=dt.datetime(2026, 3, 7, tzinfo=dt.UTC),
        window_end=dt.datetime(2026, 3, 8, tzinfo=dt.UTC),
        reasons=[Degradation(kind="concept_shift", detail="EV is late", key=key)],
        raised_at=NOW,
    )


def test_a_plan_names_the_champion_its_score_and_what_the_guards_would_say(with_champion) -> None:
    settings, decision = with_champion
    config = flights(settings).config
    paths = MonitoringPaths(settings, config)
    ledger = RetrainingLedger(paths.ledger)
    store = SignalStore(paths.signals)
    earlier = _signal("0", "concept_shift:carrier=B6")  # the retraining that made the champion
    ledger.append(
        LedgerEntry.of(earlier, at=NOW - dt.timedelta(hours=2), action="retrain", reason="retraining for concept_shift")
    )
    store.raise_signal(_signal(decision.version, "concept_shift:carrier=EV"))
    store.raise_signal(_signal("0", "concept_shift:carrier=UA"))  # of a version that no longer serves
    ledger_before, pending_before = paths.ledger.read_text(), sorted(p.name for p in paths.signals.rglob("*.json"))

    plan = _plan(settings, RunOptions(window_days=7), dt.date(2026, 3, 15))

    assert plan.champion == decision.version
    assert plan.champion_score == pytest.approx(decision.challenger_score, abs=1e-6)
    assert any(f"beat champion v{decision.version} by 0.001 roc_auc" in g for g in plan.gates)
    assert plan.guards.breaker == "closed (0 of 3 losses in a row)"
    assert plan.guards.cooldown.startswith("until 2026-03-08 10:00 UTC")
    by_key = {line.split("(")[1].split(")")[0]: line for line in plan.guards.pending}
    assert "suppress: cooldown" in by_key["concept_shift:carrier=EV"]
    assert "suppress: stale: v0 is no longer the champion" in by_key["concept_shift:carrier=UA"]
    assert plan.guards.age.startswith(f"not due: v{decision.version} was trained on data before 2026-03-08")
    # The guards were asked, not applied: the ledger and the queue are as they were.
    assert paths.ledger.read_text() == ledger_before
    assert sorted(p.name for p in paths.signals.rglob("*.json")) == pending_before


def test_forced_and_approved_runs_say_so(with_champion) -> None:
    settings, _ = with_champion
    options = RunOptions(window_days=7, force_promote=True, require_approval=True)
    plan = _plan(settings, options)
    assert any(g.startswith("evaluate: force_promote") for g in plan.gates)
    assert any(g.startswith("approve: a person answers in Required Actions within 24 h") for g in plan.gates)


def test_airloop_plan_prints_the_plan_and_starts_nothing(settings: AirloopSettings, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "AIRLOOP_HOME": str(settings.home),
        "AIRLOOP_PIPELINES": str(settings.pipelines),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "AIRLOOP_DEPLOY_TARGET": "none",
    }
    before = _tree(settings.home)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "airloop.cli", "plan", "--pipeline", "flights"),
            "--date",
            "2026-03-08",
            "--window-days",
            "7",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "(Airflow is not running here: training runs in progress are not counted)" in out
    assert "window     2026-03-01 to 2026-03-08 (end exclusive), 7 days from " in out
    assert "target     none\n" in out
    assert "deploy: target none: champion moves, nothing is deployed" in out
    assert _tree(settings.home) == before  # no admin password generated, no pid file, nothing


def test_airloop_status_names_each_pipelines_dags_champion_and_endpoint(with_champion, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    settings, decision = with_champion
    # Three files: flights (with a champion), delays (none yet), and one that is not a pipeline.
    folder = tmp_path / "pipelines"
    folder.mkdir()
    text = flights_file(settings).read_text()
    (folder / "flights.yaml").write_text(text)
    (folder / "delays.yaml").write_text(
        text.replace("model_name: airloop-flights-delay", "model_name: airloop-delays")
        .replace("  name: flights", "  name: delays")
        .replace("  predict_method: predict", "  predict_method: predict\n  port: 8010")
    )
    (folder / "broken.yaml").write_text(text.replace("window_days: 30", "window_days: 0"))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AIRLOOP_DEPLOY_TARGET")}
    env |= {"AIRLOOP_HOME": str(settings.home), "AIRLOOP_PIPELINES": str(folder)}

    def status(*args: str, **extra: str) -> str:
        command = [sys.executable, "-m", "airloop.cli", "status", *args]
        done = subprocess.run(command, env=env | extra, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    found = json.loads(status("--json", MLFLOW_TRACKING_URI=settings.tracking_uri))
    assert found["services"]["mlflow"] is False
    assert not any(found["services"].values())
    delays, flights = found["pipelines"]
    assert (flights["pipeline"], flights["model_name"]) == ("flights", decision.model_name)
    assert flights["champion"] == decision.version
    assert flights["dags"] == {
        stage: f"airloop_flights_{stage}"
        for stage in ("training", "deploy", "monitoring", "retraining", "reconcile", "readmit")
    }
    assert flights["serving_port"] == 8000
    assert flights["registry_error"] is None
    assert flights["serving_url"] is None  # promoted in process, never deployed
    assert (delays["pipeline"], delays["model_name"], delays["champion"]) == ("delays", "airloop-delays", None)
    assert delays["dags"]["training"] == "airloop_delays_training"
    assert delays["serving_port"] == 8010
    assert found["broken_pipelines"] == [
        {
            "file": str(folder / "broken.yaml"),
            "error": "training.window_days: Input should be greater than or equal to 1",
        }
    ]

    # The embedded MLflow (no tracking URI of its own) is down: said at once, not waited for.
    text = status()
    assert f"pipeline flights ({folder / 'flights.yaml'}): registered model {decision.model_name}" in text
    assert f"pipeline delays ({folder / 'delays.yaml'}): registered model airloop-delays" in text
    assert f"broken pipeline file {folder / 'broken.yaml'}: training.window_days: Input should be" in text
    assert "champion: unknown (the embedded MLflow server at http://127.0.0.1:" in text
    assert "is not running (airloop up)" in text
    assert "DAGs:     airloop_flights_training, airloop_flights_deploy, airloop_flights_monitoring" in text

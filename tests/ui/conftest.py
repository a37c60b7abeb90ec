"""Real-browser tests: Debian's Chromium driven by Playwright against the real embedded stack.

The stack and its clients are the integration tests' fixtures (imported, not copied). Without
Chromium or the `playwright` package these tests skip and say how to install them; in CI
(`CI=true`, as .ci/run runs) they fail instead, as the repository's other required tools do.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airloop.config import load_config
from airloop.data.replay import fill_landing_zone
from airloop.monitoring.paths import MonitoringPaths
from airloop.monitoring.traffic import flights_between, land_labels, send_traffic
from airloop.monitoring.window import MonitoringWindow
from tests.conftest import flights_file, unavailable

from ..integration.conftest import PASSWORD, airflow, landing_day, mlflow_client, stack, stack_settings

__all__ = ["PASSWORD", "airflow", "mlflow_client", "stack", "stack_settings"]

CHROMIUM = Path(os.environ.get("AIRLOOP_CHROMIUM", "/usr/bin/chromium"))
#: Headless, and nothing that reaches out to the internet (there is none here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TRAINING, MONITORING = "airloop_flights_training", "airloop_flights_monitoring"
TRAINED_ON = (dt.date(2026, 3, 1), dt.date(2026, 3, 8))  # [start, end): the champion's data
SERVED = MonitoringWindow(start=dt.datetime(2026, 3, 8, tzinfo=dt.UTC), end=dt.datetime(2026, 3, 9, tzinfo=dt.UTC))
CORRUPT = (dt.date(2026, 3, 9), dt.date(2026, 3, 16))  # a batch that fails validation: quarantined


def _missing(reason: str) -> None:
    """Skip, or fail in CI (CI=true), where the browser tests must run (.ci/browser.sh installs the browser)."""
    unavailable(reason)


@pytest.fixture(scope="package")  # closed after tests/ui: Playwright's sync API runs an event loop until then
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, at /usr/bin/chromium or AIRLOOP_CHROMIUM)."""
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM}: install Debian's with `apt-get install -y chromium` (.ci/browser.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed: `make install` installs the dev extra")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, stack: Any, stack_settings: Any) -> Iterator[Any]:
    """A fresh browser page (its own cookies), logged in to Airflow through its login page.

    Tall, so that a screenshot shows the whole Airloop page (it scrolls inside the UI's iframe).
    """
    context = browser.new_context(viewport={"width": 1440, "height": 2200}, base_url=stack_settings.airflow_url)
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        log_in(page, stack_settings.admin_user, PASSWORD)
        yield page
    finally:
        context.close()


def log_in(page: Any, username: str, password: str) -> None:
    """Fill in the Airflow UI's login form, as a person does, and wait for the UI to load."""
    page.goto("/")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.get_by_role("link", name="Airloop").first.wait_for()


@dataclass(frozen=True)
class ServedModel:
    """What the real run left behind: the champion, the monitored window, the quarantined batch."""

    model_name: str
    version: str
    training_run_id: str
    window: MonitoringWindow
    quarantined: str


@pytest.fixture(scope="session")
def served_model(stack_settings: Any, airflow: Any, mlflow_client: Any) -> ServedModel:
    """A real training run (champion deployed locally), a day of traffic with its labels and a
    monitoring run over it, and a corrupted batch that validation quarantines."""
    config = load_config(flights_file(stack_settings))
    fill_landing_zone(stack_settings.state.landing / "flights", TRAINED_ON[0], CORRUPT[1])
    run_id = _run(airflow, TRAINING, {"window_end": TRAINED_ON[1].isoformat(), "window_days": 7, "force_promote": True})
    champion = str(mlflow_client.get_model_version_by_alias(config.model_name, "champion").version)

    flights = flights_between(config, stack_settings.home, SERVED.start.date(), SERVED.end.date())
    sent = send_traffic(f"http://127.0.0.1:{stack_settings.serving_port}", flights, config)
    land_labels(MonitoringPaths(stack_settings, config).labels, sent, config, arrived=SERVED.end)
    airflow.unpause(MONITORING)
    _run(airflow, MONITORING, {"window_start": SERVED.start.isoformat(), "window_end": SERVED.end.isoformat()})

    _corrupt(landing_day(stack_settings, CORRUPT[0]))
    _run(airflow, TRAINING, {"window_end": CORRUPT[1].isoformat(), "window_days": 7}, expect="failed")
    return ServedModel(
        model_name=config.model_name,
        version=champion,
        training_run_id=run_id,
        window=SERVED,
        quarantined=f"{CORRUPT[0].isoformat()}_{CORRUPT[1].isoformat()}",
    )


def _run(airflow: Any, dag_id: str, conf: dict[str, Any], *, expect: str = "success") -> str:
    run = airflow.trigger(dag_id, logical_date=None, conf={"reason": "ui test", **conf})
    final = airflow.follow(dag_id, run["dag_run_id"], timeout=900)
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(dag_id, run["dag_run_id"])}
    failed = [task for task, state in states.items() if state == "failed"]
    why = airflow.task_log(dag_id, run["dag_run_id"], failed[0])[-2000:] if failed and expect != "failed" else ""
    assert final["state"] == expect, f"{dag_id} {run['dag_run_id']}: {states}\n{why}"
    return str(run["dag_run_id"])


def _corrupt(path: Path) -> None:
    day = pd.read_parquet(path)
    day.loc[day.index[:9], "distance"] = -40  # out of range: the suite refuses the batch
    day.to_parquet(path, index=False)


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """Where a test saves its screenshots: its tmp_path, copied to AIRLOOP_UI_SCREENSHOTS if set (CI artifacts)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    if keep := os.environ.get("AIRLOOP_UI_SCREENSHOTS"):
        _keep(folder, Path(keep) / request.node.name)


def _keep(folder: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for shot in folder.glob("*.png"):
        shutil.copy2(shot, target / shot.name)

"""The Airloop page rendered from a health summary: what a person sees, and where its links go."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from airloop.health.page import Links, render_message, render_page
from airloop.health.summary import (
    AirflowRun,
    LedgerRow,
    PipelineHealth,
    QuarantinedBatch,
    Serving,
    VersionSummary,
    WindowPoint,
)

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
LINKS = Links(airflow="", app="/airloop")
RUN = AirflowRun(dag_id="airloop_flights_training", run_id="manual__2026-03-08T00:00:00+00:00", state="success")


def _window(day: int, **fields) -> WindowPoint:
    start = T0 + dt.timedelta(days=day)
    return WindowPoint(id=f"w{day}", start=start, end=start + dt.timedelta(days=1), **fields)


def _health(**fields) -> PipelineHealth:
    base = {
        "pipeline": "flights",
        "model_name": "airloop-flights-delay",
        "metric": "roc_auc",
        "monitoring_metric": "roc_auc",
        "dags": {"training": "airloop_flights_training", "monitoring": "airloop_flights_monitoring"},
        "generated_at": T0,
        "drift_threshold": 0.3,
        "drift_raises": False,
    }
    return PipelineHealth(**{**base, **fields})


def _champion(version: str = "3") -> VersionSummary:
    return VersionSummary(
        version=version,
        aliases=["champion"],
        metric="roc_auc",
        score=0.7123,
        decision="promoted",
        decision_reason="beats champion by >= 0.001: roc_auc 0.7123 vs champion v2 0.7001",
        compared_with="2",
        champion_score=0.7001,
        training_run=RUN,
        mlflow_version_url="http://127.0.0.1:5000/#/models/airloop-flights-delay/versions/3",
    )


def test_the_champion_its_score_and_its_links():
    page = render_page([_health(champion=_champion())], links=LINKS)

    assert 'data-testid="champion"' in page
    assert 'data-version="3"' in page
    assert "0.7123" in page
    assert "champion v2 then" in page
    # The Airflow UI's own pages move its router (data-host-route); other sites open a tab.
    assert (
        '<a href="/dags/airloop_flights_training/runs/manual__2026-03-08T00%3A00%3A00%2B00%3A00" data-host-route'
        in page
    )
    assert (
        '<a href="http://127.0.0.1:5000/#/models/airloop-flights-delay/versions/3" target="_blank" rel="noopener">'
        in page
    )
    # Nothing is fetched from anywhere: no script, stylesheet, font or image from a URL.
    assert not re.search(r"<script[^>]+src|<link|<img|@import|url\(", page)


@pytest.mark.parametrize(
    ("answering", "shown"),
    [
        pytest.param("airloop-flights-delay v3", '<span class="good">airloop-flights-delay v3</span>', id="serves"),
        pytest.param("airloop-flights-delay v2", "not the champion v3", id="serves-another-version"),
        pytest.param(None, '<span class="bad">not answering</span>', id="down"),
    ],
)
def test_what_serves_where_and_whether_it_is_the_champion(answering, shown):
    serving = Serving(
        version="3",
        target="docker",
        endpoint="http://127.0.0.1:8000",
        image="airloop/serving:v3",
        since=T0,
        deployed_by=RUN,
        answering=answering,
    )
    page = render_page([_health(champion=_champion(), serving=serving)], links=LINKS)

    assert shown in page
    assert "airloop/serving:v3" in page
    assert "2026-03-01 00:00 UTC" in page


def test_charts_plot_each_window_that_has_a_value():
    windows = [
        _window(0, note="no traffic in this window"),
        _window(1, drift_share=0.1, performance=0.69, estimated=0.7, validation_score=0.71, model_version="3"),
        _window(2, drift_share=0.55, estimated=0.68, validation_score=0.71, model_version="3", reports=["drift"]),
    ]
    page = render_page([_health(windows=windows)], links=LINKS)

    drift = re.search(r'<svg[^>]*data-chart="drift".*?</svg>', page, re.S)
    performance = re.search(r'<svg[^>]*data-chart="performance".*?</svg>', page, re.S)
    assert drift is not None
    assert performance is not None
    assert re.findall(r'data-window="(w\d)" data-value="([\d.]+)"', drift.group()) == [
        ("w1", "0.100000"),
        ("w2", "0.550000"),
    ]
    labelled = re.search(r'<g data-series="labelled">.*?</g>', performance.group(), re.S)
    assert labelled is not None
    assert re.findall(r'data-window="(w\d)"', labelled.group()) == ["w1"]
    assert "would raise (drift.raises off)" in drift.group()
    assert '<a href="/airloop/pipelines/flights/windows/w2/drift" target="_blank"' in page


def test_a_regression_s_error_is_charted_on_its_own_scale_against_a_ceiling():
    windows = [
        _window(1, performance=46.2, validation_score=47.7, model_version="1"),
        _window(2, performance=52.9, validation_score=47.7, model_version="1"),
    ]
    page = render_page([_health(windows=windows, monitoring_metric="rmse")], links=LINKS)

    performance = re.search(r'<svg[^>]*data-chart="performance".*?</svg>', page, re.S)
    assert performance is not None
    assert "RMSE: labelled, against the ceiling" in page  # no estimate: that is a binary model's
    assert "<th>ceiling</th>" in page
    ticks = [float(t) for t in re.findall(r'class="axis" text-anchor="end">([\d.]+)<', performance.group())]
    assert min(ticks) > 40  # minutes late, not a score between 0 and 1
    assert max(ticks) < 60
    assert len(ticks) >= 3


def test_no_window_yet_says_so():
    page = render_page([_health()], links=LINKS)
    assert "No window monitored yet" in page
    assert "<svg" not in page


def test_ledger_and_quarantine_rows_escape_what_they_quote():
    ledger = [
        LedgerRow(
            at=T0,
            action="suppress",
            kind="concept_shift",
            model_version="3",
            reason="duplicate: <carrier=EV> already retrained on",
        )
    ]
    batch = QuarantinedBatch(
        snapshot_id="2026-03-15_2026-03-22",
        pipeline="flights",
        rows=6000,
        evaluated=30,
        failed=["expect_x(carrier)"],
        has_report=True,
        blocked_run=AirflowRun(dag_id="airloop_flights_training", run_id="manual__3"),
        attempts=1,
    )
    page = render_page([_health(retraining=ledger, quarantined=[batch])], links=LINKS)

    assert "duplicate: &lt;carrier=EV&gt; already retrained on" in page
    assert "<carrier=EV>" not in page
    assert "1 of 30" in page
    assert '/airloop/pipelines/flights/quarantine/2026-03-15_2026-03-22"' in page
    assert "/dags/airloop_flights_training/runs/manual__3" in page  # the run it blocked
    assert "airloop quarantine --pipeline flights readmit 2026-03-15_2026-03-22 --why" in page
    assert "(1 failed attempt)" in page


def test_a_message_page_links_to_the_login():
    page = render_message("Airloop", "Not authenticated", link=("Log in to Airflow", "/auth/login?next=x"))
    assert "Not authenticated" in page
    assert '<a href="/auth/login?next=x" target="_top">Log in to Airflow</a>' in page

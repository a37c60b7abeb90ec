"""Serving health between two scrapes of the serving app's own `/metrics` exposition."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import generate_latest

from airloop.config import ServingHealthBudget
from airloop.monitoring.serving_health import ScrapeLog, health_between, parse_metrics
from airloop.serving.app import _Metrics

T0 = dt.datetime(2026, 12, 1, 3, tzinfo=dt.UTC)
ENDPOINT = "http://127.0.0.1:8000"


def _serve(metrics: _Metrics, *, status: int, seconds: float, times: int) -> None:
    for _ in range(times):
        metrics.requests.labels(str(status)).inc()
        metrics.latency.labels(str(status)).observe(seconds)


def _scrape(metrics: _Metrics, at: dt.datetime, endpoint: str = ENDPOINT):
    return parse_metrics(generate_latest(metrics.registry).decode(), endpoint=endpoint, scraped_at=at)


def test_health_is_what_happened_between_two_scrapes():
    metrics = _Metrics()
    _serve(metrics, status=200, seconds=0.2, times=100)  # before the last check: not this window's
    first = _scrape(metrics, T0)
    _serve(metrics, status=200, seconds=0.003, times=98)
    _serve(metrics, status=200, seconds=0.04, times=2)
    _serve(metrics, status=422, seconds=0.001, times=5)
    _serve(metrics, status=500, seconds=0.001, times=1)
    health = health_between(first, _scrape(metrics, T0 + dt.timedelta(days=1)), ServingHealthBudget())
    assert (health.requests, health.server_errors, health.client_errors) == (106, 1, 5)
    assert health.since == T0
    assert health.error_rate == pytest.approx(1 / 106)
    assert 2.5 <= health.p50_ms <= 5  # within the 2.5-5 ms bucket, as Prometheus' histogram_quantile
    assert 25 <= health.p99_ms <= 50
    assert health.breaches == []


@pytest.mark.parametrize(
    ("budget", "breached"),
    [
        pytest.param({"p50_ms": 1}, ["p50 latency"], id="slow-median"),
        pytest.param({"p99_ms": 10}, ["p99 latency"], id="slow-tail"),
        pytest.param({"max_error_rate": 0.0}, ["5xx rate"], id="errors"),
        pytest.param({"min_requests": 1000}, [], id="too-few-requests-no-verdict"),
    ],
)
def test_budget_breaches(budget, breached):
    metrics = _Metrics()
    _serve(metrics, status=200, seconds=0.003, times=90)
    _serve(metrics, status=200, seconds=0.04, times=9)
    _serve(metrics, status=503, seconds=0.001, times=1)
    health = health_between(None, _scrape(metrics, T0), ServingHealthBudget(**budget))
    assert [b.split(" ")[0] + (" latency" if "latency" in b else " rate") for b in health.breaches] == breached


def test_a_restarted_server_counts_from_zero():
    before = _Metrics()
    _serve(before, status=200, seconds=0.003, times=500)
    restarted = _Metrics()
    _serve(restarted, status=200, seconds=0.003, times=30)
    health = health_between(_scrape(before, T0), _scrape(restarted, T0 + dt.timedelta(hours=1)), ServingHealthBudget())
    assert health.requests == 30
    assert health.since is None


def test_another_endpoint_is_not_compared_with_the_last_one():
    metrics = _Metrics()
    _serve(metrics, status=200, seconds=0.003, times=30)
    elsewhere = _scrape(metrics, T0, endpoint="http://serving:8000")
    _serve(metrics, status=200, seconds=0.003, times=30)
    assert health_between(elsewhere, _scrape(metrics, T0 + dt.timedelta(hours=1)), ServingHealthBudget()).requests == 60


def test_a_rerun_of_a_window_is_measured_from_the_window_before(tmp_path):
    log = ScrapeLog(tmp_path / "serving" / "model.jsonl")
    assert log.before("d1") is None
    metrics = _Metrics()
    log.record(_scrape(metrics, T0).model_copy(update={"window_id": "d1"}))
    _serve(metrics, status=200, seconds=0.003, times=3)
    log.record(_scrape(metrics, T0 + dt.timedelta(days=1)).model_copy(update={"window_id": "d2"}))
    _serve(metrics, status=200, seconds=0.003, times=4)
    log.record(_scrape(metrics, T0 + dt.timedelta(days=1, hours=1)).model_copy(update={"window_id": "d2"}))
    assert [c.window_id for c in log.entries()] == ["d1", "d2"]
    assert log.before("d2").requests == {}
    assert log.before("d3").requests == {"200": 7.0}

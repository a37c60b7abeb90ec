"""Serving health: the endpoint's latency and error rate between two scrapes of its `/metrics`.

The serving app exports Prometheus counters (`airloop_serving_requests` by status and the
`airloop_serving_request_seconds` histogram). They only grow, so a window's health is the
difference between this run's scrape and the previous one; a restarted server starts again from
zero, which is read as Prometheus reads a counter reset (the new counts are the window's). Health
is compared with the budget in `monitoring.serving_health` and alerted; it never retrains: a slow
endpoint is an operations problem, not a model one.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path

import httpx
from pydantic import BaseModel, Field

from airloop.config import PipelineConfig, ServingHealthBudget
from airloop.monitoring.window import MonitoringWindow
from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)

REQUESTS = "airloop_serving_requests"
LATENCY = "airloop_serving_request_seconds"


class ServingCounters(BaseModel):
    """One scrape of the endpoint's counters: requests by HTTP status, latency buckets of the answered ones."""

    endpoint: str
    scraped_at: dt.datetime
    window_id: str = ""  # the monitoring window it was scraped for: a rerun replaces its own scrape
    requests: dict[str, float] = Field(default_factory=dict)  # status -> requests since the server started
    buckets: dict[str, float] = Field(default_factory=dict)  # upper bound (seconds, "+Inf") -> cumulative 2xx count


class ServingHealth(BaseModel):
    """The endpoint between two scrapes, against the budget."""

    endpoint: str
    since: dt.datetime | None = None
    until: dt.datetime
    reachable: bool = True
    problem: str | None = None
    requests: int = 0
    server_errors: int = 0  # answered 5xx
    client_errors: int = 0  # answered 4xx: the callers' payloads, not the endpoint's health
    error_rate: float | None = None  # 5xx share of all requests
    p50_ms: float | None = None  # of the answered (2xx) scoring requests
    p99_ms: float | None = None
    breaches: list[str] = Field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.reachable:
            return f"{self.endpoint} unreachable: {self.problem}"
        if self.p50_ms is None:
            return f"{self.endpoint}: {self.requests} requests since the last check (too few for a verdict)"
        return (
            f"{self.endpoint}: {self.requests} requests, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"5xx {self.error_rate:.2%}"
        )


def parse_metrics(text: str, *, endpoint: str, scraped_at: dt.datetime) -> ServingCounters:
    """The serving counters in a Prometheus text exposition (other metrics are ignored)."""
    from prometheus_client.parser import text_string_to_metric_families

    counters = ServingCounters(endpoint=endpoint, scraped_at=scraped_at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            status = sample.labels.get("status", "")
            if sample.name == f"{REQUESTS}_total":
                counters.requests[status] = counters.requests.get(status, 0.0) + sample.value
            elif sample.name == f"{LATENCY}_bucket" and status.startswith("2"):
                bound = sample.labels["le"]
                counters.buckets[bound] = counters.buckets.get(bound, 0.0) + sample.value
    return counters


def scrape(endpoint: str, *, now: dt.datetime, timeout: float = 10.0) -> ServingCounters:
    """GET `<endpoint>/metrics`; raises `httpx.HTTPError` when it does not answer."""
    response = httpx.get(f"{endpoint.rstrip('/')}/metrics", timeout=timeout)
    response.raise_for_status()
    return parse_metrics(response.text, endpoint=endpoint, scraped_at=now)


def health_between(
    previous: ServingCounters | None, current: ServingCounters, budget: ServingHealthBudget
) -> ServingHealth:
    """What the endpoint did between `previous` and `current`, and which budgets it broke."""
    reset = (
        previous is None
        or previous.endpoint != current.endpoint
        or _total(current.requests) < _total(previous.requests)  # the server restarted
    )
    base = ServingCounters(endpoint=current.endpoint, scraped_at=current.scraped_at)
    if previous is not None and not reset:
        base = previous
    requests = {s: n - base.requests.get(s, 0.0) for s, n in current.requests.items()}
    buckets = {b: n - base.buckets.get(b, 0.0) for b, n in current.buckets.items()}
    total = round(_total(requests))
    health = ServingHealth(
        endpoint=current.endpoint,
        since=None if previous is None or reset else previous.scraped_at,
        until=current.scraped_at,
        requests=total,
        server_errors=round(sum(n for s, n in requests.items() if s.startswith("5"))),
        client_errors=round(sum(n for s, n in requests.items() if s.startswith("4"))),
    )
    if total < budget.min_requests:
        return health
    health.error_rate = health.server_errors / total
    health.p50_ms = _quantile(buckets, 0.50)
    health.p99_ms = _quantile(buckets, 0.99)
    if health.error_rate > budget.max_error_rate:
        health.breaches.append(f"5xx rate {health.error_rate:.2%} above {budget.max_error_rate:.2%}")
    for name, value, limit in (("p50", health.p50_ms, budget.p50_ms), ("p99", health.p99_ms, budget.p99_ms)):
        if value is not None and value > limit:
            health.breaches.append(f"{name} latency {value:.1f} ms above {limit:g} ms")
    return health


def unreachable(endpoint: str, problem: str, *, now: dt.datetime) -> ServingHealth:
    """The endpoint did not answer its `/metrics`: a breach in itself."""
    return ServingHealth(
        endpoint=endpoint, until=now, reachable=False, problem=problem, breaches=[f"unreachable: {problem}"]
    )


def _total(requests: dict[str, float]) -> float:
    return sum(requests.values())


def _quantile(buckets: dict[str, float], q: float) -> float | None:
    """`histogram_quantile` as Prometheus computes it (linear within a bucket), in milliseconds."""
    bounds = sorted(((math.inf if b == "+Inf" else float(b)), n) for b, n in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if math.isinf(upper):  # in the open bucket: the last finite bound is all that is known
                return lower * 1000
            inside = count - below
            share = (rank - below) / inside if inside > 0 else 1.0
            return (lower + (upper - lower) * share) * 1000
        lower, below = upper, count
    return lower * 1000


class ScrapeLog:
    """The scrapes of one pipeline's endpoint, one JSON line each, one per monitoring window."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[ServingCounters]:
        if not self.path.exists():
            return []
        return [ServingCounters.model_validate_json(line) for line in self.path.read_text().splitlines() if line]

    def before(self, window_id: str) -> ServingCounters | None:
        """The last scrape of another window: what this window's counts are the difference from."""
        earlier = [c for c in self.entries() if c.window_id != window_id]
        return earlier[-1] if earlier else None

    def record(self, counters: ServingCounters) -> None:
        """Keep `counters` as its window's scrape (a rerun of the window replaces the earlier one)."""
        kept = [c for c in self.entries() if c.window_id != counters.window_id or not counters.window_id]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text("".join(c.model_dump_json() + "\n" for c in [*kept, counters]))
        partial.replace(self.path)


def check_serving(
    settings: AirloopSettings, config: PipelineConfig, window: MonitoringWindow, *, now: dt.datetime
) -> ServingHealth | None:
    """Scrape the champion's endpoint for `window`, record its health beside the window; None if nothing serves."""
    from airloop.monitoring.paths import MonitoringPaths

    endpoint = champion_endpoint(settings, config)
    if endpoint is None:
        log.info("no champion of %s: no endpoint to check", config.model_name)
        return None
    paths = MonitoringPaths(settings, config)
    scrapes = ScrapeLog(paths.serving_scrapes)
    try:
        current = scrape(endpoint, now=now).model_copy(update={"window_id": window.id})
    except httpx.HTTPError as err:
        health = unreachable(endpoint, f"{type(err).__name__}: {err}", now=now)
    else:
        health = health_between(scrapes.before(window.id), current, config.monitoring.serving_health)
        scrapes.record(current)
    target = paths.serving_health(window)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(health.model_dump_json(indent=2))
    log.info("serving health for window %s: %s", window.id, health.summary)
    return health


def champion_endpoint(settings: AirloopSettings, config: PipelineConfig) -> str | None:
    """Where the champion serves (its `deploy.endpoint` tag), else the stable local endpoint; None if no champion."""
    from mlflow.exceptions import MlflowException

    from airloop.registry.versions import DEPLOY_ENDPOINT, ModelRegistry

    registry = ModelRegistry(config.model_name, tracking_uri=settings.tracking_uri)
    try:
        champion = registry.champion()
        endpoint = registry.tags(champion).get(DEPLOY_ENDPOINT) if champion else None
    except MlflowException:
        return None
    if champion is None:
        return None
    from airloop.pipelines import serving_port

    return endpoint or f"http://{settings.host}:{serving_port(config, settings.serving_port)}"

"""What a version must show in the candidate slot before it takes traffic.

Health first (each target waits for it: :func:`wait_healthy`), then the contract of
:func:`check_servable`: the input example predicts, the signature is honoured (a missing
column and a wrongly typed one get 422), the bearer token is required when one is set, and
the input example's answers stay within the latency budget over a few hundred requests.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from airloop.deploy import NotServableError
from airloop.serving import CHECK_REQUEST_PREFIX

NUMERIC_TYPES = {"double", "float", "long", "integer"}


@dataclass(frozen=True)
class ServingCheck:
    """The contract test's settings (`promotion.servability` in the config) and the serving token."""

    requests: int = 200
    p95_latency_ms: float = 500.0
    token: str | None = None

    def headers(self) -> dict[str, str]:
        """Headers of a scoring request, with the bearer token when serving requires one.

        Its request id says it is a check (`airloop-check-...`): serving answers it and leaves it out of
        the inference log, so monitoring never mistakes the checks' repeated example for traffic.
        """
        headers = {"Content-Type": "application/json", "X-Request-ID": f"{CHECK_REQUEST_PREFIX}{uuid.uuid4().hex}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


def wait_healthy(base_url: str, *, timeout: float, alive: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Poll `GET /health` until it answers 200; `alive()` false means the instance died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise NotServableError(f"the new instance exited before it was healthy (last health answer: {last})")
        try:
            response = httpx.get(f"{base_url}/health", timeout=5)
            if response.status_code == 200:
                return dict(response.json())
            last = f"HTTP {response.status_code} {response.text[:300]}"
            if _gave_up(response):
                raise NotServableError(f"the new instance cannot become healthy: {last}")
        except httpx.HTTPError as err:
            last = f"{type(err).__name__}: {err}"
        time.sleep(1)
    raise NotServableError(f"the new instance was not healthy within {timeout:.0f}s: {last}")


def _gave_up(response: httpx.Response) -> bool:
    """A 503 whose reason is final: the model failed to load or warm up (not "loading" any more)."""
    try:
        reason = response.json().get("reason") if response.status_code == 503 else None
    except ValueError:
        return False
    return isinstance(reason, str) and reason != "loading"


def check_servable(base_url: str, model_dir: Path, check: ServingCheck) -> None:
    """Run the contract test against a healthy instance; NotServableError says which part failed."""
    example = json.loads((Path(model_dir) / "serving_input_example.json").read_text())
    split = example["dataframe_split"]
    with httpx.Client(base_url=base_url, timeout=30) as client:
        _example_predicts(client, example, check)
        _signature_is_honoured(client, split, _signature(Path(model_dir)), check)
        if check.token:
            anonymous = {k: v for k, v in check.headers().items() if k != "Authorization"}
            answer = client.post("/invocations", content=json.dumps(example).encode(), headers=anonymous)
            if answer.status_code != 401:
                raise NotServableError(f"contract: a request without the bearer token got HTTP {answer.status_code}")
        one_row = {"dataframe_split": {"columns": split["columns"], "data": split["data"][:1]}}
        _within_latency_budget(client, json.dumps(one_row).encode(), check)


def _example_predicts(client: httpx.Client, example: dict[str, Any], check: ServingCheck) -> None:
    rows = len(example["dataframe_split"]["data"])
    answer = client.post("/invocations", content=json.dumps(example).encode(), headers=check.headers())
    predictions = answer.json().get("predictions") if answer.status_code == 200 else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise NotServableError(f"smoke test: the input example got HTTP {answer.status_code} {answer.text[:300]}")


def _signature(model_dir: Path) -> dict[str, str]:
    """Input column -> MLflow type, from the model's signature."""
    import yaml

    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    inputs = json.loads((mlmodel.get("signature") or {}).get("inputs") or "[]")
    return {c["name"]: c["type"] for c in inputs}


def _signature_is_honoured(
    client: httpx.Client, split: dict[str, Any], signature: dict[str, str], check: ServingCheck
) -> None:
    columns = split["columns"]
    missing = {"dataframe_split": {"columns": columns[1:], "data": [r[1:] for r in split["data"]]}}
    answer = client.post("/invocations", content=json.dumps(missing).encode(), headers=check.headers())
    if answer.status_code != 422:
        raise NotServableError(
            f"contract: a payload without column {columns[0]!r} got HTTP {answer.status_code}, expected 422"
        )
    numeric = next((i for i, c in enumerate(columns) if signature.get(c) in NUMERIC_TYPES), None)
    if numeric is None:
        return
    data = [[*r[:numeric], "not a number", *r[numeric + 1 :]] for r in split["data"]]
    mistyped = {"dataframe_split": {"columns": columns, "data": data}}
    answer = client.post("/invocations", content=json.dumps(mistyped).encode(), headers=check.headers())
    if answer.status_code != 422:
        raise NotServableError(
            f"contract: a string in numeric column {columns[numeric]!r} got HTTP {answer.status_code}, expected 422"
        )


def _within_latency_budget(client: httpx.Client, body: bytes, check: ServingCheck) -> None:
    if check.requests <= 0:
        return
    latencies = []
    for _ in range(check.requests):
        started = time.perf_counter()
        answer = client.post("/invocations", content=body, headers=check.headers())
        latencies.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise NotServableError(f"latency test: a request of one input example row got HTTP {answer.status_code}")
    p95 = percentile(latencies, 95)
    if p95 > check.p95_latency_ms:
        raise NotServableError(
            f"latency: p95 {p95:.1f} ms over {check.requests} requests of one input example row is over the "
            f"budget of {check.p95_latency_ms:g} ms (promotion.servability.p95_latency_ms)"
        )


def percentile(values: list[float], q: float) -> float:
    """The `q`th percentile by nearest rank: a latency some request really had."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def serving_version(base_url: str) -> str | None:
    """The version `GET /version` names, or None when nothing healthy answers."""
    try:
        response = httpx.get(f"{base_url}/version", timeout=5)
    except httpx.HTTPError:
        return None
    return str(response.json().get("version")) if response.status_code == 200 else None


def serving_model(base_url: str) -> tuple[str, str] | None:
    """(name, version) that `GET /version` names, or None when nothing healthy answers."""
    try:
        response = httpx.get(f"{base_url}/version", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body = response.json()
    return str(body.get("name")), str(body.get("version"))

"""Gates a new serving instance must pass before it takes traffic: health, then a smoke test."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from airloop.deploy import DeploymentError


def wait_healthy(base_url: str, *, timeout: float, alive: Any = None) -> dict[str, Any]:
    """Poll `GET /health` until it answers 200; `alive()` false means the instance died."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise DeploymentError(f"the new instance exited before it was healthy (last health answer: {last})")
        try:
            response = httpx.get(f"{base_url}/health", timeout=5)
            if response.status_code == 200:
                return response.json()
            last = f"HTTP {response.status_code} {response.text[:300]}"
        except httpx.HTTPError as err:
            last = f"{type(err).__name__}: {err}"
        time.sleep(1)
    raise DeploymentError(f"the new instance was not healthy within {timeout:.0f}s: {last}")


def smoke_test(base_url: str, model_dir: Path) -> None:
    """The model's input example must predict; a payload missing a column must get 422."""
    example = json.loads((Path(model_dir) / "serving_input_example.json").read_text())
    rows = len(example["dataframe_split"]["data"])
    body = json.dumps(example).encode()
    response = httpx.post(
        f"{base_url}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    predictions = response.json().get("predictions") if response.status_code == 200 else None
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise DeploymentError(f"smoke test: the input example got HTTP {response.status_code} {response.text[:300]}")
    split = example["dataframe_split"]
    invalid = {"dataframe_split": {"columns": split["columns"][1:], "data": [r[1:] for r in split["data"]]}}
    response = httpx.post(
        f"{base_url}/invocations",
        content=json.dumps(invalid).encode(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    if response.status_code != 422:
        raise DeploymentError(
            f"smoke test: a payload without column {split['columns'][0]!r} got HTTP "
            f"{response.status_code}, expected 422"
        )


def serving_version(base_url: str) -> str | None:
    try:
        response = httpx.get(f"{base_url}/version", timeout=5)
    except httpx.HTTPError:
        return None
    return str(response.json().get("version")) if response.status_code == 200 else None

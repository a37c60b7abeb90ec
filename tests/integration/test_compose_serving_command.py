"""The `serving` service's command from docker-compose.yaml, run for real outside a container.

The command (`python -m airloop.serving`, following the `champion` alias) runs with this
interpreter and the environment compose gives it, against a registry holding a promoted flights
model: it must wait while there is no champion, then load the champion and serve it with the
token required and predictions in the inference log. How it follows later promotions is
tests/unit/deploy/test_serving_follows_alias.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from airloop.registry.promotion import PromotionDecision
from airloop.serving.inference_log import count_logged_rows
from airloop.settings import PROJECT_ROOT
from tests.conftest import free_port, sqlite_champion

pytestmark = pytest.mark.integration

TOKEN = "compose-serving-test-token"


def serving_service() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())["services"]["serving"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, landing_home) -> tuple[Path, str, PromotionDecision]:
    """A SQLite MLflow store with the flights model trained on a week and promoted to champion."""
    root = tmp_path_factory.mktemp("compose-serving")
    settings, decision = sqlite_champion(root, landing_home, max_iter=50, run_id="compose")
    return root, settings.tracking_uri, decision


def start_serving(root: Path, tracking: str, model_name: str, port: int) -> subprocess.Popen[str]:
    service = serving_service()
    assert service["command"] == ["python", "-m", "airloop.serving"]
    compose_env = service["environment"]
    assert compose_env["AIRLOOP_SERVING_FOLLOW"] == "models:/${AIRLOOP_MODEL_NAME:-airloop-flights-delay}@champion"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        "AIRLOOP_SERVING_FOLLOW": f"models:/{model_name}@champion",
        "AIRLOOP_SERVING_FOLLOW_POLL_SECONDS": "1",
        "AIRLOOP_SERVING_MODEL_DIR": str(root / f"serving-{port}"),
        "AIRLOOP_SERVING_HOST": "127.0.0.1",
        "AIRLOOP_SERVING_PORT": str(port),
        "AIRLOOP_SERVING_INFERENCE_LOG_DIR": str(root / f"inference-{port}"),
        "AIRLOOP_SERVING_TOKEN": TOKEN,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "airloop.serving"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_healthy(process: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serving exited: {process.stdout.read() if process.stdout else ''}"
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail("the serving command did not become healthy in 180 s")


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_serving_waits_while_there_is_no_champion(registry, stopped):
    root, tracking, _ = registry
    port = free_port()
    process = start_serving(root, tracking, "no-such-model", port)
    stopped.append(process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited instead of waiting for a champion"
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        pytest.fail("the serving command never answered")
    assert health.status_code == 503
    assert "waiting for models:/no-such-model@champion" in health.json()["reason"]
    time.sleep(2)  # a few more polls: still waiting, still up
    assert process.poll() is None, "the service exited instead of waiting for a champion"


def test_serving_loads_the_champion_and_serves_it_with_the_token(registry, stopped):
    root, tracking, decision = registry
    port = free_port()
    process = start_serving(root, tracking, decision.model_name, port)
    stopped.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(process, base)

    version = httpx.get(f"{base}/version", timeout=5).json()
    assert version["name"] == decision.model_name
    assert version["version"] == decision.version
    assert version["alias"] == "champion"
    assert version["follow"] == {"follows": f"models:/{decision.model_name}@champion", "rejected": {}}
    model_dir = root / f"serving-{port}" / f"v{decision.version}"
    # The model's own input example, sent as it is stored (it may hold NaN, as Python clients send).
    body = (model_dir / "serving_input_example.json").read_bytes()
    example = json.loads(body)
    json_type = {"Content-Type": "application/json"}
    assert httpx.post(f"{base}/invocations", content=body, headers=json_type, timeout=10).status_code == 401
    answer = httpx.post(
        f"{base}/invocations", content=body, headers={**json_type, "Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    rows = len(example["dataframe_split"]["data"])
    assert len(answer.json()["predictions"]) == rows
    assert count_logged_rows(root / f"inference-{port}") == rows

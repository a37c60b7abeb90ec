"""The `serving` service's command from docker-compose.yaml, run for real outside a container.

No image can be built here, so the command (the Python script compose hands the image) runs with
this interpreter and the environment compose would give it, against a registry holding a
promoted flights model: it must wait while there is no champion, then load the champion and
serve it with the token required and predictions in the inference log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from airloop.registry.promotion import PromotionDecision
from airloop.settings import PROJECT_ROOT
from tests.conftest import free_port, sqlite_champion

pytestmark = pytest.mark.integration

TOKEN = "compose-serving-test-token"


def serving_script() -> str:
    command = yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())["services"]["serving"]["command"]
    assert command[:2] == ["python", "-c"]
    return command[2]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, landing_home) -> tuple[Path, str, PromotionDecision]:
    """A SQLite MLflow store with the flights model trained on a week and promoted to champion."""
    root = tmp_path_factory.mktemp("compose-serving")
    settings, decision = sqlite_champion(root, landing_home, max_iter=50, run_id="compose")
    return root, settings.tracking_uri, decision


def start_serving(root: Path, tracking: str, model_name: str, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        "AIRLOOP_MODEL_NAME": model_name,
        "AIRLOOP_SERVING_MODEL_DIR": str(root / f"serving-{port}" / "champion"),
        "AIRLOOP_SERVING_HOST": "127.0.0.1",
        "AIRLOOP_SERVING_PORT": str(port),
        "AIRLOOP_SERVING_INFERENCE_LOG_DIR": str(root / f"inference-{port}"),
        "AIRLOOP_SERVING_TOKEN": TOKEN,
    }
    return subprocess.Popen(
        [sys.executable, "-c", serving_script()],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


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
    process = start_serving(root, tracking, "no-such-model", free_port())
    stopped.append(process)
    assert process.stdout is not None
    first_line = process.stdout.readline()
    assert "cannot load models:/no-such-model@champion yet" in first_line
    assert "retrying in 30 s" in first_line
    assert process.poll() is None, "the service exited instead of waiting for a champion"


def test_serving_loads_the_champion_and_serves_it_with_the_token(registry, stopped):
    root, tracking, decision = registry
    port = free_port()
    process = start_serving(root, tracking, decision.model_name, port)
    stopped.append(process)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"serving exited: {process.stdout.read() if process.stdout else ''}"
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        pytest.fail("the serving command did not become healthy in 180 s")

    version = httpx.get(f"{base}/version", timeout=5).json()
    assert version["name"] == decision.model_name
    assert version["version"] == decision.version
    model_dir = root / f"serving-{port}" / "champion"
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
    logged = [line for path in (root / f"inference-{port}").rglob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(logged) == rows

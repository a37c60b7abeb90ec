"""Blue/green deployment on a real Docker engine, through the `airloop_flights_deploy` DAG and the gate.

Deploy version A, then version B (A stops, B answers on the stable port and is `champion`),
then a deliberately broken version (it fails its health check in the candidate slot): B keeps
answering throughout, with no failed request, stays `champion`, the broken version is tagged
not servable, and the task fails with the reason. Then the same with the serving token on, and
a challenger in the shadow slot scoring a copy of each request inside the container.
Needs a Docker engine and a base image that builds offline here: `.ci/run` provides both
(`.ci/docker-engine.sh`, `include/docker/build-base-image.sh`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import httpx
import pytest

from airloop.deploy.docker import DockerDeployer, DockerSettings
from airloop.deploy.local import LocalDeployer
from airloop.deploy.service import docker_engine
from tests.conftest import flights, flights_file, register_unfitted, unavailable

#: The most lines a task's log may have (issue 13), an image build included.
MAX_LOG_LINES = 60

pytestmark = pytest.mark.integration

DAG = "airloop_flights_deploy"
MODEL = "airloop-flights-delay"


@pytest.fixture(scope="module")
def engine(stack_settings):
    api = docker_engine()
    if api is None:
        unavailable("no Docker engine answers (run .ci/docker-engine.sh)")
    if stack_settings.base_image == "python:3.11-slim-bookworm":
        try:
            api.inspect_image(stack_settings.base_image)
        except Exception:  # noqa: BLE001
            pytest.skip(
                "no base image: set AIRLOOP_BASE_IMAGE=airloop/base:bookworm (include/docker/build-base-image.sh)"
            )
    # The local serving process of the training tests holds the stable port: Docker takes over.
    LocalDeployer(stack_settings.home, stack_settings.serving_port).stop()
    yield api
    DockerDeployer(api, DockerSettings(home=stack_settings.home, stable_port=stack_settings.serving_port)).remove_all()
    for image in api.images(name=f"airloop/{MODEL}"):
        api.remove_image(image["Id"], force=True)


class Watcher(threading.Thread):
    """Asks the stable endpoint for its version, over and over, and counts what fails."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.stop, self.versions, self.failures = endpoint, threading.Event(), [], []

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(f"{self.endpoint}/version")
                    if response.status_code == 200:
                        self.versions.append(response.json()["version"])
                    else:
                        self.failures.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as err:
                    self.failures.append(repr(err))
                time.sleep(0.05)


@pytest.fixture(scope="module")
def two_versions(stack_settings, mlflow_client) -> tuple[str, str]:
    """The two oldest versions of the flights model. After the training tests they are theirs;
    run alone, this file trains them here (in process, against the stack's MLflow server)."""
    from airloop import pipeline
    from airloop.data.replay import fill_landing_zone
    from airloop.lineage import Lineage

    def registered() -> list[int]:
        return sorted(int(v.version) for v in mlflow_client.search_model_versions(f"name = '{MODEL}'"))

    missing, day = 2 - len(registered()), dt.date(2026, 3, 8)
    if missing > 0:
        fill_landing_zone(stack_settings.state.landing / "flights", day - dt.timedelta(days=7), day)
    options = pipeline.RunOptions(window_days=7, model={"max_iter": 20}, force_promote=True)
    for n in range(missing):  # a training run of its own each: a run's second call is reused, not retrained
        pipeline.run_in_process(stack_settings, flights(stack_settings), options, day, Lineage(run_id=f"test_2-{n}"))
    first, second = registered()[:2]
    return str(first), str(second)


def _deploy(airflow, version: str):
    run = airflow.trigger(
        DAG, logical_date=None, conf={"version": version, "target": "docker", "reason": "docker integration test"}
    )
    final = airflow.follow(DAG, run["dag_run_id"], timeout=900)
    return run["dag_run_id"], final["state"]


def _register_broken_version(stack_settings, mlflow_client, tmp_path) -> str:
    """A version whose pipeline was never fitted: it loads, but its warm-up prediction fails."""
    champion = mlflow_client.get_model_version_by_alias(MODEL, "champion")
    return register_unfitted(
        flights_file(stack_settings), stack_settings.tracking_uri, MODEL, champion.version, tmp_path
    )


def test_blue_green_deploy_and_automatic_rollback(  # noqa: PLR0917 - pytest fixtures
    stack_settings, airflow, mlflow_client, engine, tmp_path, two_versions
):
    first, second = two_versions
    endpoint = f"http://127.0.0.1:{stack_settings.serving_port}"

    run_id, state = _deploy(airflow, first)
    log = airflow.task_log(DAG, run_id, "deploy")
    assert state == "success", log
    # The image build shows its steps as progress, and its pip and apt output only on failure.
    assert "docker build: Step 1/" in log
    assert len(log.splitlines()) <= MAX_LOG_LINES, log
    assert httpx.get(f"{endpoint}/version").json()["version"] == first
    assert str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version) == first

    watcher = Watcher(endpoint)
    watcher.start()
    run_id, state = _deploy(airflow, second)
    assert state == "success", airflow.task_log(DAG, run_id, "deploy")
    deployed = airflow.xcom(DAG, run_id, "deploy")
    assert (deployed["target"], deployed["version"], deployed["previous_version"]) == ("docker", second, first)
    assert deployed["image"] == f"airloop/{MODEL}:v{second}"
    serving = engine.containers(filters={"label": f"ai.airloop.stable_port={stack_settings.serving_port}"})
    assert [c["Labels"]["ai.airloop.model.version"] for c in serving] == [second]  # the first one stopped
    tags = mlflow_client.get_model_version(MODEL, second).tags
    assert tags["airloop.deploy.target"] == "docker"
    assert tags["airloop.deploy.image_id"].startswith("sha256:")
    assert tags["airloop.servable"] == "true"
    assert str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version) == second
    image = engine.inspect_image(deployed["image"])
    assert image["Config"]["User"] == "10001"
    assert image["Config"]["Labels"]["org.opencontainers.image.revision"]
    assert image["Config"]["Healthcheck"]["Test"]

    broken = _register_broken_version(stack_settings, mlflow_client, tmp_path)
    run_id, state = _deploy(airflow, broken)
    watcher.stop.set()
    watcher.join()
    assert state == "failed"
    log = airflow.task_log(DAG, run_id, "deploy")
    assert f"version {broken} is not servable on docker" in log
    assert "cannot become healthy" in log
    assert "NotFittedError" in log
    assert f"version {second} keeps serving" in log
    assert f"champion stays version {second}" in log
    broken_tags = mlflow_client.get_model_version(MODEL, broken).tags
    assert broken_tags["airloop.servable"] == "false"
    assert "NotFittedError" in broken_tags["airloop.not_servable_reason"]

    assert watcher.failures == [], f"the stable endpoint failed {len(watcher.failures)} times: {watcher.failures[:5]}"
    assert set(watcher.versions) <= {first, second}
    assert watcher.versions[-1] == second
    assert httpx.get(f"{endpoint}/version").json()["version"] == second
    assert str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version) == second
    left = engine.containers(all=True, filters={"label": f"ai.airloop.stable_port={stack_settings.serving_port}"})
    assert [c["Labels"]["ai.airloop.model.version"] for c in left] == [second]


def _serve(stack_settings, deployer, registry, version: str, check):
    """`version` through the gate onto `deployer`'s target, and made champion."""
    from airloop.deploy.gate import promote_when_servable
    from airloop.serving.model import fetch_model, read_model_info

    model_dir = stack_settings.home / "docker-test" / version
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    info = read_model_info(model_dir) or fetch_model(
        f"models:/{MODEL}/{version}", model_dir, tracking_uri=stack_settings.tracking_uri
    )
    return promote_when_servable(deployer, registry, model_dir, info, check=check, make_champion=True)


def test_blue_green_with_the_serving_token(stack_settings, engine, two_versions):
    """The token reaches the containers, the gate's checks send it, and switching loses no request."""
    from airloop.deploy.checks import ServingCheck
    from airloop.deploy.service import build_deployer
    from airloop.registry.versions import ModelRegistry

    token = "docker-integration-token"
    endpoint = f"http://127.0.0.1:{stack_settings.serving_port}"
    first, second = two_versions
    registry = ModelRegistry(MODEL, tracking_uri=stack_settings.tracking_uri)
    check = ServingCheck(requests=50, p95_latency_ms=60_000, token=token)
    deployer = build_deployer(
        stack_settings, "docker", port=stack_settings.serving_port, docker_api=engine, token=token
    )
    deployer.remove_all()  # from nothing serving: each container is started with this token

    assert _serve(stack_settings, deployer, registry, first, check).version == first
    watcher = Watcher(endpoint)
    watcher.start()
    deployed = _serve(stack_settings, deployer, registry, second, check)
    watcher.stop.set()
    watcher.join()
    assert (deployed.version, deployed.previous_version) == (second, first)
    assert watcher.failures == [], f"the stable endpoint failed {len(watcher.failures)} times: {watcher.failures[:5]}"
    assert watcher.versions[-1] == second
    assert registry.champion() == second

    example = (stack_settings.home / "docker-test" / second / "serving_input_example.json").read_text()
    json_type = {"Content-Type": "application/json"}
    assert httpx.post(f"{endpoint}/invocations", content=example, headers=json_type).status_code == 401
    authorized = {**json_type, "Authorization": f"Bearer {token}"}
    assert httpx.post(f"{endpoint}/invocations", content=example, headers=authorized).status_code == 200


def test_a_docker_champion_scores_a_copy_of_each_request_with_its_shadow(
    stack_settings, engine, monkeypatch, two_versions
):
    """The shadow slot lies beside the inference log the container mounts: a challenger put there
    scores a copy of each request under the same request id, in the container, with the token on."""
    from airloop.config import load_config
    from airloop.deploy.checks import ServingCheck
    from airloop.deploy.service import build_deployer
    from airloop.monitoring.paths import MonitoringPaths
    from airloop.monitoring.traffic import flights_between, send_traffic
    from airloop.registry.shadow import SHADOW, SHADOW_CHAMPION, start_shadow, sync_shadow_slot
    from airloop.registry.versions import ModelRegistry
    from airloop.serving.inference_log import read_inference_log

    monkeypatch.setenv("AIRLOOP_SERVING_SHADOW_POLL_SECONDS", "1")  # handed on to the containers
    token = "docker-shadow-token"
    endpoint = f"http://127.0.0.1:{stack_settings.serving_port}"
    config = load_config(flights_file(stack_settings))
    paths = MonitoringPaths(stack_settings, config)
    challenger, champion = two_versions
    registry = ModelRegistry(MODEL, tracking_uri=stack_settings.tracking_uri)
    deployer = build_deployer(
        stack_settings, "docker", port=stack_settings.serving_port, docker_api=engine, token=token
    )
    deployer.remove_all()
    check = ServingCheck(requests=20, p95_latency_ms=60_000, token=token)
    assert _serve(stack_settings, deployer, registry, champion, check).version == champion
    (serving,) = engine.containers(filters={"label": f"ai.airloop.stable_port={stack_settings.serving_port}"})
    assert "AIRLOOP_SERVING_SHADOW_POLL_SECONDS=1" in engine.inspect_container(serving["Id"])["Config"]["Env"]

    def shadow() -> dict:
        return httpx.get(f"{endpoint}/version", timeout=10).json()["shadow"]

    start_shadow(registry, challenger, champion)
    try:
        assert sync_shadow_slot(stack_settings, config, registry=registry) == challenger
        _until(lambda: (shadow()["model"] or {}).get("version") == challenger, f"the container to shadow v{challenger}")
        day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)  # landed by the stack fixture
        flights = flights_between(config, stack_settings.home, day, day + dt.timedelta(days=1), rows=300)
        scored = shadow()["scored"]
        sent = send_traffic(endpoint, flights, config, token=token)
        scored += sent["request_id"].nunique()
        _until(lambda: shadow()["scored"] >= scored, "the shadow to score the copies")
    finally:
        registry.untag(challenger, [SHADOW, SHADOW_CHAMPION])
        sync_shadow_slot(stack_settings, config, registry=registry)  # empties the slot
    assert shadow()["failed"] == shadow()["dropped"] == 0

    ids, span = set(sent["request_id"]), (day, day + dt.timedelta(days=2))  # late flights are logged the next UTC day
    served = [r for r in read_inference_log(paths.inference, *span) if r["request_id"] in ids]
    shadowed = [r for r in read_inference_log(paths.shadow_inference, *span) if r["request_id"] in ids]
    keys = set(zip(sent["request_id"], sent["row"], strict=True))
    assert {(r["request_id"], r["row"]) for r in served} == keys
    assert {(r["request_id"], r["row"]) for r in shadowed} == keys
    assert {r["model_version"] for r in served} == {champion}
    assert {r["model_version"] for r in shadowed} == {challenger}
    _until(lambda: shadow()["model"] is None, "the container to stop shadowing once the slot is empty")


def _until(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.5)

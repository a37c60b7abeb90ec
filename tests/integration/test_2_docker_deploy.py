"""Blue/green deployment on a real Docker engine, through the `airloop_deploy` DAG.

Deploy version A, then version B (A stops, B answers on the stable port), then a deliberately
broken version (it fails its health check): B keeps answering throughout, with no failed
request, and the task fails with the reason. Needs a Docker engine and a base image that
builds offline here: `.ci/run` provides both (`.ci/docker-engine.sh`,
`include/docker/build-base-image.sh`).
"""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest

from airloop.deploy.docker import DockerDeployer, DockerSettings
from airloop.deploy.local import LocalDeployer
from airloop.deploy.service import docker_engine

pytestmark = pytest.mark.integration

DAG = "airloop_deploy"
MODEL = "airloop-flights-delay"


@pytest.fixture(scope="module")
def engine(stack_settings):
    api = docker_engine()
    if api is None:
        reason = "no Docker engine answers (run .ci/docker-engine.sh)"
        if os.environ.get("AIRLOOP_REQUIRE_DOCKER"):
            pytest.fail(reason)
        pytest.skip(reason)
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


def _deploy(airflow, version: str):
    run = airflow.trigger(
        DAG, logical_date=None, conf={"version": version, "target": "docker", "reason": "docker integration test"}
    )
    final = airflow.follow(DAG, run["dag_run_id"], timeout=900)
    return run["dag_run_id"], final["state"]


def _register_broken_version(stack_settings, mlflow_client) -> str:
    """A version whose pipeline was never fitted: it loads, but its warm-up prediction fails."""
    import json
    import tempfile
    from pathlib import Path

    import mlflow
    import pandas as pd
    from mlflow.models import ModelSignature

    from airloop.config import load_config
    from airloop.training.model import SKOPS_TRUSTED_TYPES, build_pipeline

    mlflow.set_tracking_uri(stack_settings.tracking_uri)  # models:/ URIs resolve through it
    champion = mlflow_client.get_model_version_by_alias(MODEL, "champion")
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{MODEL}/{champion.version}", dst_path=tmp, tracking_uri=stack_settings.tracking_uri
            )
        )
        example = pd.DataFrame(**json.loads((good / "input_example.json").read_text()))
        signature = ModelSignature.from_dict(
            {
                k: v
                for k, v in __import__("yaml").safe_load((good / "MLmodel").read_text())["signature"].items()
                if k in ("inputs", "outputs")
            }
        )
    config = load_config(stack_settings.config)
    mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name="broken on purpose"):
        info = mlflow.sklearn.log_model(
            build_pipeline(config.dataset, config.training.model),
            name="model",
            signature=signature,
            input_example=example,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    return str(mlflow.register_model(info.model_uri, MODEL).version)


def test_blue_green_deploy_and_automatic_rollback(stack_settings, airflow, mlflow_client, engine):
    versions = sorted(int(v.version) for v in mlflow_client.search_model_versions(f"name = '{MODEL}'"))
    assert len(versions) >= 2, "the training tests register at least two versions"
    first, second = str(versions[0]), str(versions[1])
    endpoint = f"http://127.0.0.1:{stack_settings.serving_port}"

    run_id, state = _deploy(airflow, first)
    assert state == "success", airflow.task_log(DAG, run_id, "deploy")
    assert httpx.get(f"{endpoint}/version").json()["version"] == first

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
    image = engine.inspect_image(deployed["image"])
    assert image["Config"]["User"] == "10001"
    assert image["Config"]["Labels"]["org.opencontainers.image.revision"]
    assert image["Config"]["Healthcheck"]["Test"]

    broken = _register_broken_version(stack_settings, mlflow_client)
    run_id, state = _deploy(airflow, broken)
    watcher.stop.set()
    watcher.join()
    assert state == "failed"
    log = airflow.task_log(DAG, run_id, "deploy")
    assert f"version {broken} was not deployed" in log
    assert "not healthy" in log
    assert "NotFittedError" in log
    assert f"version {second} keeps serving" in log

    assert watcher.failures == [], f"the stable endpoint failed {len(watcher.failures)} times: {watcher.failures[:5]}"
    assert set(watcher.versions) <= {first, second}
    assert watcher.versions[-1] == second
    assert httpx.get(f"{endpoint}/version").json()["version"] == second
    assert str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version) == second
    left = engine.containers(all=True, filters={"label": f"ai.airloop.stable_port={stack_settings.serving_port}"})
    assert [c["Labels"]["ai.airloop.model.version"] for c in left] == [second]

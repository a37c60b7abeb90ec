"""Deploy a registered model version to the configured target and record it in the registry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airloop.deploy import Deployment, DeploymentError
from airloop.lineage import TAG_PREFIX, Lineage
from airloop.registry import CHAMPION
from airloop.serving.model import ModelInfo, fetch_model, read_model_info
from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)


def docker_engine(base_url: str | None = None) -> Any:
    """A low-level Docker API client, or None when no engine answers."""
    from docker.api.client import APIClient
    from docker.errors import DockerException

    try:
        client = APIClient(base_url=base_url or "unix://var/run/docker.sock", timeout=600)
        client.ping()
    except DockerException:
        return None
    return client


def resolve_target(settings: AirloopSettings, requested: str | None, docker_api: Any) -> str:
    """`auto` means docker when an engine answers and can build the image, else local."""
    target = requested or settings.deploy_target
    if target != "auto":
        return target
    if docker_api is None:
        log.info("no Docker engine answers: deploying locally")
        return "local"
    from docker.errors import DockerException

    try:
        docker_api.inspect_image(settings.base_image)
    except DockerException:
        try:
            docker_api.pull(settings.base_image)
        except DockerException:
            log.warning(
                "a Docker engine answers, but base image %s is not there and cannot be pulled; deploying "
                "locally. To use Docker offline: include/docker/build-base-image.sh and "
                "AIRLOOP_BASE_IMAGE=airloop/base:bookworm AIRLOOP_OFFLINE_BUILD=true",
                settings.base_image,
            )
            return "local"
    return "docker"


def deploy_version(
    settings: AirloopSettings,
    model_name: str,
    version: str,
    *,
    target: str | None = None,
    docker_api: Any = None,
    kubernetes_api: Callable[[], Any] | None = None,
    lineage: Lineage | None = None,
    make_champion: bool = False,
) -> Deployment:
    """Deploy `version` (a number, or `champion`) of `model_name`; tag the version with where it runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    if version == CHAMPION:
        version = str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    chosen = resolve_target(settings, target, docker_api)
    if chosen == "none":
        log.info("deploy target is none: nothing deployed")
        return Deployment(target="none", model_name=model_name, version=version, endpoint="", unchanged=True)
    model_dir = settings.home / "serving" / "models" / model_name / f"v{version}"
    info = _local_copy(settings, model_name, version, model_dir)
    log.info("deploying %s version %s to %s", model_name, version, chosen)
    deployment = _deployer(settings, chosen, docker_api, kubernetes_api).deploy(model_dir, info)
    tags = {
        "deploy.target": deployment.target,
        "deploy.endpoint": deployment.endpoint,
        "deploy.image": deployment.image or "",
        "deploy.image_id": deployment.image_id or "",
        "deploy.instance": deployment.instance or "",
    }
    if lineage and lineage.run_id:
        tags["deploy.airflow_run_id"] = lineage.run_id
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, TAG_PREFIX + key, value)
    if make_champion:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    return deployment


def _local_copy(settings: AirloopSettings, name: str, version: str, model_dir: Path) -> ModelInfo:
    if (info := read_model_info(model_dir)) is not None:
        return info
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    return fetch_model(f"models:/{name}/{version}", model_dir, tracking_uri=settings.tracking_uri)


def _deployer(settings: AirloopSettings, target: str, docker_api: Any, kubernetes_api: Callable[[], Any] | None) -> Any:
    if target == "local":
        from airloop.deploy.local import LocalDeployer

        return LocalDeployer(settings.home, settings.serving_port)
    if target == "docker":
        from airloop.deploy.docker import DockerDeployer, DockerSettings

        if docker_api is None:
            raise DeploymentError("deploy target docker, but no Docker engine answers")
        return DockerDeployer(
            docker_api,
            DockerSettings(
                home=settings.home,
                stable_port=settings.serving_port,
                base_image=settings.base_image,
                router_base_image=settings.router_base_image,
                offline=settings.offline_build,
            ),
        )
    if target == "kubernetes":
        from airloop.deploy.kubernetes import KubernetesDeployer

        return KubernetesDeployer.from_settings(settings, kubernetes_api() if kubernetes_api else None)
    raise DeploymentError(f"unknown deploy target {target!r}: use docker, kubernetes, local or none")

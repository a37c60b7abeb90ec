"""Deploy a registered model version to the configured target through the servability gate.

The one place that chooses a target's :class:`~airloop.deploy.Deployer` (:func:`build_deployer`),
and the training run's last step (:func:`deploy_and_promote`): the challenger that won its
evaluation is served and made `champion` only if it proves servable; otherwise the champion
keeps (or starts) serving. A challenger that won in shadow (:mod:`airloop.registry.shadow`) goes
through the same gate (:func:`promote_shadow_winner`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from airloop.deploy import Deployer, Deployment, DeploymentError, NotServableError
from airloop.deploy.checks import ServingCheck
from airloop.lineage import Lineage
from airloop.registry import CHAMPION
from airloop.registry.promotion import Evaluation, PromotionDecision
from airloop.settings import AirloopSettings

if TYPE_CHECKING:
    from airloop.config import PipelineConfig
    from airloop.pipelines import Pipeline
    from airloop.registry.shadow import ShadowVerdict
    from airloop.registry.versions import ModelRegistry
    from airloop.serving.model import ModelInfo

log = logging.getLogger(__name__)


class ServingSecrets(BaseSettings):
    """The bearer token every serving instance requires (`AIRLOOP_SERVING_TOKEN`; unset: none)."""

    model_config = SettingsConfigDict(env_prefix="AIRLOOP_SERVING_", extra="ignore")

    token: SecretStr | None = None


class PromotionResult(BaseModel):
    """What the training run's last step did: the decision as it stands, and what serves."""

    decision: PromotionDecision
    deployment: Deployment


def serving_token() -> str | None:
    """The serving token from the environment, or None."""
    token = ServingSecrets().token
    return token.get_secret_value() if token else None


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


def resolve_target(settings: AirloopSettings, requested: str | None, docker_api: Any, *, pull: bool = True) -> str:
    """`auto` means docker when an engine answers and can build the image, else local.

    `pull=False` only looks (a plan): a base image the engine lacks counts as unavailable.
    """
    target = requested or settings.deploy_target
    if target != "auto":
        return target
    if docker_api is None:
        log.info("no Docker engine answers: deploying locally")
        return "local"
    from docker.errors import DockerException

    for look in (docker_api.inspect_image, *([docker_api.pull] if pull else [])):
        try:
            look(settings.base_image)
        except DockerException:
            continue
        return "docker"
    log.warning(
        "a Docker engine answers, but base image %s is not there%s; deploying locally. To use Docker "
        "offline: include/docker/build-base-image.sh and AIRLOOP_BASE_IMAGE=airloop/base:bookworm "
        "AIRLOOP_OFFLINE_BUILD=true",
        settings.base_image,
        " and cannot be pulled" if pull else "",
    )
    return "local"


def build_deployer(
    settings: AirloopSettings,
    target: str,
    *,
    port: int,
    docker_api: Any = None,
    kubernetes_api: Callable[[], Any] | None = None,
    token: str | None = None,
) -> Deployer:
    """The target's Deployer, serving on stable `port`: the one place an implementation is chosen."""
    if target == "local":
        from airloop.deploy.local import LocalDeployer

        return LocalDeployer(settings.home, port, token=token)
    if target == "docker":
        from airloop.deploy.docker import DockerDeployer, DockerSettings

        if docker_api is None:
            raise DeploymentError("deploy target docker, but no Docker engine answers")
        return DockerDeployer(
            docker_api,
            DockerSettings(
                home=settings.home,
                stable_port=port,
                base_image=settings.base_image,
                router_base_image=settings.router_base_image,
                offline=settings.offline_build,
            ),
            token=token,
        )
    if target == "kubernetes":
        from airloop.deploy.kubernetes import KubernetesDeployer

        return KubernetesDeployer.from_settings(
            settings, kubernetes_api() if kubernetes_api else None, token=token, docker_api=docker_api
        )
    raise DeploymentError(f"unknown deploy target {target!r}: use docker, kubernetes, local or none")


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
    check: ServingCheck | None = None,
) -> Deployment:
    """Serve `version` (a number, or `champion`) of `model_name` through the gate; tag where it runs.

    With `make_champion`, `champion` moves to it in the same step (see :mod:`airloop.deploy.gate`).
    `check` defaults to the config's `promotion.servability` with the serving token.
    """
    from airloop.deploy.gate import promote_when_servable
    from airloop.registry.versions import ModelRegistry

    registry = ModelRegistry(model_name, tracking_uri=settings.tracking_uri)
    version = registry.resolve(version)
    chosen = resolve_target(settings, target, docker_api)
    if chosen == "none":
        # Nothing here serves, so nothing can be checked: the registry alone says what should serve.
        log.warning("deploy target is none: %s version %s is not served or checked here", model_name, version)
        if make_champion:
            registry.move_champion(version)
        return Deployment(target="none", model_name=model_name, version=version, endpoint="", unchanged=True)
    token = serving_token()
    pipeline = settings.load_pipelines().of_model(model_name)
    check = check or servability_check(pipeline.config if pipeline else None, token)
    model_dir = settings.state.served_model(model_name, version)
    info = _local_copy(settings, model_name, version, model_dir)
    deployer = build_deployer(
        settings,
        chosen,
        port=_serving_port(settings, pipeline),
        docker_api=docker_api,
        kubernetes_api=kubernetes_api,
        token=token,
    )
    log.info("deploying %s version %s to %s%s", model_name, version, chosen, " as champion" if make_champion else "")
    deployment = promote_when_servable(deployer, registry, model_dir, info, check=check, make_champion=make_champion)
    if not deployment.unchanged:
        _tag_deployment(registry, deployment, lineage)
    return deployment


def deploy_and_promote(
    settings: AirloopSettings,
    config: PipelineConfig,
    evaluation: Evaluation,
    *,
    target: str | None = None,
    docker_api: Any = None,
    kubernetes_api: Callable[[], Any] | None = None,
    lineage: Lineage | None = None,
) -> PromotionResult:
    """The challenger that won is served and made champion through the gate; else the champion keeps serving.

    A challenger that is not servable is tagged so (`airloop.promotion.decision=not_servable`)
    and :class:`~airloop.deploy.NotServableError` is raised, with alias and traffic where they were.
    """
    from airloop.registry.versions import ModelRegistry

    registry = ModelRegistry(evaluation.model_name, tracking_uri=settings.tracking_uri)
    check = servability_check(config, serving_token())

    def serve(version: str, *, make_champion: bool) -> Deployment:
        return deploy_version(
            settings,
            evaluation.model_name,
            version,
            target=target,
            docker_api=docker_api,
            kubernetes_api=kubernetes_api,
            lineage=lineage,
            make_champion=make_champion,
            check=check,
        )

    if not evaluation.promote:
        from airloop.registry.shadow import sync_shadow_slot

        deployment = serve(CHAMPION, make_champion=False)
        decision = evaluation.decided("rejected", registry)
        sync_shadow_slot(settings, config, registry=registry)  # a rejected challenger may shadow the champion now
        return PromotionResult(decision=decision, deployment=deployment)
    try:
        deployment = serve(evaluation.version, make_champion=True)
    except NotServableError as err:
        evaluation.decided("not_servable", registry, reason=f"{evaluation.reason}; not servable: {err}")
        raise
    return PromotionResult(decision=evaluation.decided("promoted", registry), deployment=deployment)


def promote_shadow_winner(
    settings: AirloopSettings,
    config: PipelineConfig,
    verdict: ShadowVerdict,
    *,
    docker_api: Any = None,
    kubernetes_api: Callable[[], Any] | None = None,
    lineage: Lineage | None = None,
) -> Deployment | None:
    """A challenger that won in shadow serves and becomes champion through the gate, as any winner.

    With `promotion.approval: required` it waits for a person instead (None): the log and the
    version's tags say so, and `airloop_deploy` with its version promotes it.
    """
    from airloop.registry.versions import ModelRegistry

    registry = ModelRegistry(verdict.model_name, tracking_uri=settings.tracking_uri)
    reason = f"won in shadow: {verdict.reason}"
    if config.promotion.approval == "required":
        registry.record_decision(verdict.version, None, f"{reason}; awaits approval (airloop_deploy)")
        log.warning(
            "%s version %s %s; promotion.approval is required: deploy it with airloop_deploy (version %s)",
            verdict.model_name,
            verdict.version,
            reason,
            verdict.version,
        )
        return None
    try:
        deployment = deploy_version(
            settings,
            verdict.model_name,
            verdict.version,
            docker_api=docker_api,
            kubernetes_api=kubernetes_api,
            lineage=lineage,
            make_champion=True,
            check=servability_check(config, serving_token()),
        )
    except NotServableError as err:
        registry.record_decision(verdict.version, "not_servable", f"{reason}; {err}")
        raise
    registry.record_decision(verdict.version, "promoted", reason)
    log.info("%s version %s promoted: %s", verdict.model_name, verdict.version, reason)
    return deployment


def servability_check(config: PipelineConfig | None, token: str | None) -> ServingCheck:
    """The contract test's settings from `promotion.servability` (its defaults for a model no pipeline names)."""
    from airloop.config import ServabilityPolicy

    policy = config.promotion.servability if config else ServabilityPolicy()
    return ServingCheck(requests=policy.requests, p95_latency_ms=policy.p95_latency_ms, token=token)


def serving_port_of(settings: AirloopSettings, model_name: str) -> int:
    """The stable port of the pipeline whose model this is; AIRLOOP_SERVING_PORT for a model no pipeline names."""
    return _serving_port(settings, settings.load_pipelines().of_model(model_name))


def _serving_port(settings: AirloopSettings, pipeline: Pipeline | None) -> int:
    return pipeline.serving_port if pipeline else settings.serving_port


def _tag_deployment(registry: ModelRegistry, deployment: Deployment, lineage: Lineage | None) -> None:
    where = {
        "target": deployment.target,
        "endpoint": deployment.endpoint,
        "image": deployment.image or "",
        "image_id": deployment.image_id or "",
        "instance": deployment.instance or "",
    }
    if lineage and lineage.run_id:
        where["airflow_run_id"] = lineage.run_id
    registry.record_deployment(deployment.version, **where)


def _local_copy(settings: AirloopSettings, name: str, version: str, model_dir: Path) -> ModelInfo:
    from airloop.serving.model import fetch_model, read_model_info

    if (info := read_model_info(model_dir)) is not None:
        return info
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    return fetch_model(f"models:/{name}/{version}", model_dir, tracking_uri=settings.tracking_uri)

"""Kubernetes deployment: manifests rendered from the registry, applied, checked, rolled out or undone.

A Deployment (readiness and liveness probes on /health, resources, rolling update with no
unavailable pod), a Service for load balancing across replicas, and an optional
HorizontalPodAutoscaler for elasticity. `render_manifests` is pure. `KubernetesDeployer`
applies them with the official client (server-side apply): a new version first runs as a
one-replica candidate Deployment with a Service of its own, where it is checked; the switch is
then a rolling update of the serving Deployment to the checked image, and switching back
restores the previous pod template (`kubectl rollout undo`). The serving token reaches the pods
from a Secret, never from the manifest. Where a Docker engine answers, the version's serving image
is built and pushed to the image registry first, and the pods run it by digest.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from airloop.deploy import Candidate, DeploymentError, NotServableError, forwarded_serving_env
from airloop.deploy.image import ImageBuilder
from airloop.serving.model import ModelInfo

log = logging.getLogger(__name__)

KUBERNETES_VERSION = "1.30.0"  # the API version manifests are validated against
FIELD_MANAGER = "airloop"
VERSION_ANNOTATION = "airloop.ai/model-version"
CANDIDATE_SUFFIX = "-candidate"
TOKEN_KEY = "token"  #: the key of the serving token in its Secret


@dataclass(frozen=True)
class KubernetesOptions:
    namespace: str = "airloop"
    replicas: int = 2
    port: int = 8000
    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"
    autoscale: bool = True
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu_percent: int = 70
    rollout_timeout: float = 300.0
    #: A PersistentVolumeClaim (ReadWriteMany, e.g. the shared state volume) for the inference log,
    #: so monitoring reads what every replica served; None keeps it in the pod (lost with it).
    inference_log_claim: str | None = None
    #: More serving settings for the pods (`airloop.deploy.FORWARDED_SERVING_SETTINGS`), as (name, value).
    serving_env: tuple[tuple[str, str], ...] = ()


def resource_name(model_name: str) -> str:
    name = model_name.lower() if model_name.lower().startswith("airloop-") else f"airloop-{model_name}".lower()
    return re.sub(r"[^a-z0-9-]", "-", name)[:63].strip("-")


def _token_env(secret: str | None) -> list[dict[str, Any]]:
    if secret is None:
        return []
    ref = {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}}
    return [{"name": "AIRLOOP_SERVING_TOKEN", "valueFrom": ref}]


def _inference_log_volume(options: KubernetesOptions) -> dict[str, Any]:
    if options.inference_log_claim:
        return {"name": "inference-log", "persistentVolumeClaim": {"claimName": options.inference_log_claim}}
    return {"name": "inference-log", "emptyDir": {}}


def token_secret_name(model_name: str) -> str:
    """The Secret holding the serving token of `model_name`'s pods."""
    return f"{resource_name(model_name)[:50]}-serving-token"


def render_token_secret(model_name: str, token: str, namespace: str) -> dict[str, Any]:
    """The Secret the pods read `AIRLOOP_SERVING_TOKEN` from."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": token_secret_name(model_name),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "airloop"},
        },
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def render_manifests(
    info: ModelInfo,
    image: str,
    options: KubernetesOptions,
    *,
    candidate: bool = False,
    token_secret: str | None = None,
) -> list[dict[str, Any]]:
    """Deployment, Service and (optionally) HorizontalPodAutoscaler for one model version.

    `candidate`: the one-replica Deployment and Service of the candidate slot (no autoscaler).
    `token_secret`: the Secret whose `token` the pods require as a bearer token.
    """
    name = resource_name(info.name) + (CANDIDATE_SUFFIX if candidate else "")
    selector = {"app.kubernetes.io/name": name}
    labels = {**selector, "app.kubernetes.io/part-of": "airloop", "app.kubernetes.io/version": f"v{info.version}"}
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": labels,
            "annotations": {VERSION_ANNOTATION: info.version, "airloop.ai/run-id": info.run_id or ""},
        },
        "spec": {
            "replicas": 1 if candidate else options.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
                    "containers": [
                        {
                            "name": "serving",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": options.port}],
                            "env": [
                                {"name": "AIRLOOP_SERVING_PORT", "value": str(options.port)},
                                {"name": "AIRLOOP_SERVING_HOST", "value": "0.0.0.0"},
                                {"name": "AIRLOOP_SERVING_IMAGE", "value": image},
                                *({"name": k, "value": v} for k, v in options.serving_env),
                                *_token_env(token_secret),
                            ],
                            "readinessProbe": {**probe, "initialDelaySeconds": 5},
                            "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 3},
                            "resources": {
                                "requests": {"cpu": options.cpu_request, "memory": options.memory_request},
                                "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {
                                    "name": "inference-log",
                                    "mountPath": "/var/lib/airloop/inference",
                                    # On the shared state volume: where monitoring reads it.
                                    **({"subPath": "inference"} if options.inference_log_claim else {}),
                                },
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [_inference_log_volume(options), {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": options.port, "targetPort": "http"}]},
    }
    manifests = [deployment, service]
    if options.autoscale and not candidate:
        manifests.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": options.namespace, "labels": labels},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": options.min_replicas,
                    "maxReplicas": options.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": options.target_cpu_percent},
                            },
                        }
                    ],
                },
            }
        )
    return manifests


def validate_manifests(manifests: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> None:
    """Check each manifest against the Kubernetes OpenAPI schema (strict: no unknown fields)."""
    import kubernetes_validate

    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            kind = manifest.get("kind")
            raise DeploymentError(f"{kind} manifest is invalid for Kubernetes {version}: {err.message}") from err


class KubernetesDeployer:
    """Candidate, switch and undo on a cluster, through a `kubernetes.client.ApiClient`."""

    target = "kubernetes"

    def __init__(
        self,
        api_client: Any,
        *,
        image_registry: str,
        options: KubernetesOptions | None = None,
        token: str | None = None,
        builder: ImageBuilder | None = None,
    ) -> None:
        self.api_client = api_client
        self.builder = builder
        self.registry = image_registry.rstrip("/")
        self.options = options or KubernetesOptions()
        self.token = token
        self._previous: dict[str, Any] | None = None  # the serving Deployment's pod template before the switch
        self._switched: str | None = None  # the Deployment the last switch rolled out

    def endpoint(self, model_name: str) -> str:
        return self._endpoint(resource_name(model_name))

    @classmethod
    def from_settings(
        cls, settings: Any, api_client: Any = None, *, token: str | None = None, docker_api: Any = None
    ) -> KubernetesDeployer:
        """From the environment; the client from kubeconfig or in-cluster config unless given.

        With a Docker engine (`docker_api`), each version's serving image is built there and pushed
        to AIRLOOP_IMAGE_REGISTRY, and the cluster runs it by digest; without one, the image must
        already be in the registry under its tag (built and pushed by the site's own CI)."""
        import os

        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                # KUBECONFIG as it is now: the library reads it once, when it is first imported.
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
            api_client = client.ApiClient()
        registry = os.environ.get("AIRLOOP_IMAGE_REGISTRY")
        if not registry:
            raise DeploymentError("the kubernetes target needs AIRLOOP_IMAGE_REGISTRY (where the cluster pulls from)")
        return cls(
            api_client,
            image_registry=registry,
            options=KubernetesOptions(
                namespace=os.environ.get("AIRLOOP_K8S_NAMESPACE", "airloop"),
                inference_log_claim=os.environ.get("AIRLOOP_K8S_INFERENCE_LOG_CLAIM") or None,
                serving_env=tuple(forwarded_serving_env().items()),
            ),
            token=token,
            builder=(
                ImageBuilder(docker_api, settings.home, settings.base_image, settings.offline_build)
                if docker_api is not None
                else None
            ),
        )

    # -- Deployer ------------------------------------------------------------------------------

    def serving_version(self, model_name: str) -> str | None:
        deployment = self._read(resource_name(model_name))
        if deployment is None:
            return None
        return (deployment.metadata.annotations or {}).get(VERSION_ANNOTATION)

    def start_candidate(self, model_dir: Any, info: ModelInfo) -> Candidate:
        image = self.builder.publish(model_dir, info, self.registry) if self.builder else self.image(info)
        manifests = self._manifests(info, image, candidate=True)
        name, namespace = manifests[0]["metadata"]["name"], self.options.namespace
        if self.token:
            self._apply(render_token_secret(info.name, self.token, namespace))
        for manifest in manifests:
            self._apply(manifest)
        try:
            self._wait_rollout(name, namespace)
        except DeploymentError as err:
            self._delete_candidate(name)
            raise NotServableError(f"the candidate {err}") from err
        return Candidate(info=info, url=self._endpoint(name), instance=f"deployment/{name}", image=image)

    def discard(self, candidate: Candidate) -> None:
        self._delete_candidate(resource_name(candidate.info.name) + CANDIDATE_SUFFIX)

    def switch(self, candidate: Candidate) -> None:
        manifests = self._manifests(candidate.info, str(candidate.image), candidate=False)
        name = manifests[0]["metadata"]["name"]
        current = self._read(name)
        self._previous = None if current is None else self.api_client.sanitize_for_serialization(current.spec.template)
        self._switched = name
        for manifest in manifests:
            self._apply(manifest)
        self._wait_rollout(name, self.options.namespace)

    def switch_back(self) -> None:
        from kubernetes import client

        name, previous = self._switched, self._previous
        self._switched = self._previous = None
        if name is None:
            return
        apps = client.AppsV1Api(self.api_client)
        if previous is None:  # nothing served before
            apps.delete_namespaced_deployment(name, self.options.namespace)
            return
        log.error("restoring the previous pod template of deployment/%s", name)
        apps.patch_namespaced_deployment(name, self.options.namespace, {"spec": {"template": previous}})
        self._wait_rollout(name, self.options.namespace)

    def retire_previous(self) -> None:
        # The rolling update replaced the old pods; the candidate's are no longer needed.
        if self._switched is not None:
            self._delete_candidate(self._switched + CANDIDATE_SUFFIX)
        self._switched = self._previous = None

    # -- manifests and the API -------------------------------------------------------------------

    def image(self, info: ModelInfo) -> str:
        from airloop.deploy.image import image_tag

        return f"{self.registry}/{image_tag(info.name, info.version)}"

    def _manifests(self, info: ModelInfo, image: str, *, candidate: bool) -> list[dict[str, Any]]:
        secret = token_secret_name(info.name) if self.token else None
        manifests = render_manifests(info, image, self.options, candidate=candidate, token_secret=secret)
        validate_manifests(manifests)
        return manifests

    def _endpoint(self, name: str) -> str:
        return f"http://{name}.{self.options.namespace}.svc:{self.options.port}"

    def _dynamic(self, manifest: dict[str, Any]) -> Any:
        from kubernetes.dynamic import DynamicClient

        return DynamicClient(self.api_client).resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])

    def _apply(self, manifest: dict[str, Any]) -> None:
        resource = self._dynamic(manifest)
        resource.server_side_apply(
            body=manifest,
            name=manifest["metadata"]["name"],
            namespace=manifest["metadata"]["namespace"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        log.info("applied %s/%s", manifest["kind"], manifest["metadata"]["name"])  # never the body: a Secret's

    def _read(self, name: str) -> Any:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            return client.AppsV1Api(self.api_client).read_namespaced_deployment(name, self.options.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def _delete_candidate(self, name: str) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        for delete in (
            client.AppsV1Api(self.api_client).delete_namespaced_deployment,
            client.CoreV1Api(self.api_client).delete_namespaced_service,
        ):
            try:
                delete(name, self.options.namespace)
            except ApiException as err:
                if err.status != 404:
                    raise

    def _wait_rollout(self, name: str, namespace: str) -> None:
        from kubernetes import client

        apps = client.AppsV1Api(self.api_client)
        deadline = time.monotonic() + self.options.rollout_timeout
        status = None
        while time.monotonic() < deadline:
            deployment = apps.read_namespaced_deployment(name, namespace)
            status, wanted = deployment.status, deployment.spec.replicas or 0
            if (
                (status.observed_generation or 0) >= deployment.metadata.generation
                and (status.updated_replicas or 0) == wanted
                and (status.available_replicas or 0) >= wanted
                and (status.replicas or 0) == wanted
            ):
                return
            time.sleep(2)
        raise DeploymentError(
            f"deployment/{name} did not finish rolling out in {self.options.rollout_timeout:.0f}s (status: {status})"
        )

"""Kubernetes deployment: manifests rendered from the registry, applied, rolled out or undone.

A Deployment (readiness and liveness probes on /health, resources, rolling update with no
unavailable pod), a Service for load balancing across replicas, and an optional
HorizontalPodAutoscaler for elasticity. `render_manifests` is pure; `KubernetesDeployer`
applies them with the official client (server-side apply), waits for the rollout and, if it
does not complete, restores the previous pod template (`kubectl rollout undo`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from airloop.deploy import Deployment, DeploymentError
from airloop.serving.model import ModelInfo

log = logging.getLogger(__name__)

KUBERNETES_VERSION = "1.30.0"  # the API version manifests are validated against
FIELD_MANAGER = "airloop"


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


def resource_name(model_name: str) -> str:
    name = model_name.lower() if model_name.lower().startswith("airloop-") else f"airloop-{model_name}".lower()
    return re.sub(r"[^a-z0-9-]", "-", name)[:63].strip("-")


def _inference_log_volume(options: KubernetesOptions) -> dict[str, Any]:
    if options.inference_log_claim:
        return {"name": "inference-log", "persistentVolumeClaim": {"claimName": options.inference_log_claim}}
    return {"name": "inference-log", "emptyDir": {}}


def render_manifests(info: ModelInfo, image: str, options: KubernetesOptions) -> list[dict[str, Any]]:
    """Deployment, Service and (optionally) HorizontalPodAutoscaler for one model version."""
    name = resource_name(info.name)
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
            "annotations": {"airloop.ai/model-version": info.version, "airloop.ai/run-id": info.run_id or ""},
        },
        "spec": {
            "replicas": options.replicas,
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
    if options.autoscale:
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
    """Apply rendered manifests and follow the rollout, through a `kubernetes.client.ApiClient`."""

    def __init__(self, api_client: Any, *, image_registry: str, options: KubernetesOptions | None = None) -> None:
        self.api_client = api_client
        self.registry = image_registry.rstrip("/")
        self.options = options or KubernetesOptions()

    @classmethod
    def from_settings(cls, settings: Any, api_client: Any = None) -> KubernetesDeployer:
        """From the environment; the client from kubeconfig or in-cluster config unless given."""
        import os

        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        registry = os.environ.get("AIRLOOP_IMAGE_REGISTRY")
        if not registry:
            raise DeploymentError("the kubernetes target needs AIRLOOP_IMAGE_REGISTRY (where the cluster pulls from)")
        return cls(
            client.ApiClient(),
            image_registry=registry,
            options=KubernetesOptions(
                namespace=os.environ.get("AIRLOOP_K8S_NAMESPACE", "airloop"),
                inference_log_claim=os.environ.get("AIRLOOP_K8S_INFERENCE_LOG_CLAIM") or None,
            ),
        )

    def deploy(self, model_dir: Any, info: ModelInfo) -> Deployment:
        from airloop.deploy.image import image_tag

        image = f"{self.registry}/{image_tag(info.name, info.version)}"
        manifests = render_manifests(info, image, self.options)
        validate_manifests(manifests)
        name, namespace = manifests[0]["metadata"]["name"], self.options.namespace
        previous = self._current_template(name, namespace)
        for manifest in manifests:
            self._apply(manifest)
        try:
            self._wait_rollout(name, namespace)
        except DeploymentError as err:
            if previous is not None:
                log.error("rollout of %s failed; restoring the previous pod template", name)
                self._restore(name, namespace, previous)
            raise DeploymentError(f"{err}; the rollout was undone") from err
        endpoint = f"http://{name}.{namespace}.svc:{self.options.port}"
        return Deployment(
            target="kubernetes",
            model_name=info.name,
            version=info.version,
            endpoint=endpoint,
            image=image,
            instance=f"deployment/{name}",
        )

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
        log.info("applied %s/%s", manifest["kind"], manifest["metadata"]["name"])

    def _current_template(self, name: str, namespace: str) -> dict[str, Any] | None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            current = client.AppsV1Api(self.api_client).read_namespaced_deployment(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return self.api_client.sanitize_for_serialization(current.spec.template)

    def _restore(self, name: str, namespace: str, template: dict[str, Any]) -> None:
        from kubernetes import client

        client.AppsV1Api(self.api_client).patch_namespaced_deployment(name, namespace, {"spec": {"template": template}})

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

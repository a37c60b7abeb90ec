"""The Kubernetes target against a real cluster, through the servability gate.

The gate checks the candidate at its Service's cluster DNS name, so run this where that
resolves (inside the cluster, as the Airflow worker does in the production shape). No cluster
can run on the machines this project is developed and tested on (no registry ships
kube-apiserver), so this test runs only when KUBECONFIG points at a cluster and
AIRLOOP_IMAGE_REGISTRY names a registry the cluster pulls from, where the serving image of the
champion has been pushed (`docker push <registry>/airloop/<model>:v<version>`). Otherwise it is
skipped with that reason; the manifests themselves are validated against the Kubernetes schema
in tests/unit/test_kubernetes_manifests.py and tests/unit/deploy/test_kubernetes.py on every run.
"""

from __future__ import annotations

import os

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and os.environ.get("AIRLOOP_IMAGE_REGISTRY")),
        reason="no Kubernetes cluster: set KUBECONFIG and AIRLOOP_IMAGE_REGISTRY to run the real-cluster test",
    ),
]


def test_the_gate_on_a_real_cluster_serves_a_checked_version_and_refuses_an_unpullable_one(
    stack_settings, mlflow_client
):
    from kubernetes import client

    from airloop.deploy import NotServableError
    from airloop.deploy.checks import ServingCheck
    from airloop.deploy.gate import promote_when_servable
    from airloop.deploy.kubernetes import CANDIDATE_SUFFIX, KubernetesDeployer, resource_name
    from airloop.registry.versions import ModelRegistry
    from airloop.serving.model import fetch_model

    name, token = "airloop-flights-delay", "k8s-integration-token"
    version = str(mlflow_client.get_model_version_by_alias(name, "champion").version)
    model_dir = stack_settings.home / "k8s" / f"v{version}"
    info = fetch_model(f"models:/{name}/{version}", model_dir, tracking_uri=stack_settings.tracking_uri)
    deployer = KubernetesDeployer.from_settings(stack_settings, token=token)
    registry = ModelRegistry(name, tracking_uri=stack_settings.tracking_uri)
    check = ServingCheck(requests=20, p95_latency_ms=60_000, token=token)

    deployment = promote_when_servable(deployer, registry, model_dir, info, check=check, make_champion=True)
    assert deployment.version == version
    apps = client.AppsV1Api(deployer.api_client)
    namespace = deployer.options.namespace
    live = apps.read_namespaced_deployment(resource_name(name), namespace)
    assert live.status.available_replicas == live.spec.replicas
    assert live.metadata.annotations["airloop.ai/model-version"] == version
    env = {e.name: e for e in live.spec.template.spec.containers[0].env}
    assert env["AIRLOOP_SERVING_TOKEN"].value_from.secret_key_ref.key == "token"
    assert deployer.serving_version(name) == version

    # A registered version whose image was never pushed: its candidate never becomes ready.
    source = mlflow_client.get_model_version(name, version)
    unpushed = str(mlflow_client.create_model_version(name, source.source, run_id=source.run_id).version)
    unpushed_dir = stack_settings.home / "k8s" / f"v{unpushed}"
    unpushed_info = fetch_model(f"models:/{name}/{unpushed}", unpushed_dir, tracking_uri=stack_settings.tracking_uri)
    deployer.options = type(deployer.options)(namespace=namespace, rollout_timeout=60)
    with pytest.raises(NotServableError, match="candidate"):
        promote_when_servable(deployer, registry, unpushed_dir, unpushed_info, check=check, make_champion=True)
    served = apps.read_namespaced_deployment(resource_name(name), namespace)
    assert served.spec.template.spec.containers[0].image == deployment.image
    assert registry.champion() == version
    assert registry.tags(unpushed)["servable"] == "false"
    candidates = apps.list_namespaced_deployment(namespace).items
    assert resource_name(name) + CANDIDATE_SUFFIX not in {d.metadata.name for d in candidates}

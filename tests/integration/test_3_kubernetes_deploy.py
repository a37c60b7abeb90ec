"""The Kubernetes target against a real cluster.

No cluster can run on the machines this project is developed and tested on (no registry
ships kube-apiserver), so this test runs only when KUBECONFIG points at a cluster and
AIRLOOP_IMAGE_REGISTRY names a registry the cluster pulls from, where the serving image of
the version under test has been pushed (`docker push <registry>/airloop/<model>:v<version>`).
Otherwise it is skipped with that reason; the manifests themselves are validated against the
Kubernetes schema in tests/unit/test_kubernetes_manifests.py on every run.
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


def test_rollout_on_a_real_cluster_and_undo_of_a_broken_one(stack_settings, mlflow_client):
    from kubernetes import client

    from airloop.deploy import DeploymentError
    from airloop.deploy.kubernetes import KubernetesDeployer, resource_name
    from airloop.serving.model import ModelInfo, fetch_model

    name = "airloop-flights-delay"
    version = str(mlflow_client.get_model_version_by_alias(name, "champion").version)
    model_dir = stack_settings.home / "k8s" / f"v{version}"
    info = fetch_model(f"models:/{name}/{version}", model_dir, tracking_uri=stack_settings.tracking_uri)
    deployer = KubernetesDeployer.from_settings(stack_settings)

    deployment = deployer.deploy(model_dir, info)
    assert deployment.version == version
    apps = client.AppsV1Api(deployer.api_client)
    live = apps.read_namespaced_deployment(resource_name(name), deployer.options.namespace)
    assert live.status.available_replicas == live.spec.replicas

    missing = ModelInfo(name=name, version="999999")  # an image that was never pushed
    deployer.options = type(deployer.options)(namespace=deployer.options.namespace, rollout_timeout=60)
    with pytest.raises(DeploymentError, match="undone"):
        deployer.deploy(model_dir, missing)
    restored = apps.read_namespaced_deployment(resource_name(name), deployer.options.namespace)
    assert restored.spec.template.spec.containers[0].image == deployment.image

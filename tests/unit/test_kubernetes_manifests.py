"""Kubernetes manifests, validated against the Kubernetes OpenAPI schema (no cluster needed).

A real cluster test lives in tests/integration/test_3_kubernetes_deploy.py and runs when
KUBECONFIG points at a cluster.
"""

from __future__ import annotations

import copy

import pytest

from airloop.deploy import DeploymentError
from airloop.deploy.kubernetes import KubernetesOptions, render_manifests, resource_name, validate_manifests
from airloop.serving.model import ModelInfo

INFO = ModelInfo(name="airloop-flights-delay", version="7", run_id="abc123")
IMAGE = "registry.example.com/airloop/airloop-flights-delay:v7"


@pytest.fixture
def manifests():
    return render_manifests(INFO, IMAGE, KubernetesOptions())


def test_rendered_manifests_validate_against_the_schema(manifests):
    validate_manifests(manifests)
    assert [m["kind"] for m in manifests] == ["Deployment", "Service", "HorizontalPodAutoscaler"]


def test_deployment_probes_resources_and_rolling_update(manifests):
    deployment = manifests[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert deployment["metadata"]["annotations"]["airloop.ai/model-version"] == "7"


def test_service_and_autoscaler_point_at_the_deployment(manifests):
    deployment, service, hpa = manifests
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_autoscaler_is_optional():
    kinds = [m["kind"] for m in render_manifests(INFO, IMAGE, KubernetesOptions(autoscale=False))]
    assert kinds == ["Deployment", "Service"]


def test_names_are_valid_kubernetes_names():
    assert resource_name("Flights_Delay.Model") == "airloop-flights-delay-model"
    assert len(resource_name("x" * 100)) <= 63


@pytest.mark.parametrize(
    ("break_it", "fragment"),
    [
        pytest.param(lambda m: m[0]["spec"].update(replicas="two"), "Deployment", id="wrong-type"),
        pytest.param(
            lambda m: m[0]["spec"]["template"]["spec"]["containers"][0].update(imagePullPolicyy="Always"),
            "Deployment",
            id="unknown-field",
        ),
        pytest.param(lambda m: m[1]["spec"].update(ports=[{"port": "http"}]), "Service", id="bad-port"),
    ],
)
def test_invalid_manifests_are_refused(manifests, break_it, fragment):
    broken = copy.deepcopy(manifests)
    break_it(broken)
    with pytest.raises(DeploymentError, match=fragment):
        validate_manifests(broken)


def test_the_inference_log_goes_to_a_shared_claim_when_one_is_named():
    def pod(options):
        deployment = next(m for m in render_manifests(INFO, IMAGE, options) if m["kind"] == "Deployment")
        return deployment["spec"]["template"]["spec"]

    shared = pod(KubernetesOptions(inference_log_claim="airloop-state"))
    volume = next(v for v in shared["volumes"] if v["name"] == "inference-log")
    assert volume == {"name": "inference-log", "persistentVolumeClaim": {"claimName": "airloop-state"}}
    mount = next(m for m in shared["containers"][0]["volumeMounts"] if m["name"] == "inference-log")
    assert mount["subPath"] == "inference"
    alone = pod(KubernetesOptions())
    assert {"name": "inference-log", "emptyDir": {}} in alone["volumes"]

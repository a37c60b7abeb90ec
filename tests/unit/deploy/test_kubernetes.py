"""The Kubernetes target's candidate slot and serving token, as manifests validated against the schema.

The gate's steps on a real cluster are tested in tests/integration/test_3_kubernetes_deploy.py.
"""

from __future__ import annotations

import pytest

from airloop.deploy.kubernetes import (
    CANDIDATE_SUFFIX,
    KubernetesOptions,
    render_manifests,
    render_token_secret,
    resource_name,
    token_secret_name,
    validate_manifests,
)
from airloop.serving.model import ModelInfo

INFO = ModelInfo(name="airloop-flights-delay", version="7", run_id="abc123")
IMAGE = "registry.example.com/airloop/airloop-flights-delay:v7"


def _container(manifests):
    return manifests[0]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("candidate", "kinds", "replicas"),
    [
        pytest.param(False, ["Deployment", "Service", "HorizontalPodAutoscaler"], 2, id="serving"),
        pytest.param(True, ["Deployment", "Service"], 1, id="candidate-slot"),
    ],
)
def test_serving_and_candidate_manifests_validate(candidate, kinds, replicas):
    manifests = render_manifests(INFO, IMAGE, KubernetesOptions(), candidate=candidate)
    validate_manifests(manifests)
    assert [m["kind"] for m in manifests] == kinds
    assert manifests[0]["spec"]["replicas"] == replicas


def test_the_candidate_is_not_behind_the_serving_service():
    serving = render_manifests(INFO, IMAGE, KubernetesOptions())
    candidate = render_manifests(INFO, IMAGE, KubernetesOptions(), candidate=True)
    assert candidate[0]["metadata"]["name"] == resource_name(INFO.name) + CANDIDATE_SUFFIX
    serving_selector = serving[1]["spec"]["selector"]
    candidate_pods = candidate[0]["spec"]["template"]["metadata"]["labels"]
    assert not serving_selector.items() <= candidate_pods.items()
    assert candidate[1]["spec"]["selector"].items() <= candidate_pods.items()


def test_the_token_reaches_the_pods_from_a_secret_never_the_manifest():
    secret_name = token_secret_name(INFO.name)
    manifests = render_manifests(INFO, IMAGE, KubernetesOptions(), token_secret=secret_name)
    secret = render_token_secret(INFO.name, "s3cret", "airloop")
    validate_manifests([*manifests, secret])
    env = {e["name"]: e for e in _container(manifests)["env"]}
    assert env["AIRLOOP_SERVING_TOKEN"] == {
        "name": "AIRLOOP_SERVING_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "token"}},
    }
    assert "s3cret" not in str(manifests)
    assert secret["metadata"]["name"] == secret_name
    assert secret["stringData"] == {"token": "s3cret"}


def test_no_token_no_token_variable():
    names = [e["name"] for e in _container(render_manifests(INFO, IMAGE, KubernetesOptions()))["env"]]
    assert "AIRLOOP_SERVING_TOKEN" not in names


def test_the_shadow_settings_set_where_the_deploy_runs_reach_the_pods(monkeypatch):
    from airloop.deploy import forwarded_serving_env

    monkeypatch.setenv("AIRLOOP_SERVING_SHADOW", "false")
    monkeypatch.setenv("AIRLOOP_SERVING_SHADOW_POLL_SECONDS", "2")
    monkeypatch.delenv("AIRLOOP_SERVING_REPLAY_CLOCK", raising=False)
    monkeypatch.setenv("AIRLOOP_SERVING_TOKEN", "never-in-a-manifest")
    forwarded = forwarded_serving_env()
    assert forwarded == {"AIRLOOP_SERVING_SHADOW": "false", "AIRLOOP_SERVING_SHADOW_POLL_SECONDS": "2"}

    manifests = render_manifests(INFO, IMAGE, KubernetesOptions(serving_env=tuple(forwarded.items())))
    validate_manifests(manifests)
    env = {e["name"]: e.get("value") for e in _container(manifests)["env"]}
    assert env["AIRLOOP_SERVING_SHADOW"] == "false"
    assert env["AIRLOOP_SERVING_SHADOW_POLL_SECONDS"] == "2"
    assert "AIRLOOP_SERVING_REPLAY_CLOCK" not in env
    assert "never-in-a-manifest" not in str(manifests)

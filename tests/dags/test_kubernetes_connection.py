"""The Kubernetes target talks to the cluster that Airflow's `kubernetes_default` connection names.

No cluster is needed: building the client reads the connection's kubeconfig and sends nothing. The
same deployer against a real cluster is tested in tests/integration/test_3_kubernetes_deploy.py.
"""

from __future__ import annotations

import json

import pytest

from airloop.deploy.kubernetes import KubernetesDeployer
from airloop.settings import AirloopSettings
from airloop_airflow import stages

SERVER = "https://cluster.from-the-connection.example:6443"
TOKEN = "connection-bearer-token"


def _kubeconfig(server: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }


@pytest.fixture
def connection(monkeypatch, tmp_path):
    """`kubernetes_default` as a deployment would define it, and a decoy kubeconfig it must win over."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_DEFAULT",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(_kubeconfig(SERVER))}}),
    )
    decoy = tmp_path / "kubeconfig"
    decoy.write_text(json.dumps(_kubeconfig("https://the-decoy.example:6443")))
    monkeypatch.setenv("KUBECONFIG", str(decoy))
    monkeypatch.setenv("AIRLOOP_IMAGE_REGISTRY", "registry.example:5000/airloop")


def test_the_deployer_uses_the_connections_cluster_and_credentials(connection, tmp_path):
    deployer = KubernetesDeployer.from_settings(AirloopSettings(home=tmp_path), stages.kubernetes_api())

    configuration = deployer.api_client.configuration
    assert configuration.host == SERVER
    assert f"Bearer {TOKEN}" in configuration.api_key.values()
    assert configuration.verify_ssl is False
    assert deployer.registry == "registry.example:5000/airloop"


def test_without_the_hooks_client_the_deployer_falls_back_to_kubeconfig(connection, tmp_path):
    deployer = KubernetesDeployer.from_settings(AirloopSettings(home=tmp_path))

    assert deployer.api_client.configuration.host == "https://the-decoy.example:6443"

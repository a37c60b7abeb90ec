"""The Kubernetes target's image path against a real registry: a version's serving image is built
on the Docker engine, pushed to the registry, and pulled back by digest.

The registry is Debian's `docker-registry` (the CNCF Distribution registry), started here on a
free loopback port (Docker trusts loopback registries without TLS). No Kubernetes cluster runs on
these machines, so the cluster is the one thing stood in for: the last test records the manifests
the deployer would apply instead of applying them (tests/integration/test_3_kubernetes_deploy.py
runs the whole path on a real cluster where there is one).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from docker.errors import ImageNotFound

from airloop.deploy.image import ImageBuilder, image_tag
from airloop.serving.model import ModelInfo, fetch_model
from tests.conftest import free_port, sqlite_champion, unavailable

pytestmark = pytest.mark.integration

REGISTRY_BINARY = "docker-registry"  # Debian's package of the CNCF Distribution registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[str]:
    """A real image registry on a free loopback port, storing under a temporary folder; its host:port."""
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        unavailable("no docker-registry (apt-get install docker-registry; .ci/run installs it)")
    root = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: {address}}}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://{address}/v2/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"docker-registry did not start: {process.stderr.read().decode() if process.stderr else ''}")
        time.sleep(0.2)
    yield address
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def engine(stack_settings) -> Any:
    from airloop.deploy.service import docker_engine

    api = docker_engine()
    if api is None:
        unavailable("no Docker engine answers (run .ci/docker-engine.sh)")
    try:
        api.inspect_image(stack_settings.base_image)
    except Exception:  # noqa: BLE001
        unavailable(f"no base image {stack_settings.base_image}: include/docker/build-base-image.sh")
    return api


@pytest.fixture(scope="module")
def version(tmp_path_factory, landing_home) -> tuple[Path, ModelInfo]:
    """A trained flights model, under a model name of its own (so no other test's image has its tag)."""
    root = tmp_path_factory.mktemp("registry-model")
    settings, decision = sqlite_champion(root, landing_home, max_iter=20, run_id="registry")
    model_dir = root / "model"
    fetched = fetch_model(
        f"models:/{decision.model_name}/{decision.version}", model_dir, tracking_uri=settings.tracking_uri
    )
    return model_dir, ModelInfo(name=f"airloop-registry-test-{uuid.uuid4().hex[:8]}", version=fetched.version)


@pytest.fixture(scope="module")
def builder(engine, stack_settings, version) -> Iterator[ImageBuilder]:
    yield ImageBuilder(engine, stack_settings.home, stack_settings.base_image, stack_settings.offline_build)
    _, info = version
    built = {
        image["Id"] for name in (f"airloop/{info.name}", f"*/airloop/{info.name}") for image in engine.images(name)
    }
    for image_id in built:  # one image, under the build's name and the registry's
        engine.remove_image(image_id, force=True)


def test_a_versions_image_is_pushed_and_pulled_back_by_digest(builder, engine, registry, version):
    model_dir, info = version
    reference = builder.publish(model_dir, info, registry)

    repository = f"{registry}/{image_tag(info.name, info.version)}".rpartition(":")[0]
    assert reference.startswith(f"{repository}@sha256:")
    built = engine.inspect_image(image_tag(info.name, info.version))
    # The registry has it: its manifest answers by digest.
    digest = reference.split("@", 1)[1]
    path = repository.split("/", 1)[1]
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    assert httpx.get(f"http://{registry}/v2/{path}/manifests/{digest}", headers=accept).status_code == 200

    # Gone from the engine under every name, then pulled back by digest: the same image.
    engine.remove_image(built["Id"], force=True)
    with pytest.raises(ImageNotFound):
        engine.inspect_image(built["Id"])
    engine.pull(reference)
    pulled = engine.inspect_image(reference)
    assert pulled["Id"] == built["Id"]
    assert pulled["Config"]["Labels"]["ai.airloop.model.version"] == info.version
    assert pulled["Config"]["Labels"]["ai.airloop.model.name"] == info.name

    # Tagged as a build would have left it, a second publish builds nothing and pushes the same image.
    engine.tag(reference, *image_tag(info.name, info.version).rsplit(":", 1))
    assert builder.publish(model_dir, info, registry) == reference


def test_the_kubernetes_target_runs_the_pushed_image_by_digest(builder, engine, registry, version, stack_settings):
    """The cluster is stood in for (none runs here): the manifests are recorded, not applied."""
    from airloop.deploy.kubernetes import KubernetesDeployer

    applied: list[dict[str, Any]] = []

    class RecordingCluster(KubernetesDeployer):
        def _apply(self, manifest: dict[str, Any]) -> None:
            applied.append(manifest)

        def _wait_rollout(self, name: str, namespace: str) -> None:
            return None

    model_dir, info = version
    deployer = RecordingCluster(object(), image_registry=registry, builder=builder)
    candidate = deployer.start_candidate(model_dir, info)

    assert candidate.image is not None
    assert "@sha256:" in candidate.image
    deployments = [m for m in applied if m["kind"] == "Deployment"]
    assert [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments] == [candidate.image]
    engine.remove_image(candidate.image)
    engine.pull(candidate.image)  # what the cluster would pull is in the registry
    assert candidate.image in engine.inspect_image(candidate.image)["RepoDigests"]

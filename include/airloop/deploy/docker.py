"""Blue/green deployment on a Docker engine.

The stable endpoint is an nginx router container on the serving port. The candidate slot is
the free one of two slot ports beside the serving container: a new version starts there and is
checked there (see `airloop.deploy.gate`) before the router is reloaded to send traffic to it;
only once the promotion is complete is the old container stopped. A candidate that fails is
removed, and the old container never stopped serving. Containers use the host network (this
engine has no bridge), so each listens on its own loopback port.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airloop.deploy import Candidate, DeploymentError, NotServableError, forwarded_serving_env
from airloop.deploy.checks import serving_model, serving_version, wait_healthy
from airloop.deploy.image import DOCKER_DIR, ImageBuilder, build_image
from airloop.serving.model import ModelInfo
from airloop.state import StateLayout

log = logging.getLogger(__name__)

ROLE_LABEL = "ai.airloop.role"
SLOT_LABEL = "ai.airloop.slot"
SLOT_OFFSET = 100  #: the two containers' ports are stable+100 and stable+101 (8100, 8101 by default)
STABLE_PORT_LABEL = "ai.airloop.stable_port"
MODEL_NAME_LABEL = "ai.airloop.model.name"
MODEL_VERSION_LABEL = "ai.airloop.model.version"
SERVING_UID = 10001
ROUTER_IMAGE = "airloop/router:latest"


@dataclass(frozen=True)
class DockerSettings:
    home: Path
    stable_port: int = 8000
    base_image: str = "python:3.11-slim-bookworm"
    router_base_image: str = "debian:bookworm-slim"
    offline: bool = False
    health_timeout: float = 120.0

    @property
    def slot_ports(self) -> tuple[int, int]:
        # Away from the stable port's neighbours, which other services use (the Evidently UI: 8001).
        return self.stable_port + SLOT_OFFSET, self.stable_port + SLOT_OFFSET + 1


class DockerDeployer:
    """Model versions blue/green through a Docker API client (`docker.APIClient`)."""

    target = "docker"

    def __init__(self, api: Any, settings: DockerSettings, *, token: str | None = None) -> None:
        self.api = api
        self.settings = settings
        self.token = token
        self.state = StateLayout(settings.home)
        self.builder = ImageBuilder(api, settings.home, settings.base_image, settings.offline)
        self.router_name = f"airloop-router-{settings.stable_port}"
        self.url = f"http://127.0.0.1:{settings.stable_port}"
        self._previous: dict[str, Any] | None = None  # what served before the last switch: port, version, containers

    # -- Deployer ------------------------------------------------------------------------------

    def endpoint(self, model_name: str) -> str:
        return self.url

    def serving_version(self, model_name: str) -> str | None:
        if not self._router_running():
            return None
        served = serving_model(self.url)
        if served is None or served[0] != model_name:
            return None
        live = [c for c in self._serving_containers() if c["Labels"].get(MODEL_NAME_LABEL) == model_name]
        return served[1] if any(c["Labels"].get(MODEL_VERSION_LABEL) == served[1] for c in live) else None

    def start_candidate(self, model_dir: Path, info: ModelInfo) -> Candidate:
        tag, image_id = self.ensure_image(model_dir, info)
        live_port = self._live_port()
        port = next(p for p in self.settings.slot_ports if p != live_port)
        name = f"airloop-serving-{info.name}-v{info.version}".replace("_", "-")
        self._remove(name)
        self._remove_slot(port)
        container = self._start_serving(name, tag, port, info)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, timeout=self.settings.health_timeout, alive=lambda: self._running(container))
        except NotServableError as err:
            logs = self._logs(container)
            self._remove(container)
            raise NotServableError(f"{err}\nLast log lines of the new container:\n{logs}") from err
        return Candidate(info=info, url=url, instance=name, image=tag, image_id=image_id)

    def discard(self, candidate: Candidate) -> None:
        self._remove(candidate.instance)

    def switch(self, candidate: Candidate) -> None:
        live_port = self._live_port()
        self._previous = {
            "port": live_port,
            "version": serving_version(self.url) if live_port else None,
            "containers": [
                c["Id"] for c in self._serving_containers() if c["Names"][0].lstrip("/") != candidate.instance
            ],
        }
        self._route_to(int(candidate.url.rsplit(":", 1)[1]))
        self._wait_switched(candidate.info.version)

    def switch_back(self) -> None:
        previous, self._previous = self._previous, None
        if previous is None or previous["port"] is None:
            self._remove(self.router_name)  # nothing served before
            return
        self._route_to(previous["port"])
        self._wait_switched(previous["version"])

    def retire_previous(self) -> None:
        previous, self._previous = self._previous, None
        for container in (previous or {}).get("containers", []):
            log.info("stopping %s", container[:12])
            self._remove(container, graceful=True)

    # -- images ------------------------------------------------------------------------------

    def ensure_image(self, model_dir: Path, info: ModelInfo) -> tuple[str, str]:
        """The version's serving image, built if this engine does not have it yet."""
        return self.builder.ensure(model_dir, info)

    def remove_all(self) -> list[str]:
        """Remove the serving containers and the router of this stable port; returns their names."""
        found = self.api.containers(all=True, filters={"label": f"{STABLE_PORT_LABEL}={self.settings.stable_port}"})
        found += self.api.containers(all=True, filters={"name": self.router_name})
        for container in found:
            self._remove(container["Id"])
        return [c["Names"][0].lstrip("/") for c in found]

    # -- containers --------------------------------------------------------------------------

    def _serving_containers(self) -> list[dict[str, Any]]:
        return list(
            self.api.containers(
                filters={"label": [f"{ROLE_LABEL}=serving", f"{STABLE_PORT_LABEL}={self.settings.stable_port}"]}
            )
        )

    def _live_port(self) -> int | None:
        """The slot port the router sends traffic to, or None when it sends none."""
        if not self._router_running():
            return None
        served = serving_version(self.url)
        for container in self._serving_containers():
            slot = container["Labels"].get(SLOT_LABEL, "")
            if container["Labels"].get(MODEL_VERSION_LABEL) == served and slot.isdigit():
                return int(slot)
        return None

    def _start_serving(self, name: str, image: str, port: int, info: ModelInfo) -> str:
        inference = self.state.inference
        inference.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the image runs as this non-root user; partitions may predate it
            for folder, _, files in os.walk(inference):
                os.chown(folder, SERVING_UID, SERVING_UID)
                for file in files:
                    os.chown(os.path.join(folder, file), SERVING_UID, SERVING_UID)
        host_config = self.api.create_host_config(
            network_mode="host",
            binds={str(inference): {"bind": "/var/lib/airloop/inference", "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"},
        )
        labels = {
            ROLE_LABEL: "serving",
            SLOT_LABEL: str(port),
            STABLE_PORT_LABEL: str(self.settings.stable_port),
            MODEL_NAME_LABEL: info.name,
            MODEL_VERSION_LABEL: info.version,
        }
        created = self.api.create_container(
            image,
            name=name,
            labels=labels,
            host_config=host_config,
            environment={
                "AIRLOOP_SERVING_PORT": str(port),
                "AIRLOOP_SERVING_HOST": "127.0.0.1",
                "AIRLOOP_SERVING_IMAGE": image,
                **forwarded_serving_env(),  # the replay clock, the shadow slot's settings
                **({"AIRLOOP_SERVING_TOKEN": self.token} if self.token else {}),
            },
        )
        self.api.start(created["Id"])
        log.info("started %s on port %d", name, port)
        return str(created["Id"])

    def _remove_slot(self, port: int) -> None:
        for container in self.api.containers(all=True, filters={"label": [f"{SLOT_LABEL}={port}"]}):
            self._remove(container["Id"])

    def _remove(self, container: str, *, graceful: bool = False) -> None:
        from docker.errors import NotFound

        try:
            if graceful:
                self.api.stop(container, timeout=15)
            self.api.remove_container(container, force=True)
        except NotFound:
            pass

    def _running(self, container: str) -> bool:
        return bool(self.api.inspect_container(container)["State"]["Running"])

    def _logs(self, container: str) -> str:
        return self.api.logs(container, tail=20).decode(errors="replace")

    def _image_id(self, tag: str) -> str | None:
        from docker.errors import ImageNotFound

        try:
            return str(self.api.inspect_image(tag)["Id"])
        except ImageNotFound:
            return None

    # -- the router ----------------------------------------------------------------------------

    def _route_to(self, port: int) -> None:
        upstream = f"upstream airloop_serving {{ server 127.0.0.1:{port}; keepalive 32; }}\n"
        listen = f"listen 127.0.0.1:{self.settings.stable_port};\n"
        if not self._router_running():
            self._start_router(upstream, listen)
            return
        self._put(self.router_name, {"upstream.conf": upstream})
        result = self.api.exec_start(
            self.api.exec_create(self.router_name, ["nginx", "-c", "/etc/airloop/nginx.conf", "-s", "reload"])
        )
        log.info("router reloaded to port %d %s", port, result.decode(errors="replace").strip())

    def _router_running(self) -> bool:
        from docker.errors import NotFound

        try:
            return bool(self.api.inspect_container(self.router_name)["State"]["Running"])
        except NotFound:
            return False

    def _start_router(self, upstream: str, listen: str) -> None:
        if self._image_id(ROUTER_IMAGE) is None:
            context = self.state.build_context("router")
            context.mkdir(parents=True, exist_ok=True)
            for name in ("router.Dockerfile", "router-nginx.conf"):
                (context / name).write_bytes((DOCKER_DIR / name).read_bytes())
            build_image(
                self.api,
                context,
                ROUTER_IMAGE,
                base_image=self.settings.router_base_image,
                offline=False,
                dockerfile="router.Dockerfile",
            )
        self._remove(self.router_name)
        host_config = self.api.create_host_config(network_mode="host", restart_policy={"Name": "unless-stopped"})
        created = self.api.create_container(
            ROUTER_IMAGE, name=self.router_name, host_config=host_config, labels={ROLE_LABEL: "router"}
        )
        self._put(created["Id"], {"upstream.conf": upstream, "listen.conf": listen})
        self.api.start(created["Id"])
        log.info("started router %s on port %d", self.router_name, self.settings.stable_port)

    def _put(self, container: str, files: dict[str, str]) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, text in files.items():
                data = text.encode()
                member = tarfile.TarInfo(name)
                member.size, member.uid, member.gid, member.mode = len(data), SERVING_UID, SERVING_UID, 0o644
                archive.addfile(member, io.BytesIO(data))
        self.api.put_archive(container, "/etc/airloop", buffer.getvalue())

    def _wait_switched(self, version: str | None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if serving_version(self.url) == version:
                return
            time.sleep(0.5)
        raise DeploymentError(f"the router at {self.url} did not switch to version {version} within {timeout:.0f}s")

"""The serving image: build context (model, serving code, pinned requirements, wheels), build and push."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airloop.deploy import DeploymentError
from airloop.lineage import git_commit
from airloop.settings import PROJECT_ROOT
from airloop.state import StateLayout

if TYPE_CHECKING:
    from airloop.serving.model import ModelInfo

log = logging.getLogger(__name__)

DOCKER_DIR = PROJECT_ROOT / "include" / "docker"
SERVING_REQUIREMENTS = DOCKER_DIR / "serving-requirements.txt"
#: The modules of `airloop` the image holds besides `airloop.serving`: what serving imports
#: (`airloop.tasks`: what a model's task answers and logs). The rest of Airloop is not in it.
SERVING_MODULES = ("__init__.py", "tasks.py")


def image_tag(model_name: str, version: str) -> str:
    """`airloop/<model>:v<version>`, the tag of a version's serving image."""
    return f"airloop/{re.sub(r'[^a-z0-9._-]', '-', model_name.lower())}:v{version}"


def wheelhouse(cache: Path) -> Path:
    """Wheels for the serving requirements, downloaded once on the host (for offline builds)."""
    marker = cache / ".complete"
    if marker.exists() and marker.read_text() == SERVING_REQUIREMENTS.read_text():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    log.info("downloading serving wheels into %s", cache)
    # Debian bookworm (glibc 2.36) runs any manylinux wheel up to 2_36.
    platforms = [arg for minor in range(36, 16, -1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        *platforms,
        "--platform",
        "manylinux2014_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "-r",
        str(SERVING_REQUIREMENTS),
        "-d",
        str(cache),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DeploymentError(f"pip download of the serving wheels failed: {done.stderr[-2000:]}")
    marker.write_text(SERVING_REQUIREMENTS.read_text())
    return cache


def prepare_context(model_dir: Path, dest: Path, *, wheels: Path | None) -> Path:
    """A build context with everything the serving Dockerfile copies."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copy2(DOCKER_DIR / "serving.Dockerfile", dest / "Dockerfile")
    shutil.copy2(SERVING_REQUIREMENTS, dest / "serving-requirements.txt")
    package, app = PROJECT_ROOT / "include" / "airloop", dest / "app"
    (app / "airloop").mkdir(parents=True)
    for module in SERVING_MODULES:
        shutil.copy2(package / module, app / "airloop" / module)
    shutil.copytree(package / "serving", app / "airloop" / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(model_dir, app / "model")
    (dest / "wheels").mkdir()
    if wheels is not None:
        for wheel in wheels.glob("*.whl"):
            shutil.copy2(wheel, dest / "wheels" / wheel.name)
    return dest


def build_image(
    api: Any,
    context: Path,
    tag: str,
    *,
    base_image: str,
    offline: bool,
    dockerfile: str = "Dockerfile",
    extra_args: dict[str, str] | None = None,
) -> str:
    """`docker build` through the engine's API (host network, so apt and pip reach their mirrors).

    Labels come from the Dockerfile: each label given here would add a layer, and every layer
    copies the whole file system on the vfs storage driver.
    """
    buildargs = {"BASE_IMAGE": base_image, "GIT_COMMIT": git_commit(), **(extra_args or {})}
    if offline:
        buildargs["PIP_ARGS"] = "--no-index --find-links /tmp/wheels"
    log.info("building %s from %s (base %s%s)", tag, context, base_image, ", offline" if offline else "")
    errors: list[str] = []
    tail: list[str] = []
    for chunk in api.build(
        path=str(context),
        dockerfile=dockerfile,
        tag=tag,
        buildargs=buildargs,
        network_mode="host",
        rm=True,
        forcerm=True,
        decode=True,
    ):
        if "error" in chunk:
            errors.append(chunk["error"])
        elif text := chunk.get("stream", "").strip():
            tail = [*tail[-30:], text]
            # Each step is progress a person can follow; the rest (pip, apt) only when it fails.
            log.log(logging.INFO if text.startswith("Step ") else logging.DEBUG, "docker build: %s", text)
    if errors:
        raise DeploymentError(f"docker build of {tag} failed: {' '.join(errors)}\n" + "\n".join(tail[-15:]))
    return str(api.inspect_image(tag)["Id"])


def push_image(api: Any, tag: str, registry: str) -> str:
    """Push local image `tag` to `registry` (host[:port][/path]); its reference by digest.

    By digest (`registry/airloop/<model>@sha256:...`), so what a cluster runs is exactly what was
    pushed, whatever later happens to the tag.
    """
    repository, _, version = f"{registry.rstrip('/')}/{tag}".rpartition(":")
    api.tag(tag, repository, version)
    log.info("pushing %s:%s", repository, version)
    errors: list[str] = []
    digest = None
    for chunk in api.push(repository, tag=version, stream=True, decode=True):
        if "error" in chunk:
            errors.append(str(chunk["error"]))
        digest = (chunk.get("aux") or {}).get("Digest", digest)
    if errors or digest is None:
        raise DeploymentError(f"docker push of {repository}:{version} failed: {' '.join(errors) or 'no digest'}")
    log.info("pushed %s@%s", repository, digest)
    return f"{repository}@{digest}"


@dataclass(frozen=True)
class ImageBuilder:
    """Builds a version's serving image on a Docker engine (once), and pushes it to a registry."""

    api: Any
    home: Path
    base_image: str
    offline: bool = False

    def ensure(self, model_dir: Path, info: ModelInfo) -> tuple[str, str]:
        """The version's tag and image id, built if this engine does not have it yet."""
        from docker.errors import ImageNotFound

        tag = image_tag(info.name, info.version)
        try:
            return tag, str(self.api.inspect_image(tag)["Id"])
        except ImageNotFound:
            pass
        state = StateLayout(self.home)
        wheels = wheelhouse(state.wheels) if self.offline else None
        context = prepare_context(model_dir, state.build_context(tag), wheels=wheels)
        return tag, build_image(
            self.api,
            context,
            tag,
            base_image=self.base_image,
            offline=self.offline,
            extra_args={"MODEL_NAME": info.name, "MODEL_VERSION": info.version},
        )

    def publish(self, model_dir: Path, info: ModelInfo, registry: str) -> str:
        """The version's image in `registry`, built and pushed; its reference by digest."""
        tag, _ = self.ensure(model_dir, info)
        return push_image(self.api, tag, registry)

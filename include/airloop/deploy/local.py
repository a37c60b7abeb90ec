"""Local deployment: the serving app as a uvicorn process on this machine (the embedded demo).

The new version is started on a spare port and must pass its health check and smoke test
there; only then is the process on the stable port replaced. If the new version fails, the
old process is never touched. The switch itself leaves the port closed for a few seconds:
zero-downtime switching is what the Docker and Kubernetes targets are for.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from airloop.deploy import Deployment, DeploymentError
from airloop.deploy.checks import serving_version, smoke_test, wait_healthy
from airloop.serving.model import ModelInfo
from airloop.stack.embedded import alive, spawn, terminate_group

log = logging.getLogger(__name__)


class LocalDeployer:
    """One serving process per state folder, its pid in `<home>/run/serving.pid`."""

    def __init__(self, home: Path, stable_port: int = 8000, health_timeout: float = 120.0) -> None:
        self.home = home
        self.stable_port = stable_port
        self.health_timeout = health_timeout
        self.pid_file = home / "run" / "serving.pid"

    def deploy(self, model_dir: Path, info: ModelInfo) -> Deployment:
        endpoint = f"http://127.0.0.1:{self.stable_port}"
        previous = serving_version(endpoint) if self._pid() else None
        if previous == info.version:
            return Deployment(
                target="local",
                model_name=info.name,
                version=info.version,
                endpoint=endpoint,
                instance=f"pid {self._pid()}",
                previous_version=previous,
                unchanged=True,
            )
        spare = _free_port()  # never a neighbour of the stable port: 8001 is the Evidently UI's
        candidate = self._spawn(model_dir, spare, "serving-candidate")
        try:
            wait_healthy(f"http://127.0.0.1:{spare}", timeout=self.health_timeout, alive=lambda: alive(candidate))
            smoke_test(f"http://127.0.0.1:{spare}", model_dir)
        except Exception as err:
            raise DeploymentError(
                f"{info.name} version {info.version} was not deployed: {err}. Rolled back: "
                f"{'version ' + previous if previous else 'nothing'} keeps serving at {endpoint}. "
                f"Log: {self.home / 'logs' / 'serving-candidate.log'}"
            ) from err
        finally:
            terminate_group(candidate)
        if (old := self._pid()) is not None:
            terminate_group(old)
        pid = self._spawn(model_dir, self.stable_port, "serving")
        self.pid_file.write_text(str(pid))
        wait_healthy(endpoint, timeout=self.health_timeout, alive=lambda: alive(pid))
        log.info("%s version %s serves at %s (pid %d)", info.name, info.version, endpoint, pid)
        return Deployment(
            target="local",
            model_name=info.name,
            version=info.version,
            endpoint=endpoint,
            instance=f"pid {pid}",
            previous_version=previous,
        )

    def stop(self) -> bool:
        pid = self._pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        terminate_group(pid)
        return True

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def _spawn(self, model_dir: Path, port: int, name: str) -> int:
        env = {
            **os.environ,
            "AIRLOOP_SERVING_MODEL_DIR": str(model_dir),
            "AIRLOOP_SERVING_PORT": str(port),
            "AIRLOOP_SERVING_HOST": "127.0.0.1",
            "AIRLOOP_SERVING_INFERENCE_LOG_DIR": str(self.home / "inference"),
        }
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        pid = spawn([sys.executable, "-m", "airloop.serving"], env, self.home / "logs" / f"{name}.log")
        log.info("started %s for %s on port %d (pid %d)", name, model_dir.name, port, pid)
        return pid


def _free_port() -> int:
    """A loopback port nothing listens on now, for the candidate's checks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

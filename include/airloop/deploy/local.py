"""Local deployment: the serving app as a uvicorn process on this machine (the embedded demo).

The candidate slot is a process on a spare port, where the gate checks it; the stable port's
process is replaced only after that. The switch itself leaves the port closed for a few
seconds: zero-downtime switching is what the Docker and Kubernetes targets are for.

What serves is found by looking, not from a file a killed deploy may not have written: the stable
port's process is the serving app whose environment names this port and this state folder's
inference log. Replacing or stopping it holds a lock on the state folder, so two deploys that
overlap (a task marked failed still runs until its supervisor kills it, and the pool has already
let the next one start) leave one process on the port, never a stray that a later deploy cannot
see or replace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from pathlib import Path

from airloop.deploy import Candidate, DeploymentError, NotServableError
from airloop.deploy.checks import serving_model, wait_healthy
from airloop.locks import exclusive
from airloop.processes import alive, spawn, terminate_group, terminate_groups
from airloop.serving.model import ModelInfo
from airloop.state import StateLayout

log = logging.getLogger(__name__)


class LocalDeployer:
    """One serving process on the stable port per state folder, found by its environment (see the module)."""

    target = "local"

    def __init__(
        self, home: Path, stable_port: int = 8000, health_timeout: float = 120.0, *, token: str | None = None
    ) -> None:
        self.home = home
        self.stable_port = stable_port
        self.health_timeout = health_timeout
        self.token = token
        self.url = f"http://127.0.0.1:{stable_port}"
        self.state = StateLayout(home)
        self.lock_file = self.state.run / "serving.lock"
        #: One file per candidate process (named by its pid, holding the pid of the process that
        #: started it), so a candidate whose deploy was killed mid-gate is found and stopped.
        self.candidates_dir = self.state.run / "candidates"
        # Each stable port's processes log apart: one pipeline's serving log is its own.
        self.log_name = f"serving-{stable_port}"
        self.candidate_log_name = f"serving-candidate-{stable_port}"
        self._candidates: dict[str, tuple[int, Path]] = {}  # candidate url -> (pid, model dir)
        self._previous_model: Path | None = None

    # -- Deployer ------------------------------------------------------------------------------

    def endpoint(self, model_name: str) -> str:
        return self.url

    def serving_version(self, model_name: str) -> str | None:
        if self._pid() is None:
            return None
        served = serving_model(self.url)
        return served[1] if served and served[0] == model_name else None

    def start_candidate(self, model_dir: Path, info: ModelInfo) -> Candidate:
        self.stop_orphaned_candidates()
        port = _free_port()  # never a neighbour of the stable port: 8001 is the Evidently UI's
        url = f"http://127.0.0.1:{port}"
        pid = self._spawn(model_dir, port, self.candidate_log_name)
        self.candidates_dir.mkdir(parents=True, exist_ok=True)
        (self.candidates_dir / str(pid)).write_text(str(os.getpid()))
        try:
            wait_healthy(url, timeout=self.health_timeout, alive=lambda: alive(pid))
        except NotServableError as err:
            self._stop_candidate(pid)
            raise NotServableError(f"{err}. Log: {self.state.service_log(self.candidate_log_name)}") from err
        self._candidates[url] = (pid, model_dir)
        return Candidate(info=info, url=url, instance=f"pid {pid}")

    def discard(self, candidate: Candidate) -> None:
        if (found := self._candidates.pop(candidate.url, None)) is not None:
            self._stop_candidate(found[0])

    def stop_orphaned_candidates(self) -> list[int]:
        """Stop candidate processes whose deploy died before discarding them (a task killed mid-gate).

        A candidate whose deploy still runs (another gate on this state folder) is left alone.
        Returns the pids stopped.
        """
        orphans = []
        for record in sorted(self.candidates_dir.glob("*")) if self.candidates_dir.is_dir() else []:
            try:
                pid, owner = int(record.name), int(record.read_text())
            except (ValueError, OSError):
                record.unlink(missing_ok=True)
                continue
            if alive(owner):
                continue
            if alive(pid) and _is_serving(pid):  # not a later process that got the pid
                log.warning("stopping candidate pid %d: the deploy that started it (pid %d) died mid-gate", pid, owner)
                orphans.append(pid)
            record.unlink(missing_ok=True)
        if orphans:
            terminate_groups(orphans)
        return orphans

    def _stop_candidate(self, pid: int) -> None:
        terminate_group(pid)
        (self.candidates_dir / str(pid)).unlink(missing_ok=True)

    def switch(self, candidate: Candidate) -> None:
        # One process per port: the checked candidate makes way for its twin on the stable port.
        _, model_dir = self._candidates[candidate.url]
        self.discard(candidate)
        self._previous_model = self._model_dir()
        self._serve(model_dir)

    def switch_back(self) -> None:
        if self._previous_model is None:
            self.stop()
            return
        self._serve(self._previous_model)

    def retire_previous(self) -> None:
        self._previous_model = None  # its process already made way at the switch

    # -- the stable port -------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the stable port's process; False if none ran."""
        with self._port_lock():
            pids = self._stable_pids()
            terminate_groups(pids)
        return bool(pids)

    def _serve(self, model_dir: Path) -> None:
        with self._port_lock():
            if old := self._stable_pids():
                terminate_groups(old)
            pid = self._spawn(model_dir, self.stable_port, self.log_name)
            try:
                wait_healthy(self.url, timeout=self.health_timeout, alive=lambda: alive(pid))
            except NotServableError as err:  # it passed in the candidate slot: the port or the host is at fault
                raise DeploymentError(f"{model_dir.name} did not come up on {self.url}: {err}") from err
        log.info("%s serves at %s (pid %d)", model_dir, self.url, pid)

    def _port_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while the stable port's process is replaced or stopped; the kernel frees it if we die."""
        return exclusive(self.lock_file)

    def _stable_pids(self) -> list[int]:
        """The serving processes on the stable port of this state folder (one, unless a deploy was killed)."""
        return [pid for pid, _ in _serving_processes(self.stable_port, self.state.inference)]

    def _pid(self) -> int | None:
        found = self._stable_pids()
        return found[0] if found else None

    def _model_dir(self) -> Path | None:
        found = _serving_processes(self.stable_port, self.state.inference)
        return Path(found[0][1]) if found else None

    def _spawn(self, model_dir: Path, port: int, name: str) -> int:
        env = {
            **os.environ,
            "AIRLOOP_SERVING_MODEL_DIR": str(model_dir),
            "AIRLOOP_SERVING_PORT": str(port),
            "AIRLOOP_SERVING_HOST": "127.0.0.1",
            "AIRLOOP_SERVING_INFERENCE_LOG_DIR": str(self.state.inference),
            "AIRLOOP_SERVING_TOKEN": self.token or "",
        }
        if not self.token:  # the token this deployer was given, not one left in the environment
            del env["AIRLOOP_SERVING_TOKEN"]
        self.state.run.mkdir(parents=True, exist_ok=True)
        pid = spawn([sys.executable, "-m", "airloop.serving"], env, self.state.service_log(name))
        log.info("started %s for %s on port %d (pid %d)", name, model_dir.name, port, pid)
        return pid


def _serving_processes(port: int, inference_dir: Path) -> list[tuple[int, str]]:
    """(pid, model dir) of each serving app that leads its group on `port` and logs to `inference_dir`."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        env, cmdline = process.info["environ"] or {}, process.info["cmdline"] or []
        if (
            "airloop.serving" in cmdline
            and env.get("AIRLOOP_SERVING_PORT") == str(port)
            and env.get("AIRLOOP_SERVING_INFERENCE_LOG_DIR") == str(inference_dir)
            and _leads_group(process.pid)
        ):
            found.append((process.pid, env.get("AIRLOOP_SERVING_MODEL_DIR", "")))
    return sorted(found)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _is_serving(pid: int) -> bool:
    """Whether `pid` runs the serving app (`python -m airloop.serving`)."""
    try:
        return b"airloop.serving" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _free_port() -> int:
    """A loopback port nothing listens on now, for the candidate's checks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

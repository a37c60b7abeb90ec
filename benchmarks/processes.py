"""Fresh interpreters and background servers for the benchmarks, each stopped by its own pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The last line a worker prints to stdout starts with this, then its result as JSON.
RESULT_MARK = "BENCH_RESULT "


class BenchmarkError(RuntimeError):
    """A worker or server failed; the message carries the end of its output."""


def free_port() -> int:
    """A TCP port nothing listens on now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def report(result: dict[str, Any]) -> None:
    """Hand `result` back to the parent: the worker's last stdout line."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_worker(module: str, args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float) -> Any:
    """`python -m module args...` in a fresh interpreter; returns what it passed to :func:`report`."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    marked = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not marked:
        raise BenchmarkError(
            f"{module} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}{done.stdout[-1000:]}"
        )
    return json.loads(marked[-1].removeprefix(RESULT_MARK))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB: Linux's VmHWM.

    Not `ru_maxrss`: it survives exec, so a worker would report its parent's peak if larger.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError("no VmHWM in /proc/self/status: peak memory needs Linux")


def reset_peak_rss() -> None:
    """Lower this process's VmHWM to its current resident memory (Linux `/proc/self/clear_refs`), so
    the next `peak_rss_mb` is the peak of what runs after this call."""
    Path("/proc/self/clear_refs").write_text("5")


class Server:
    """A server command in its own session, waited for on a URL, stopped with its children."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_url: str, timeout: float = 180.0) -> None:
        """Start it and wait until `ready_url` answers 200."""
        self.launch()
        self.wait_ready(ready_url, timeout)

    def launch(self) -> None:
        """Start it in the background; :meth:`wait_ready` waits for it."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, ready_url: str, timeout: float = 180.0) -> None:
        """Wait until `ready_url` answers 200; stop it and raise if it exits or times out."""
        if self.process is None:
            raise BenchmarkError(f"{self.name} was not launched")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkError(f"{self.name} exited {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.3)
        self.stop()
        raise BenchmarkError(f"{self.name} did not answer {ready_url} within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

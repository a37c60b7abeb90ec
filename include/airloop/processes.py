"""Background processes: start one in a session of its own, see whether it lives, stop its group.

The low module both the stacks (`airloop.stack`) and the local deployer (`airloop.deploy.local`)
start their servers with; it knows nothing of either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def spawn(command: list[str], env: dict[str, str], logfile: Path, *, cwd: Path | None = None) -> int:
    """Start `command` in the background, output appended to `logfile`; returns its pid.

    It gets a session of its own, so `terminate_group` stops it with its children.
    """
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    return process.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def terminate_group(pid: int, grace: float = 20.0) -> None:
    """SIGTERM the process group `pid` leads, then SIGKILL whatever is left after `grace`."""
    terminate_groups([pid], grace)


def terminate_groups(pids: list[int], grace: float = 20.0) -> None:
    """SIGTERM the process groups the `pids` lead, together; SIGKILL what is left after `grace`."""
    remaining: set[int] = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            remaining.add(pid)
    _wait_for_groups(remaining, grace)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # SIGKILL is not instant either: return once they are gone, so a restart finds the ports free.
    _wait_for_groups(remaining, 5.0)


def _wait_for_groups(remaining: set[int], timeout: float) -> None:
    """Wait until the groups in `remaining` are gone (removing them from it), at most `timeout`."""
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        for pid in list(remaining):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if this process started it
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                remaining.discard(pid)
        if remaining:
            time.sleep(0.3)

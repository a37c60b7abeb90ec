"""The local target's candidate slot when the deploy that started it dies mid-gate (a killed task)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from airloop.deploy.local import LocalDeployer
from airloop.processes import alive, spawn, terminate_group

from .conftest import free_port

#: A deploy that starts a candidate, says its pid, and is killed before it can discard it.
KILLED_MID_GATE = """
import json, os, signal, sys
from pathlib import Path
from airloop.deploy.local import LocalDeployer
from airloop.serving.model import read_model_info
home, port, model_dir = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
candidate = LocalDeployer(home, port).start_candidate(model_dir, read_model_info(model_dir))
print(json.dumps({"url": candidate.url, "instance": candidate.instance}), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_candidate_left_by_a_killed_deploy_is_stopped_by_the_next_one(store, tmp_path):
    home, port = tmp_path / ".airloop", free_port()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_GATE, str(home), str(port), str(store.model_dirs["1"])],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    orphan = int(json.loads(killed.stdout)["instance"].removeprefix("pid "))
    assert alive(orphan)  # the candidate outlived its deploy: nothing else would ever stop it

    # A candidate whose deploy is still running (this test process) is another gate's: left alone.
    busy = spawn([sys.executable, "-c", "import time; time.sleep(120)"], {}, tmp_path / "other.log")
    (home / "run" / "candidates" / str(busy)).write_text(str(os.getpid()))
    try:
        assert LocalDeployer(home, port).stop_orphaned_candidates() == [orphan]
        assert not alive(orphan)
        assert alive(busy)
        assert sorted(p.name for p in (home / "run" / "candidates").iterdir()) == [str(busy)]
    finally:
        terminate_group(busy)
        if alive(orphan):
            terminate_group(orphan)


def test_a_process_left_on_the_stable_port_is_seen_replaced_and_stopped(store, tmp_path):
    """A deploy killed after it started the stable port's process (or two deploys that overlapped)
    leaves a process no record names: the next deploy must see it and replace it, never start a
    twin that cannot bind while the leftover keeps answering with the old version."""
    from airloop.deploy.checks import serving_model, wait_healthy

    home, port = tmp_path / ".airloop", free_port()
    url = f"http://127.0.0.1:{port}"
    left = LocalDeployer(home, port)._spawn(store.model_dirs["1"], port, "serving")  # nothing else records it
    try:
        wait_healthy(url, timeout=120, alive=lambda: alive(left))
        deployer = LocalDeployer(home, port)
        assert deployer.serving_version(store.model_name) == "1"

        deployer._serve(store.model_dirs["2"])
        assert not alive(left)
        assert serving_model(url) == (store.model_name, "2")
        again = LocalDeployer(home, port)
        assert again.serving_version(store.model_name) == "2"
        assert again._model_dir() == store.model_dirs["2"]

        assert again.stop()
        assert again.serving_version(store.model_name) is None
        assert serving_model(url) is None
        assert not again.stop()
    finally:
        if alive(left):
            terminate_group(left)
        LocalDeployer(home, port).stop()

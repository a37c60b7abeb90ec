"""The Docker engine is asked for only where its socket is: a host without one is a normal case.

With Docker missing, the Docker provider's hook logs an error on each try; the deploy and
monitoring tasks ask for the engine on every run, so a host without Docker (the local target)
would show an error in each of their logs.
"""

from __future__ import annotations

import socket

from structlog.testing import capture_logs

from airloop_airflow import stages
from tests.conftest import unavailable


def test_a_host_without_the_socket_has_no_engine_and_logs_no_error(monkeypatch, tmp_path):
    monkeypatch.setattr(stages, "DOCKER_SOCKET", tmp_path / "docker.sock")
    with capture_logs() as logged:  # Airflow's hooks log through structlog
        assert stages.docker_api() is None
    assert [e for e in logged if e["log_level"] in ("warning", "error", "critical")] == []


def test_a_stopped_engine_s_socket_file_has_no_engine_and_logs_no_error(monkeypatch, tmp_path):
    left_behind = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as engine:
        engine.bind(str(left_behind))  # the file stays once the engine is gone; nothing listens on it
    monkeypatch.setattr(stages, "DOCKER_SOCKET", left_behind)
    with capture_logs() as logged:
        assert stages.docker_api() is None
    assert [e for e in logged if e["log_level"] in ("warning", "error", "critical")] == []


def test_the_engine_on_its_socket_answers():
    if not stages._listening(stages.DOCKER_SOCKET):
        unavailable(f"no Docker engine listens on {stages.DOCKER_SOCKET} (run .ci/docker-engine.sh)")
    api = stages.docker_api()
    assert api is not None
    assert api.ping()

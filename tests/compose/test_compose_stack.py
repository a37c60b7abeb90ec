"""The production stack, started for real: docker-compose.yaml with images built here, offline.

The images come from include/docker/compose-offline.yaml (the Debian base, Debian's Postgres and
Redis, the Airloop image from a wheelhouse); everything else is docker-compose.yaml as users run
it, with a .env of fresh secrets and published ports on free loopback ports. The test uses the
stack as a person would: through Airflow's REST API with the admin login, MLflow's REST API with
basic auth, and the serving endpoint with its token. It runs three Celery workers (`--scale
airflow-worker=3`) that share two pipelines' training runs, checks the champion in MLflow's Postgres
database, sees serving answer for it, promotes a second version through the pipeline's deploy DAG
and sees serving follow without a restart, then `down -v` leaves nothing.

`make test-compose` runs it (a few minutes; longer where Docker runs on the vfs storage driver,
which copies the whole image for every layer and every container).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from airloop.settings import PROJECT_ROOT
from airloop.stack.airflow_api import AirflowClient
from tests.conftest import free_port, unavailable

pytestmark = pytest.mark.compose

OVERRIDE = "include/docker/compose-offline.yaml"
MODEL = "airloop-flights-delay"
TRAINING = "airloop_flights_training"
SECOND_TRAINING = "airloop_arrival_delay_training"  # include/pipelines/arrival_delay.yaml, the same landing zone
WORKERS = 3
DEPLOY = "airloop_flights_deploy"
SECRETS = (
    "POSTGRES_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRLOOP_ADMIN_PASSWORD",
    "AIRLOOP_MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "AIRLOOP_SERVING_TOKEN",
)


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    env_file: Path
    started: float = 0.0

    def compose(self, *args: str, timeout: float = 1200, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            "docker-compose",
            "--project-name",
            self.project,
            "--env-file",
            str(self.env_file),
            "-f",
            "docker-compose.yaml",
            "-f",
            OVERRIDE,
            *args,
        ]
        # Creating a container copies the image on the vfs storage driver (.ci/docker-engine.sh's
        # fallback): slower than compose's 60 s default.
        env = {**os.environ, "COMPOSE_HTTP_TIMEOUT": "900"}
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def url(self, port_variable: str) -> str:
        return f"http://127.0.0.1:{self.env[port_variable]}"

    def containers(self) -> dict[str, dict[str, Any]]:
        """Each service container of the project (not `run` one-offs), by name, as `docker inspect` shows it."""
        listed = subprocess.run(
            [
                "docker",
                "ps",
                "--all",
                "--quiet",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                "label=com.docker.compose.oneoff=False",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if not listed:
            return {}
        inspected = subprocess.run(["docker", "inspect", *listed], capture_output=True, text=True, check=True)
        return {c["Name"].lstrip("/"): c for c in json.loads(inspected.stdout)}


def _env_file(root: Path) -> tuple[dict[str, str], Path]:
    from cryptography.fernet import Fernet

    env = {name: secrets.token_hex(16) for name in SECRETS}
    env["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
    for variable in ("AIRLOOP_AIRFLOW_PORT", "AIRLOOP_MLFLOW_PORT", "AIRLOOP_EVIDENTLY_PORT", "AIRLOOP_SERVING_PORT"):
        env[variable] = str(free_port())
    env["AIRLOOP_AIRFLOW_URL"] = f"http://localhost:{env['AIRLOOP_AIRFLOW_PORT']}"
    env["AIRLOOP_SERVING_FOLLOW_POLL_SECONDS"] = "2"
    path = root / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)
    return env, path


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    from airloop.deploy.service import docker_engine

    if shutil.which("docker-compose") is None:
        unavailable("no docker-compose (apt-get install docker-compose; .ci/run installs it)")
    if docker_engine() is None:
        unavailable("no Docker engine answers (run .ci/docker-engine.sh)")
    env, env_file = _env_file(tmp_path_factory.mktemp("compose"))
    found = Stack(f"airloop-test-{secrets.token_hex(3)}", env, env_file)
    built = subprocess.run(
        ["include/docker/build-offline-images.sh"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stdout + built.stderr
    found.compose("build", "postgres", "redis", "airflow-init", timeout=2400)
    try:
        found.started = time.monotonic()
        found.compose("up", "-d", "--scale", f"airflow-worker={WORKERS}")
        yield found
    finally:
        logs = found.compose("logs", "--no-color", "--tail", "40", check=False).stdout
        print(logs[-20000:])
        found.compose("down", "--volumes", "--remove-orphans", check=False)
        label = f"label=com.docker.compose.project={found.project}"
        listings = {
            "container": ["docker", "ps", "--all"],
            "volume": ["docker", "volume", "ls"],
            "network": ["docker", "network", "ls"],
        }
        left = {
            kind: subprocess.run(
                [*command, "--quiet", "--filter", label], capture_output=True, text=True, check=True
            ).stdout.split()
            for kind, command in listings.items()
        }
        assert left == {"container": [], "volume": [], "network": []}, f"left behind by down -v: {left}"


def _wait(condition: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(3)


def test_the_stack_trains_on_celery_registers_in_postgres_serves_and_follows_promotions(stack):
    # Every service with a healthcheck becomes healthy; airflow-init ran and exited 0.
    def healthy() -> bool:
        containers = stack.containers()
        states = {name: c["State"] for name, c in containers.items()}
        # Serving is healthy once there is a champion to serve: checked below.
        waited = {name: s for name, s in states.items() if "Health" in s and "_serving_" not in name}
        return len(states) >= 9 + WORKERS and all(s["Health"]["Status"] == "healthy" for s in waited.values())

    _wait(healthy, "every service healthy", timeout=900)
    print(f"every service healthy {time.monotonic() - stack.started:.0f} s after `up`")
    init = [c for name, c in stack.containers().items() if "airflow-init" in name]
    assert init
    assert init[0]["State"]["ExitCode"] == 0

    airflow_url, mlflow_url = stack.url("AIRLOOP_AIRFLOW_PORT"), stack.url("AIRLOOP_MLFLOW_PORT")
    serving_url = stack.url("AIRLOOP_SERVING_PORT")
    # Nothing answers anonymously.
    assert httpx.get(f"{airflow_url}/api/v2/dags").status_code == 401
    assert httpx.get(f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1").status_code == 401
    mlflow_auth = ("admin", stack.env["AIRLOOP_MLFLOW_ADMIN_PASSWORD"])

    today = dt.datetime.now(dt.UTC).date()
    fill = f"airloop fill --start {today - dt.timedelta(days=45)} --end {today}"  # the 30-day window, and more
    stack.compose("run", "--rm", "airloop-cli", "bash", "-c", fill)

    with AirflowClient(airflow_url, "admin", stack.env["AIRLOOP_ADMIN_PASSWORD"], timeout=60) as airflow:
        # Two pipelines train at once, on three Celery workers: the tasks ran in the workers'
        # containers (not the scheduler's), and on more than one of them.
        runs = {}
        for dag in (TRAINING, SECOND_TRAINING):
            airflow.wait_for_dag(dag, timeout=300)
            runs[dag] = airflow.trigger(dag, logical_date=None, conf={"reason": "compose test: the first champion"})
        hosts: dict[str, int] = {}
        for dag, run in runs.items():
            final = airflow.follow(dag, run["dag_run_id"], timeout=1200)
            assert final["state"] == "success", airflow.task_log(dag, run["dag_run_id"], "train")
            for ti in airflow.task_instances(dag, run["dag_run_id"]):
                if ti["state"] == "success":
                    hosts[ti["hostname"]] = hosts.get(ti["hostname"], 0) + 1
        workers = {c["Config"]["Hostname"] for name, c in stack.containers().items() if "airflow-worker" in name}
        print(f"task instances per worker: {hosts}")
        print(_memory(stack))
        assert len(workers) == WORKERS
        assert set(hosts) <= workers
        assert len(hosts) >= 2, f"one worker ran every task: {hosts}"

        def champion() -> str | None:
            answer = httpx.get(
                f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
                params={"name": MODEL, "alias": "champion"},
                auth=mlflow_auth,
            )
            return answer.json()["model_version"]["version"] if answer.status_code == 200 else None

        first = champion()
        assert first is not None
        # MLflow's registry is the Postgres database `mlflow`.
        rows = stack.compose(
            "exec",
            "-T",
            "postgres",
            "psql",
            "-U",
            "airflow",
            "-d",
            "mlflow",
            "-tAc",
            f"SELECT version FROM model_versions WHERE name = '{MODEL}' ORDER BY version",
        ).stdout.split()
        assert rows == [first]

        # Serving follows `champion`: it loads the first, answers with the token only.
        token = {"Authorization": f"Bearer {stack.env['AIRLOOP_SERVING_TOKEN']}"}
        _wait(lambda: httpx.get(f"{serving_url}/health").status_code == 200, "serving healthy", timeout=300)
        assert httpx.get(f"{serving_url}/version").json()["version"] == first
        example = _wait(lambda: _input_example(stack), "the served model's input example", timeout=30)
        json_type = {"Content-Type": "application/json"}
        assert httpx.post(f"{serving_url}/invocations", content=example, headers=json_type).status_code == 401
        answer = httpx.post(f"{serving_url}/invocations", content=example, headers={**json_type, **token})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"]

        # A second version (the same model registered again), promoted through the pipeline's deploy
        # DAG: serving swaps it in, with no restart and no person.
        source = httpx.get(
            f"{mlflow_url}/api/2.0/mlflow/model-versions/get",
            params={"name": MODEL, "version": first},
            auth=mlflow_auth,
        ).json()["model_version"]
        created = httpx.post(
            f"{mlflow_url}/api/2.0/mlflow/model-versions/create",
            json={
                "name": MODEL,
                "source": source["source"],
                "run_id": source["run_id"],
                "model_id": source["source"].removeprefix("models:/"),  # MLflow 3: the logged model it is of
            },
            auth=mlflow_auth,
        )
        assert created.status_code == 200, created.text
        second = created.json()["model_version"]["version"]
        run = airflow.trigger(
            DEPLOY, logical_date=None, conf={"version": second, "reason": "compose test: a promotion"}
        )
        final = airflow.follow(DEPLOY, run["dag_run_id"], timeout=600)
        assert final["state"] == "success", airflow.task_log(DEPLOY, run["dag_run_id"], "deploy")
        assert champion() == second
        _wait(
            lambda: httpx.get(f"{serving_url}/version").json()["version"] == second,
            "serving the promoted version",
            timeout=120,
        )
        answer = httpx.post(f"{serving_url}/invocations", content=example, headers={**json_type, **token})
        assert answer.status_code == 200, answer.text
        restarts = [c["RestartCount"] for name, c in stack.containers().items() if name.endswith("serving_1")]
        assert restarts == [0]


def _memory(stack: Stack) -> str:
    """What each running container uses now, as `docker stats` says: the README's figures."""
    running = [name for name, c in stack.containers().items() if c["State"]["Running"]]
    stats = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *running],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return f"memory in use:\n{stats}"


def _input_example(stack: Stack) -> bytes | None:
    """The served version's input example, read in the serving container."""
    done = stack.compose(
        "exec",
        "-T",
        "serving",
        "bash",
        "-c",
        'cat "$(ls -d /tmp/airloop-serving/v* | head -1)/serving_input_example.json"',
        check=False,
    )
    return done.stdout.encode() if done.returncode == 0 and done.stdout.strip() else None

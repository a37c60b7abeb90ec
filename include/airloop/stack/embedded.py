"""The embedded stack: Airflow 3 (SQLite, LocalExecutor), an MLflow server and the Evidently UI,
under AIRLOOP_HOME.

The same code runs the scale-out shape by configuration: with `executor=CeleryExecutor`,
`database_url` and `mlflow_backend_uri` on Postgres and `broker_url` on Redis, Airflow runs its
tasks on `airflow celery worker` processes, and with `mlflow_auth` MLflow requires a login.

Each service is a background process whose pid is kept in `<home>/run/`; `down` stops exactly
those processes (and their children) and nothing else. Starting again reuses what runs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from airloop.processes import alive, spawn, terminate_groups
from airloop.settings import AirloopSettings
from airloop.stack import mlflow_auth

if TYPE_CHECKING:
    from airloop.stack.airflow_api import AirflowClient

log = logging.getLogger(__name__)

AIRFLOW_COMPONENTS = ("scheduler", "dag-processor", "triggerer")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
#: What the process that forks Airflow's task processes imports first: the libraries the tasks
#: use, and Airflow's API app, which loading the plugins folder imports in every task process
#: (the Airloop page's module; 3 s a task here, and a Starlette warning in every task log).
TASK_PRELOAD = ("airloop.preload", "airflow.api_fastapi.app")

#: Airflow's settings that fork task processes from one that imported `TASK_PRELOAD`, per
#: executor: the LocalExecutor's workers come from a forkserver that preloads it, a Celery worker
#: imports it before it forks its pool (`airloop_airflow.celery_config`). Without them each task
#: imports pandas, scikit-learn, MLflow, GX and Evidently again (5-20 s a task on a small machine).
WARM_TASKS = {
    "LocalExecutor": {
        "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
        "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": ",".join(TASK_PRELOAD),
    },
    "CeleryExecutor": {"AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airloop_airflow.celery_config.CELERY_CONFIG"},
}


class StackError(RuntimeError):
    """A service did not start or answer; the message points at its log."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    generated: bool


class EmbeddedStack:
    """Start, check and stop the embedded services for one state folder."""

    def __init__(self, settings: AirloopSettings) -> None:
        self.settings = settings
        self.home = settings.home
        self.state = settings.state
        self.bin = Path(sys.executable).parent

    @property
    def celery_workers(self) -> tuple[str, ...]:
        """Names of the Celery worker services; none unless the executor is Celery."""
        if self.settings.executor != "CeleryExecutor":
            return ()
        return tuple(f"celery-worker-{i}" for i in range(1, self.settings.celery_workers + 1))

    @property
    def services(self) -> tuple[str, ...]:
        """Every background service this stack runs, in start order."""
        return ("mlflow", "evidently", "api-server", *AIRFLOW_COMPONENTS, *self.celery_workers)

    @property
    def database_url(self) -> str:
        """Airflow's metadata database. On SQLite, a writer waits up to 30 s for the file's lock
        (the driver's default is 5 s): on a busy machine the scheduler, dag-processor and API
        server can hold it longer, and the API answered a DAG's unpause with a 500."""
        return self.settings.database_url or f"sqlite:///{self.state.airflow / 'airflow.db'}?timeout=30"

    # -- credentials and environment -------------------------------------------------------

    def credentials(self) -> Credentials:
        """The admin login: AIRLOOP_ADMIN_PASSWORD, else a generated one kept under the home."""
        known = self.known_credentials()
        if known is not None:
            return known
        stored = self.state.admin_password
        password = secrets.token_urlsafe(16)
        _write_private(stored, password + "\n")
        return Credentials(self.settings.admin_user, password, generated=True)

    def known_credentials(self) -> Credentials | None:
        """The admin login if one is set or was generated before; never makes one."""
        stored = self.state.admin_password
        if self.settings.admin_password:
            return Credentials(self.settings.admin_user, self.settings.admin_password, generated=False)
        if stored.exists():
            return Credentials(self.settings.admin_user, stored.read_text().strip(), generated=False)
        return None

    def _secret(self, name: str, make: str) -> str:
        path = self.state.secret(name)
        if not path.exists():
            value = secrets.token_urlsafe(64) if make == "token" else _fernet_key()
            _write_private(path, value)
        return path.read_text().strip()

    def environment(self) -> dict[str, str]:
        """Environment of every service (and of Airflow's tasks): settings, Airflow config, secrets."""
        s = self.settings
        env = dict(os.environ)
        # Every Airloop setting, so Airflow's tasks see the same ones as this process.
        env.update(
            {
                f"AIRLOOP_{k.upper()}": str(v)
                for k, v in s.model_dump().items()
                if v is not None and k != "mlflow_tracking_uri"
            }
        )
        env.update(
            {
                "AIRLOOP_HOME": str(self.home),
                "MLFLOW_TRACKING_URI": s.tracking_uri,
                "GX_ANALYTICS_ENABLED": "False",
                "AIRFLOW_HOME": str(self.state.airflow),
                "AIRFLOW__CORE__DAGS_FOLDER": str(s.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(s.plugins_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": s.executor,
                "AIRFLOW__CORE__PARALLELISM": "4",
                # Paused until `unpause_dags` (`airloop up`, `make demo`) makes the loop live: tests
                # and benchmarks start the stack and choose which DAGs run.
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.admin_user}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.state.airflow_passwords),
                "AIRFLOW__API__HOST": s.host,
                "AIRFLOW__API__PORT": str(s.airflow_port),
                "AIRFLOW__API__BASE_URL": s.airflow_url,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret", "token"),
                "AIRFLOW__CORE__FERNET_KEY": self._secret("fernet_key", "fernet"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.worker_log_port),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s.trigger_log_port),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            }
        )
        if s.executor == "CeleryExecutor":
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": s.broker_url or "",
                    # Task states come back through the metadata database, not the broker.
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database_url}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(s.celery_worker_concurrency),
                    # Redis hands an unacknowledged task to another worker after this long: longer
                    # than any training run, shorter than the default day.
                    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
                }
            )
        # Task processes start warm: forked from a process that already imported the libraries
        # they use (TASK_PRELOAD). The environment's own choice of these options wins.
        for key, value in WARM_TASKS[s.executor].items():
            env.setdefault(key, value)
        # Airflow's tasks log to MLflow as its admin; the server's own secrets stay with the server.
        env.update(mlflow_auth.client_environment(s))
        return env

    def _check_topology(self) -> None:
        s = self.settings
        if s.executor != "CeleryExecutor":
            return
        if not s.broker_url:
            raise StackError(
                "the CeleryExecutor needs a broker: set AIRLOOP_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"
            )
        if self.database_url.startswith("sqlite"):
            raise StackError("the CeleryExecutor needs a shared database: set AIRLOOP_DATABASE_URL (Postgres)")

    # -- lifecycle -------------------------------------------------------------------------

    def up(self, *, timeout: float = 300.0) -> Credentials:
        """Start whatever is not running yet and wait until every service answers."""
        self._check_topology()
        folders = (self.state.run, self.state.logs, self.state.airflow, self.state.mlflow / "artifacts")
        for folder in (*folders, self.settings.state.evidently_workspace):
            folder.mkdir(parents=True, exist_ok=True)
        creds = self.credentials()
        _write_private(self.state.airflow_passwords, json.dumps({creds.username: creds.password}))
        env = self.environment()
        if not self.running("api-server"):
            log.info("preparing the Airflow database in %s", self.state.airflow)
            self._run([str(self.bin / "airflow"), "db", "migrate"], env, "airflow-db-migrate")
        mlflow_env = {**env, **mlflow_auth.server_environment(self.settings)} if self.settings.mlflow_auth else env
        self._start("mlflow", self._mlflow_command(), mlflow_env, port=self.settings.mlflow_port)
        self._start("evidently", self._evidently_command(), env, port=self.settings.evidently_port)
        self._start("api-server", [str(self.bin / "airflow"), "api-server"], env, port=self.settings.airflow_port)
        # The API server first: on two cores, starting all at once makes each of them slower.
        self._wait(f"{self.settings.airflow_url}/api/v2/monitor/health", "api-server", timeout)
        for component in AIRFLOW_COMPONENTS:
            self._start(component, [str(self.bin / "airflow"), component], env)
        for number, worker in enumerate(self.celery_workers, start=1):
            self._start(worker, self._celery_worker_command(number), env)
        self._wait(f"{self.settings.tracking_uri}/health", "mlflow", timeout)
        if self.settings.mlflow_auth:
            try:
                password = mlflow_auth.admin_password(self.settings)
                mlflow_auth.check_admin_login(self.settings.tracking_uri, self.settings.mlflow_admin_user, password)
            except mlflow_auth.MlflowAuthError as err:
                raise StackError(f"{err}; see {self.state.service_log('mlflow')}") from err
        self._wait(f"{self.settings.evidently_url}/api/version", "evidently", timeout)
        self._wait_healthy(timeout)
        self._create_pools(creds)
        for worker in self.celery_workers:
            self._wait_for_log(worker, " ready.", timeout)
        return creds

    def _create_pools(self, creds: Credentials) -> None:
        """The pool the DAGs' serving tasks share (without it, Airflow never schedules them)."""
        from airloop.stack.airflow_api import SERVING_POOL, SERVING_POOL_DESCRIPTION, AirflowClient

        with AirflowClient(self.settings.airflow_url, creds.username, creds.password) as client:
            client.ensure_pool(SERVING_POOL, 1, SERVING_POOL_DESCRIPTION)

    def unpause_dags(self, client: AirflowClient, *, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Make the loop live: once every pipeline's DAGs are parsed, unpause every DAG tagged `airloop`.

        Airflow pauses a DAG it sees for the first time: monitoring would never run, the
        retraining sensor never wait, and a triggered deploy would sit queued. Returns the
        Airloop DAGs as the API shows them (schedule, next run).
        """
        from airloop.stack.airflow_api import AIRLOOP_TAG

        expected = [dag_id for pipeline in self.settings.load_pipelines() for dag_id in pipeline.dag_ids]
        client.wait_for_dags(expected, timeout=timeout)
        return client.unpause_tagged(AIRLOOP_TAG)

    def down(self) -> list[str]:
        """Stop every service this state folder started; returns the names stopped."""
        from airloop.deploy.local import LocalDeployer

        stopped = [f"serving:{port}" for port in self.serving_ports() if LocalDeployer(self.home, port).stop()]
        stopped += self._stop_containers()
        running = {}
        for name in ("api-server", *AIRFLOW_COMPONENTS, *self.celery_workers, "mlflow", "evidently"):
            pid = self._pid(name)
            if pid is not None and alive(pid):
                running[name] = pid
        # All at once: a Celery worker finishing its task, or a server draining, would otherwise
        # make each of the others wait out its grace period in turn.
        terminate_groups(list(running.values()))
        for name in running:
            (self.state.run / f"{name}.pid").unlink(missing_ok=True)
        return stopped + list(running)

    def serving_ports(self) -> list[int]:
        """Every pipeline's stable serving port (and AIRLOOP_SERVING_PORT, the default)."""
        return sorted({self.settings.serving_port, *(p.serving_port for p in self.settings.load_pipelines())})

    def _stop_containers(self) -> list[str]:
        """Serving and router containers deployed for this stack's serving ports."""
        from airloop.deploy.docker import DockerDeployer, DockerSettings
        from airloop.deploy.service import docker_engine

        api = docker_engine()
        if api is None:
            return []
        return [
            name
            for port in self.serving_ports()
            for name in DockerDeployer(api, DockerSettings(home=self.home, stable_port=port)).remove_all()
        ]

    def running(self, name: str) -> bool:
        pid = self._pid(name)
        return pid is not None and alive(pid)

    def status(self) -> dict[str, bool]:
        return {name: self.running(name) for name in self.services}

    # -- internals -------------------------------------------------------------------------

    def _celery_worker_command(self, number: int) -> list[str]:
        command = [
            str(self.bin / "airflow"),
            "celery",
            "worker",
            "--celery-hostname",
            f"airloop-worker-{number}@%h",
            "--concurrency",
            str(self.settings.celery_worker_concurrency),
        ]
        # One log server per port: the first worker serves task logs; the others write theirs to
        # the same local log folder, which the API server reads directly.
        return command if number == 1 else [*command, "--skip-serve-logs"]

    def _mlflow_command(self) -> list[str]:
        auth = ["--app-name", "basic-auth"] if self.settings.mlflow_auth else []
        return [
            str(self.bin / "mlflow"),
            "server",
            *auth,
            "--backend-store-uri",
            self.settings.mlflow_backend_uri or f"sqlite:///{self.state.mlflow / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.state.mlflow / "artifacts"),
            "--serve-artifacts",
            "--host",
            self.settings.host,
            "--port",
            str(self.settings.mlflow_port),
            "--workers",
            "2",
        ]

    def _evidently_command(self) -> list[str]:
        return [
            str(self.bin / "evidently"),
            "ui",
            "--workspace",
            str(self.settings.state.evidently_workspace),
            "--host",
            self.settings.host,
            "--port",
            str(self.settings.evidently_port),
        ]

    def _pid(self, name: str) -> int | None:
        path = self.state.run / f"{name}.pid"
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _start(self, name: str, command: list[str], env: dict[str, str], *, port: int | None = None) -> None:
        if self.running(name):
            log.info("%s is already running (pid %s)", name, self._pid(name))
            return
        if port is not None and _port_taken(self.settings.host, port):
            # Else the health check would be answered by whatever holds the port, not by ours.
            raise StackError(
                f"cannot start {name}: port {port} on {self.settings.host} is in use by another process; "
                f"stop it, or choose another port (AIRLOOP_*_PORT)"
            )
        logfile = self.state.service_log(name)
        pid = spawn(command, env, logfile, cwd=self.home)
        (self.state.run / f"{name}.pid").write_text(str(pid))
        log.info("started %s (pid %d), log %s", name, pid, logfile)

    def _run(self, command: list[str], env: dict[str, str], name: str) -> None:
        logfile = self.state.service_log(name)
        with logfile.open("ab") as out:
            result = subprocess.run(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(f"{' '.join(command[-2:])} failed (exit {result.returncode}); see {logfile}")

    def _wait(self, url: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running(name):
                raise StackError(f"{name} exited; see {self.state.service_log(name)}")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise StackError(f"{name} did not answer at {url} within {timeout:.0f}s; see {self.state.service_log(name)}")

    def _wait_for_log(self, name: str, marker: str, timeout: float) -> None:
        # A Celery worker has no HTTP endpoint of its own; it says " ready." once it consumes tasks.
        logfile = self.state.service_log(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running(name):
                raise StackError(f"{name} exited; see {logfile}")
            if logfile.exists() and marker in logfile.read_text(errors="replace"):
                return
            time.sleep(1)
        raise StackError(f"{name} did not log {marker!r} within {timeout:.0f}s; see {logfile}")

    def _wait_healthy(self, timeout: float) -> None:
        # The health endpoint answers 200 even while components are down: read its body.
        url = f"{self.settings.airflow_url}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout
        unhealthy: list[str] = []
        while time.monotonic() < deadline:
            for name in AIRFLOW_COMPONENTS:
                if not self.running(name):
                    raise StackError(f"{name} exited; see {self.state.service_log(name)}")
            body = httpx.get(url, timeout=5).json()
            unhealthy = [k for k, v in body.items() if isinstance(v, dict) and v.get("status") != "healthy"]
            if not unhealthy:
                return
            time.sleep(1)
        raise StackError(f"Airflow components not healthy within {timeout:.0f}s: {unhealthy}; see {self.state.logs}")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _port_taken(host: str, port: int) -> bool:
    """Whether something listens on (or holds) `port`: binding it fails."""
    with socket.socket() as probe:
        # As servers bind: connections of a stopped server waiting out TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False

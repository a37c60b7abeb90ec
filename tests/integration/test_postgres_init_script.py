"""docker-compose.yaml's Postgres init script, run as the Postgres image runs it, on a real server.

No Postgres image can be pulled here, so Debian's PostgreSQL (installed by .ci/run) plays the
image: a new cluster whose superuser is `airflow`, as POSTGRES_USER makes it, and the script run
with the environment the image's entrypoint gives it. Checked: MLflow's two databases exist,
belong to `mlflow`, and `mlflow` logs in over TCP with MLFLOW_DB_PASSWORD and with nothing else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from airloop.settings import PROJECT_ROOT
from tests.conftest import unavailable

pytestmark = pytest.mark.integration

SCRIPT = PROJECT_ROOT / "include" / "docker" / "postgres-init" / "10-mlflow-databases.sh"
PASSWORD = "a1b2c3d4e5f6a7b8c9d0"


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not found:
        unavailable("Debian's postgresql is not installed")
    return found[0].parent


def as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Postgres refuses to run as root: as root, run it as the `postgres` user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False, **kwargs)


@pytest.fixture
def server() -> Iterator[dict[str, str]]:
    """A new cluster (superuser `airflow`, password logins over TCP) on a free port; removed after."""
    import socket
    import tempfile

    bin_dir = postgres_bin()
    # Not under pytest's tmp_path: its root-only parent would keep the postgres user out.
    root = Path(tempfile.mkdtemp(prefix="airloop-pg-init-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    init = as_postgres(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            "airflow",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]
    )
    assert init.returncode == 0, init.stderr
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    start = as_postgres(
        [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", options, "-w", "-l", str(root / "log"), "start"]
    )
    assert start.returncode == 0, start.stderr
    try:
        yield {"PGHOST": str(root), "PGPORT": port, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    finally:
        as_postgres([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root)


def psql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return as_postgres(["psql", "-Atc", *args], env=env)


def test_init_script_makes_mlflow_databases_with_their_own_login(server):
    env = {**server, "POSTGRES_USER": "airflow", "POSTGRES_DB": "postgres", "MLFLOW_DB_PASSWORD": PASSWORD}
    done = as_postgres(["bash", str(SCRIPT)], env=env)
    assert done.returncode == 0, done.stderr

    owners = psql(
        {**server},
        "SELECT datname || '=' || pg_get_userbyid(datdba) FROM pg_database ORDER BY 1",
        "-U",
        "airflow",
        "-d",
        "postgres",
    )
    assert {"mlflow=mlflow", "mlflow_auth=mlflow"} <= set(owners.stdout.split())

    tcp = {**server, "PGHOST": "127.0.0.1"}
    for database in ("mlflow", "mlflow_auth"):
        login = psql({**tcp, "PGPASSWORD": PASSWORD}, "SELECT current_user", "-U", "mlflow", "-d", database)
        assert login.stdout.strip() == "mlflow", login.stderr
    refused = psql({**tcp, "PGPASSWORD": "not-the-password"}, "SELECT 1", "-U", "mlflow", "-d", "mlflow")
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr


def test_init_script_refuses_to_run_without_the_password(server):
    env = {**server, "POSTGRES_USER": "airflow", "POSTGRES_DB": "postgres"}
    done = as_postgres(["bash", str(SCRIPT)], env=env)
    assert done.returncode != 0
    assert "set MLFLOW_DB_PASSWORD" in done.stderr
    databases = psql({**server}, "SELECT datname FROM pg_database", "-U", "airflow", "-d", "postgres")
    assert "mlflow" not in databases.stdout.split()

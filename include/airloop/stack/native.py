"""PostgreSQL and Redis from the machine's own packages, for the scale-out shape without containers.

The production compose file runs Postgres (Airflow's metadata, MLflow's backend store and users)
and Redis (the Celery broker) as containers. Where no image can be pulled, `NativeBackends` runs
the same two from Debian's `postgresql` and `redis-server` packages, each with its own data
folder, on loopback ports, with generated passwords kept 0600 beside the data:

    python -m airloop.stack.native up      # prints the AIRLOOP_* settings that point the stack at them
    python -m airloop.stack.native down

Postgres refuses to run as root; as root, its server runs as the `postgres` user (runuser).
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from airloop.processes import alive, spawn, terminate_group
from airloop.stack.embedded import StackError
from airloop.stack.mlflow_auth import write_private

#: Databases made in the native Postgres: Airflow's metadata, MLflow's runs and registry, its users.
DATABASES = ("airflow", "mlflow", "mlflow_auth")
DATABASE_USER = "airloop"


@dataclass(frozen=True)
class BackendUrls:
    """Where the stack finds its databases and broker; the values of the matching AIRLOOP_* settings."""

    database_url: str
    mlflow_backend_uri: str
    mlflow_auth_database_uri: str
    broker_url: str

    def environment(self) -> dict[str, str]:
        """The settings as environment variables, with the executor that needs them."""
        return {
            "AIRLOOP_EXECUTOR": "CeleryExecutor",
            "AIRLOOP_DATABASE_URL": self.database_url,
            "AIRLOOP_MLFLOW_BACKEND_URI": self.mlflow_backend_uri,
            "AIRLOOP_MLFLOW_AUTH_DATABASE_URI": self.mlflow_auth_database_uri,
            "AIRLOOP_BROKER_URL": self.broker_url,
        }


def postgres_bin_dir() -> Path:
    """The folder of Debian's PostgreSQL server binaries (initdb, pg_ctl)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.insert(0, Path(found).resolve())
    if not candidates:
        raise StackError("PostgreSQL is not installed: apt-get install postgresql")
    return candidates[0].parent


def redis_server_binary() -> str:
    """Debian's redis-server."""
    found = shutil.which("redis-server")
    if not found:
        raise StackError("Redis is not installed: apt-get install redis-server")
    return found


class NativeBackends:
    """A Postgres cluster and a Redis server under `root`, on loopback ports."""

    def __init__(self, root: Path, *, postgres_port: int = 5432, redis_port: int = 6379) -> None:
        self.root = root.resolve()
        self.postgres_port = postgres_port
        self.redis_port = redis_port
        self.pg_data = self.root / "postgres"
        self.redis_dir = self.root / "redis"
        self.secrets_dir = self.root / "secrets"
        # Postgres runs as `postgres` when this is root: it must own its data folder.
        self.as_root = os.geteuid() == 0

    # -- secrets and URLs ------------------------------------------------------------------

    def _password(self, name: str) -> str:
        path = self.secrets_dir / name
        if not path.exists():
            write_private(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    def urls(self) -> BackendUrls:
        """Connection URLs with the generated passwords (secrets: keep them out of logs)."""
        password = self._password("postgres_airloop_password")
        # The driver named: Airflow 3 would otherwise pick psycopg 3, which is not installed.
        base = f"postgresql+psycopg2://{DATABASE_USER}:{password}@127.0.0.1:{self.postgres_port}"
        return BackendUrls(
            database_url=f"{base}/airflow",
            mlflow_backend_uri=f"{base}/mlflow",
            mlflow_auth_database_uri=f"{base}/mlflow_auth",
            broker_url=f"redis://:{self._password('redis_password')}@127.0.0.1:{self.redis_port}/0",
        )

    # -- lifecycle -------------------------------------------------------------------------

    def up(self, *, timeout: float = 60.0) -> BackendUrls:
        """Initialise (first time), start and wait for both; returns the URLs."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._start_postgres(timeout)
        self._create_databases()
        self._start_redis(timeout)
        return self.urls()

    def down(self) -> list[str]:
        """Stop both; returns the names stopped. The data folders stay."""
        stopped = []
        if (self.pg_data / "postmaster.pid").exists():
            self._as_postgres([str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "stop"])
            stopped.append("postgres")
        pid = self._redis_pid()
        if pid is not None and alive(pid):
            terminate_group(pid)
            stopped.append("redis")
        (self.root / "redis.pid").unlink(missing_ok=True)
        return stopped

    # -- Postgres --------------------------------------------------------------------------

    def _as_postgres(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", "postgres", "--", *command] if self.as_root else command
        result = subprocess.run(full, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise StackError(f"{Path(command[0]).name} failed (exit {result.returncode}): {result.stderr.strip()}")
        return result

    def _start_postgres(self, timeout: float) -> None:
        bin_dir = postgres_bin_dir()
        if not (self.pg_data / "PG_VERSION").exists():
            self._init_cluster(bin_dir)
        if (self.pg_data / "postmaster.pid").exists():
            return
        self._as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.pg_data),
                "-l",
                str(self.pg_data / "server.log"),
                "-o",
                # Loopback only, and the socket in the data folder: /var/run/postgresql may not exist.
                f"-p {self.postgres_port} -h 127.0.0.1 -k {self.pg_data}",
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        )

    def _init_cluster(self, bin_dir: Path) -> None:
        self.pg_data.mkdir(parents=True, exist_ok=True)
        # Beside the data folder: initdb wants that folder empty.
        pwfile = self.root / "postgres.pwfile"
        write_private(pwfile, self._password("postgres_superuser_password") + "\n")
        if self.as_root:
            self._hand_to_postgres_user(pwfile)
        try:
            self._as_postgres(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pg_data),
                    "--username=postgres",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _hand_to_postgres_user(self, pwfile: Path) -> None:
        user = pwd.getpwnam("postgres")
        for path in (self.pg_data, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(self.pg_data, 0o700)
        # The `postgres` user must be able to reach its data folder through every parent.
        for parent in self.pg_data.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise StackError(
                    f"{parent} is not searchable by other users, so the postgres user cannot reach "
                    f"{self.pg_data}; put the native backends elsewhere or chmod o+x {parent}"
                )

    def _create_databases(self) -> None:
        import psycopg2
        from psycopg2 import sql

        superuser = self._password("postgres_superuser_password")
        password = self._password("postgres_airloop_password")
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.postgres_port, user="postgres", password=superuser, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DATABASE_USER,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(DATABASE_USER)), (password,)
                    )
                for name in DATABASES:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cursor.fetchone() is None:
                        cursor.execute(
                            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                                sql.Identifier(name), sql.Identifier(DATABASE_USER)
                            )
                        )
        finally:
            connection.close()

    # -- Redis -----------------------------------------------------------------------------

    def _redis_pid(self) -> int | None:
        try:
            return int((self.root / "redis.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _start_redis(self, timeout: float) -> None:
        import redis

        pid = self._redis_pid()
        if pid is None or not alive(pid):
            self.redis_dir.mkdir(parents=True, exist_ok=True)
            config = self.redis_dir / "redis.conf"
            # The password goes in a 0600 config file, not on the command line where `ps` shows it.
            write_private(
                config,
                f'port {self.redis_port}\nbind 127.0.0.1\ndir {self.redis_dir}\nsave ""\nappendonly no\n'
                f"requirepass {self._password('redis_password')}\n",
            )
            pid = spawn([redis_server_binary(), str(config)], dict(os.environ), self.redis_dir / "redis.log")
            (self.root / "redis.pid").write_text(str(pid))
        client = redis.Redis(host="127.0.0.1", port=self.redis_port, password=self._password("redis_password"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                raise StackError(f"redis-server exited; see {self.redis_dir / 'redis.log'}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.3)
        raise StackError(f"redis-server did not answer within {timeout:.0f}s; see {self.redis_dir / 'redis.log'}")


def main(argv: list[str] | None = None) -> int:
    """`up` starts both and prints the settings to export; `down` stops them."""
    parser = argparse.ArgumentParser(prog="python -m airloop.stack.native", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--root", type=Path, default=Path(".airloop") / "native", help="data and secrets folder")
    parser.add_argument("--postgres-port", type=int, default=5432)
    parser.add_argument("--redis-port", type=int, default=6379)
    args = parser.parse_args(argv)
    backends = NativeBackends(args.root, postgres_port=args.postgres_port, redis_port=args.redis_port)
    try:
        if args.command == "up":
            for name, value in backends.up().environment().items():
                print(f"export {name}='{value}'")
        else:
            stopped = backends.down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running", file=sys.stderr)
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

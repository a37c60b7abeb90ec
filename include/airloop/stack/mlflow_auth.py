"""MLflow's basic-auth option: its config file, the admin password, and what servers and clients need.

MLflow 3.17 creates its admin user on the first start of `mlflow server --app-name basic-auth`
with the password in `MLFLOW_AUTH_ADMIN_PASSWORD` and refuses the old shipped default
(`password1234`). Airloop always hands it a password of its own — `AIRLOOP_MLFLOW_ADMIN_PASSWORD`,
else one generated and kept 0600 under the state folder — so the default is never in place, and
checks after start that this password is the one that works. The password is passed through the
environment, never written to the config file.

Used by the embedded stack, and from the command line by the compose file before `mlflow server`:

    python -m airloop.stack.mlflow_auth write-config --path /state/basic_auth.ini \\
        --database-uri postgresql://... --admin-user admin
    python -m airloop.stack.mlflow_auth check --tracking-uri http://mlflow:5000
"""

from __future__ import annotations

import argparse
import configparser
import io
import os
import secrets
import sys
from pathlib import Path
from typing import Literal

import httpx

from airloop.settings import AirloopSettings

#: The admin password older MLflow versions shipped in basic_auth.ini; public, so never accepted.
MLFLOW_LEGACY_DEFAULT_PASSWORD = "password1234"
#: MLflow's password policy (mlflow.utils.validation._validate_password).
MLFLOW_MIN_PASSWORD_LENGTH = 12
DefaultPermission = Literal["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]


class MlflowAuthError(RuntimeError):
    """The auth configuration is unsafe or the server does not accept the configured admin."""


def check_password(password: str) -> str:
    """Return `password` if MLflow would accept it as the admin's and it is not the public default."""
    if not password:
        raise MlflowAuthError(
            "no MLflow admin password: set AIRLOOP_MLFLOW_ADMIN_PASSWORD (or MLFLOW_AUTH_ADMIN_PASSWORD)"
        )
    if password == MLFLOW_LEGACY_DEFAULT_PASSWORD:
        raise MlflowAuthError(
            "the MLflow admin password is MLflow's old public default; set AIRLOOP_MLFLOW_ADMIN_PASSWORD "
            "(or MLFLOW_AUTH_ADMIN_PASSWORD) to another one"
        )
    if len(password) < MLFLOW_MIN_PASSWORD_LENGTH:
        raise MlflowAuthError(f"the MLflow admin password must have at least {MLFLOW_MIN_PASSWORD_LENGTH} characters")
    return password


def admin_password(settings: AirloopSettings) -> str:
    """AIRLOOP_MLFLOW_ADMIN_PASSWORD, else a generated one kept 0600 in `<home>/secrets/`."""
    if settings.mlflow_admin_password:
        return check_password(settings.mlflow_admin_password)
    stored = settings.state.secret("mlflow_admin_password")
    if not stored.exists():
        write_private(stored, secrets.token_urlsafe(18))
    return check_password(stored.read_text().strip())


def flask_secret_key(settings: AirloopSettings) -> str:
    """The static key MLflow's auth app needs for CSRF, the same across its workers and restarts."""
    stored = settings.state.secret("mlflow_flask_secret_key")
    if not stored.exists():
        write_private(stored, secrets.token_urlsafe(32))
    return stored.read_text().strip()


def render_config(*, database_uri: str, admin_user: str, default_permission: DefaultPermission) -> str:
    """The `[mlflow]` ini MLflow's basic-auth app reads from MLFLOW_AUTH_CONFIG_PATH (no password in it)."""
    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": default_permission,
        "database_uri": database_uri,
        "admin_username": admin_user,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def write_config(path: Path, *, database_uri: str, admin_user: str, default_permission: DefaultPermission) -> Path:
    """Write the basic-auth ini to `path` (0600: it may hold the auth database's credentials)."""
    write_private(
        path, render_config(database_uri=database_uri, admin_user=admin_user, default_permission=default_permission)
    )
    return path


def auth_database_uri(settings: AirloopSettings) -> str:
    """Where MLflow keeps its users and permissions: the setting, else SQLite beside the MLflow store."""
    return settings.mlflow_auth_database_uri or f"sqlite:///{settings.state.mlflow / 'basic_auth.db'}"


def server_environment(settings: AirloopSettings) -> dict[str, str]:
    """Environment `mlflow server --app-name basic-auth` needs: config path, admin password, CSRF key."""
    config_path = write_config(
        settings.state.mlflow / "basic_auth.ini",
        database_uri=auth_database_uri(settings),
        admin_user=settings.mlflow_admin_user,
        default_permission=settings.mlflow_auth_default_permission,
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
        "MLFLOW_AUTH_ADMIN_USERNAME": settings.mlflow_admin_user,
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password(settings),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_secret_key(settings),
    }


def client_environment(settings: AirloopSettings) -> dict[str, str]:
    """MLflow client credentials for the pipeline and Airflow's tasks; empty when auth is off."""
    if not settings.mlflow_auth:
        return {}
    return {
        "MLFLOW_TRACKING_USERNAME": settings.mlflow_admin_user,
        "MLFLOW_TRACKING_PASSWORD": admin_password(settings),
    }


def check_admin_login(tracking_uri: str, username: str, password: str) -> None:
    """Raise unless the server refuses anonymous requests and accepts `username`/`password` as admin."""
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/users/get"
    anonymous = httpx.get(url, params={"username": username}, timeout=10)
    if anonymous.status_code != 401:
        raise MlflowAuthError(f"MLflow at {tracking_uri} answered an anonymous request with {anonymous.status_code}")
    answer = httpx.get(url, params={"username": username}, auth=(username, password), timeout=10)
    if answer.status_code != 200 or not answer.json().get("user", {}).get("is_admin"):
        raise MlflowAuthError(
            f"MLflow at {tracking_uri} does not accept the configured password for admin {username!r} "
            f"(HTTP {answer.status_code}). Its user store was made with another one: set "
            "AIRLOOP_MLFLOW_ADMIN_PASSWORD to that one, or change it with MLflow's users/update-password API."
        )


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def main(argv: list[str] | None = None) -> int:
    """`write-config` before `mlflow server --app-name basic-auth`; `check` once it answers."""
    parser = argparse.ArgumentParser(prog="python -m airloop.stack.mlflow_auth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write-config", help="write the basic-auth ini; needs MLFLOW_AUTH_ADMIN_PASSWORD")
    write.add_argument("--path", type=Path, required=True, help="the file MLFLOW_AUTH_CONFIG_PATH will name")
    write.add_argument("--database-uri", required=True, help="SQLAlchemy URL of the users and permissions store")
    write.add_argument("--admin-user", default="admin")
    write.add_argument("--default-permission", default="READ", choices=["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"])
    check = commands.add_parser("check", help="anonymous refused, the admin from the environment accepted")
    check.add_argument("--tracking-uri", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "write-config":
            # The password is not written to the file, but a server started without one (or with
            # the old default) must not come up: fail here, before `mlflow server`.
            check_password(os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD", ""))
            write_config(
                args.path,
                database_uri=args.database_uri,
                admin_user=args.admin_user,
                default_permission=args.default_permission,
            )
            print(f"wrote {args.path}")
        else:
            env = os.environ
            username = env.get("MLFLOW_TRACKING_USERNAME") or env.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
            password = env.get("MLFLOW_TRACKING_PASSWORD") or env.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")
            check_admin_login(args.tracking_uri, username, password)
            print(f"MLflow at {args.tracking_uri}: anonymous refused, admin {username!r} accepted")
    except MlflowAuthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

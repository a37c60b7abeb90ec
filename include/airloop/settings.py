"""Runtime settings, read from the environment with documented defaults.

Nothing happens at import time: call :func:`load_settings` where the values are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from airloop.state import StateLayout

if TYPE_CHECKING:
    from airloop.pipelines import Pipelines

#: The checkout: include/airloop/settings.py -> parents[2]. Used to find dags/, plugins/,
#: include/pipelines/ and include/gx/ in an editable install or a source checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class AirloopSettings(BaseSettings):
    """Where Airloop keeps its state and how it reaches its services."""

    model_config = SettingsConfigDict(env_prefix="AIRLOOP_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.cwd() / ".airloop",
        description="State folder: Airflow home, MLflow store, data lake, logs (AIRLOOP_HOME).",
    )
    pipelines: Path = Field(
        default=PROJECT_ROOT / "include" / "pipelines",
        description="Pipelines folder: one YAML file per pipeline (AIRLOOP_PIPELINES); see airloop.pipelines.",
    )
    airflow_port: int = Field(default=8080, description="Airflow API server and UI port.")
    mlflow_port: int = Field(default=5000, description="MLflow tracking server port.")
    evidently_port: int = Field(default=8001, description="Evidently UI port (monitoring reports).")
    signal_poll_seconds: float = Field(
        default=30, gt=0, description="How often the retraining sensor's trigger looks for a degradation signal."
    )
    worker_log_port: int = Field(default=8793, description="Airflow scheduler's log server port.")
    trigger_log_port: int = Field(default=8794, description="Airflow triggerer's log server port.")
    host: str = Field(default="127.0.0.1", description="Interface the embedded services bind.")
    admin_user: str = Field(default="admin", description="Embedded Airflow admin user name.")
    admin_password: str | None = Field(
        default=None,
        description="Embedded admin password; generated and stored under the state folder if unset.",
    )
    serving_port: int = Field(
        default=8000, description="The stable endpoint of a pipeline's model, unless its config says `serving.port`."
    )
    deploy_target: Literal["auto", "docker", "kubernetes", "local", "none"] = Field(
        default="auto", description="Where `deploy` puts the champion; auto: docker if an engine answers, else local."
    )
    base_image: str = Field(
        default="python:3.11-slim-bookworm", description="Base of the serving image (a build argument)."
    )
    router_base_image: str = Field(default="debian:bookworm-slim", description="Base of the nginx router image.")
    offline_build: bool = Field(
        default=False, description="Install the serving image's wheels from a wheelhouse made on the host."
    )
    executor: Literal["LocalExecutor", "CeleryExecutor"] = Field(
        default="LocalExecutor", description="Airflow executor; CeleryExecutor also starts Celery workers."
    )
    database_url: str | None = Field(
        default=None, description="Airflow metadata database (SQLAlchemy URL); SQLite under the home if unset."
    )
    broker_url: str | None = Field(default=None, description="Celery broker, e.g. redis://host:6379/0.")
    celery_workers: int = Field(default=1, ge=1, description="Celery workers `up` starts (CeleryExecutor).")
    celery_worker_concurrency: int = Field(default=2, ge=1, description="Task slots of each Celery worker.")
    mlflow_backend_uri: str | None = Field(
        default=None, description="MLflow backend store (SQLAlchemy URL); SQLite under the home if unset."
    )
    mlflow_auth: bool = Field(default=False, description="Run MLflow with its basic-auth app (login required).")
    mlflow_admin_user: str = Field(default="admin", description="MLflow admin user when mlflow_auth is on.")
    mlflow_admin_password: str | None = Field(
        default=None, description="MLflow admin password; generated and stored under the state folder if unset."
    )
    mlflow_auth_database_uri: str | None = Field(
        default=None, description="MLflow's users and permissions store; SQLite beside the MLflow store if unset."
    )
    mlflow_auth_default_permission: Literal["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"] = Field(
        default="READ", description="What a logged-in MLflow user may do on resources not granted explicitly."
    )
    dags_folder: Path = Field(default=PROJECT_ROOT / "dags")
    plugins_folder: Path = Field(default=PROJECT_ROOT / "plugins")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow server; defaults to the embedded one on mlflow_port.",
    )

    def load_pipelines(self) -> Pipelines:
        """Every pipeline of the pipelines folder, and its broken files (:mod:`airloop.pipelines`)."""
        from airloop.pipelines import load_pipelines

        return load_pipelines(self.pipelines, default_port=self.serving_port)

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI the pipeline logs to."""
        return self.mlflow_tracking_uri or f"http://{self.host}:{self.mlflow_port}"

    def mlflow_ui_url(self, route: str) -> str | None:
        """A page of MLflow's UI (`route` after `#/`), when the tracking URI is a server a browser can open."""
        base = self.tracking_uri.rstrip("/")
        return f"{base}/#/{route}" if base.startswith(("http://", "https://")) else None

    def mlflow_run_url(self, experiment_id: str, run_id: str) -> str | None:
        """A run's page in MLflow's UI (None for a store without a UI, such as SQLite)."""
        return self.mlflow_ui_url(f"experiments/{experiment_id}/runs/{run_id}")

    @property
    def airflow_url(self) -> str:
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def evidently_url(self) -> str:
        return f"http://{self.host}:{self.evidently_port}"

    @property
    def state(self) -> StateLayout:
        """Every folder and file under `home` (:mod:`airloop.state`)."""
        return StateLayout(self.home)


def load_settings() -> AirloopSettings:
    """Read settings from the environment, with the home folder made absolute."""
    settings = AirloopSettings()
    settings.home = settings.home.expanduser().resolve()
    return settings

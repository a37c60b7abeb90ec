"""The state folder's layout (`AIRLOOP_HOME`, `.airloop` by default): every folder and file, named once.

    landing/           data as it lands (the demo's replayed flights)        `landing`
    lake/              snapshots, quarantine, validation results              `lake`
                       (inside: airloop.data.snapshot, airloop.validation.quarantine, .checks)
    inference/         the serving endpoints' inference log, and beside it   `inference`
      shadow-slot/<model>/  the model a shadowing challenger serves from     (airloop.monitoring.paths)
      shadow/               what the shadow answered
    monitoring/        windows, signals, the retraining ledger, model caches, `monitoring`
      evidently/       the Evidently workspace                                `evidently_workspace`
      evidently.lock   held by whoever writes or loads the workspace          `evidently_lock`
    serving/models/<model>/v<version>/   models fetched to deploy             `served_model()`
    build/<context>/   Docker build contexts                                  `build_context()`
    cache/wheels/      the wheelhouse for offline image builds                `wheels`
    airflow/           AIRFLOW_HOME: metadata database, DAG logs              `airflow`
      passwords.json   the simple auth manager's logins                       `airflow_passwords`
    mlflow/            MLflow's SQLite store, artifacts, basic-auth database  `mlflow`
    run/               pid files of the services this state folder started,  `run`
                       the local deploy's lock and candidate records
    logs/              the services' logs: <service>.log                      `logs`, `service_log()`
    secrets/<name>     generated secrets (mode 600)                           `secret()`
    alerts/alerts.jsonl  every alert sent                                     `alerts`
    admin_password     the generated Airflow admin password                  `admin_password`
    demo-loop/         the pipelines folder `make demo-loop` runs with         `demo_loop_pipelines`

A relative path in a pipeline config (a files source, the labels feed) is under the state
folder (`resolve()`).

Monitoring's own files under `monitoring/` and `inference/` are named per pipeline by
:class:`airloop.monitoring.paths.MonitoringPaths`, which builds on this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateLayout:
    """The folders and files under one state folder."""

    home: Path

    @property
    def landing(self) -> Path:
        """The default landing zone that `make demo` fills."""
        return self.home / "landing"

    @property
    def lake(self) -> Path:
        """Snapshots, quarantine and validation results."""
        return self.home / "lake"

    @property
    def inference(self) -> Path:
        """The inference log every serving target writes (and mounts) and monitoring reads."""
        return self.home / "inference"

    @property
    def monitoring(self) -> Path:
        return self.home / "monitoring"

    @property
    def evidently_workspace(self) -> Path:
        """The Evidently workspace the monitoring DAG writes to and the Evidently UI reads."""
        return self.monitoring / "evidently"

    @property
    def evidently_lock(self) -> Path:
        """Held while a task loads or writes the workspace: Evidently writes a snapshot in place, and
        loading the workspace reads every snapshot, so a load beside a write can read half a file."""
        return self.monitoring / "evidently.lock"

    @property
    def wheels(self) -> Path:
        """The wheelhouse offline image builds install from."""
        return self.home / "cache" / "wheels"

    @property
    def airflow(self) -> Path:
        """AIRFLOW_HOME of the embedded stack."""
        return self.home / "airflow"

    @property
    def mlflow(self) -> Path:
        """The embedded MLflow server's store."""
        return self.home / "mlflow"

    @property
    def run(self) -> Path:
        """Pid files of the processes this state folder started; the local deploy's lock and candidates."""
        return self.home / "run"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def alerts(self) -> Path:
        """Every alert sent, one JSON line each (beside any webhook or e-mail)."""
        return self.home / "alerts" / "alerts.jsonl"

    @property
    def admin_password(self) -> Path:
        """The Airflow admin password generated when none was set."""
        return self.home / "admin_password"

    @property
    def airflow_passwords(self) -> Path:
        """Airflow's simple auth manager's passwords file."""
        return self.airflow / "passwords.json"

    @property
    def demo_loop_pipelines(self) -> Path:
        """The pipelines folder `make demo-loop` writes (its pipeline, with the demo's guards) and runs with."""
        return self.home / "demo-loop"

    def resolve(self, path: Path) -> Path:
        """A path from a config: as it is if absolute, else under the state folder."""
        return path if path.is_absolute() else self.home / path

    def secret(self, name: str) -> Path:
        """A generated secret (Fernet key, JWT secret, MLflow's admin password, ...)."""
        return self.home / "secrets" / name

    def service_log(self, name: str) -> Path:
        """The log of a service or serving process this state folder started."""
        return self.logs / f"{name}.log"

    def served_model(self, model_name: str, version: str) -> Path:
        """Where a version is fetched to be deployed."""
        return self.home / "serving" / "models" / model_name / f"v{version}"

    def build_context(self, name: str) -> Path:
        """A Docker build context (`name`: an image tag, or `router`)."""
        return self.home / "build" / name.replace("/", "_").replace(":", "_")

"""Typed Params for Airloop DAGs, shared so the UI trigger form is validated the same everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Param

if TYPE_CHECKING:
    from airloop.config import PipelineConfig

#: The JSON Schema type of a tunable model parameter's form field, from its value in the config.
_FIELD_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}

TRAINING_PARAMS = {
    "window_days": Param(
        30,
        type="integer",
        minimum=1,
        maximum=3660,
        title="Data window (days)",
        description="Train on this many days of data ending at the run's date.",
    ),
    "window_end": Param(
        None,
        type=["null", "string"],
        format="date",
        title="Window end (optional)",
        description="Last day of data, exclusive (YYYY-MM-DD). Empty: the run's logical date.",
    ),
    "force_promote": Param(
        False,
        type="boolean",
        title="Force promotion",
        description="Make this run's model the champion even if it does not beat the current one.",
    ),
    "require_approval": Param(
        False,
        type="boolean",
        title="Require approval",
        description="Ask a person (Required Actions) before a winner takes traffic, even when the config does not.",
    ),
    "reason": Param(
        "scheduled",
        type="string",
        title="Reason",
        description="Why this run was started; recorded on the MLflow run and the model version.",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="Only say what this run would do (ingest's log: window and rows, gates, champion, target, "
        "storm guards); every later task is skipped and nothing changes. `airloop plan` prints the same.",
    ),
}


def training_params(config: PipelineConfig) -> dict[str, Param]:
    """The training run's form: its window, the config's tunable model parameters, then the rest.

    Each tunable parameter (`training.model.tunable`) is a field whose default is its value in the
    pipeline's config, typed by that value.
    """
    model = config.training.model
    named = model.path.replace(":", ".").rsplit(".", 1)[-1]
    tunable = {}
    for name, value in model.tunable_values.items():  # none is named as a field below (ModelConfig checks)
        tunable[name] = Param(
            value,
            type=_FIELD_TYPES[type(value)],
            title=name.replace("_", " ").capitalize(),
            description=f"{named} `{name}` for this run (training.model.{name} in the config: {value}).",
        )
    window = {k: v for k, v in TRAINING_PARAMS.items() if k.startswith("window_")}
    window["window_days"] = Param(
        config.training.window_days,
        type="integer",
        minimum=1,
        maximum=3660,
        title="Data window (days)",
        description=f"Train on this many days of data ending at the run's date (training.window_days: "
        f"{config.training.window_days}).",
    )
    return {**window, **tunable, **{k: v for k, v in TRAINING_PARAMS.items() if k not in window}}


DEPLOY_PARAMS = {
    "version": Param(
        "champion",
        type="string",
        pattern=r"^(champion|[0-9]+)$",
        title="Model version",
        description="A version number to deploy (or roll back to), or `champion`.",
    ),
    "target": Param(
        "auto",
        type="string",
        enum=["auto", "docker", "kubernetes", "local"],
        title="Target",
        description="auto: docker when an engine answers and can build the image, else local.",
    ),
    "make_champion": Param(
        True,
        type="boolean",
        title="Make it the champion",
        description="Point the `champion` alias at the deployed version, so the registry says what serves.",
    ),
    "model_name": Param(
        None,
        type=["null", "string"],
        title="Registered model (optional)",
        description="Empty: the model of the pipeline config.",
    ),
    "reason": Param("manual deploy", type="string", title="Reason"),
}

MONITORING_PARAMS = {
    "window_start": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Window start (optional)",
        description="Monitor predictions served from this time (ISO 8601). Empty: the run's data interval.",
    ),
    "window_end": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Window end (optional)",
        description="…up to this time, exclusive. Set both or neither.",
    ),
    "reason": Param("scheduled", type="string", title="Reason"),
}

READMIT_PARAMS = {
    "snapshot_id": Param(
        "",
        type="string",
        pattern=r"^\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2}$",
        title="Quarantined batch",
        description="The batch to re-admit, e.g. 2026-03-15_2026-03-22 (the Airloop page and "
        "`airloop quarantine list` name them).",
    ),
    "why": Param(
        "",
        type="string",
        minLength=3,
        title="What was fixed",
        description="What was fixed at the source; kept with the attempt beside who asked.",
    ),
}

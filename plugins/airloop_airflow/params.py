"""Typed Params for Airloop DAGs, shared so the UI trigger form is validated the same everywhere."""

from __future__ import annotations

from airflow.sdk import Param

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
    "learning_rate": Param(
        0.1,
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        title="Learning rate",
        description="HistGradientBoostingClassifier learning_rate.",
    ),
    "max_iter": Param(200, type="integer", minimum=1, maximum=5000, title="Boosting iterations"),
    "max_leaf_nodes": Param(31, type="integer", minimum=2, maximum=1024, title="Max leaf nodes per tree"),
    "force_promote": Param(
        False,
        type="boolean",
        title="Force promotion",
        description="Make this run's model the champion even if it does not beat the current one.",
    ),
    "reason": Param(
        "scheduled",
        type="string",
        title="Reason",
        description="Why this run was started; recorded on the MLflow run and the model version.",
    ),
}

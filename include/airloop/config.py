"""Pipeline configuration: which dataset, which features and label, which model, which thresholds.

Adding a dataset means a YAML file like ``include/config/flights.yaml`` and an expectation
suite in ``include/gx/``; no code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from airloop.settings import PROJECT_ROOT


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilesSource(_Strict):
    """A folder of date-partitioned files: one folder (or file) per day."""

    type: Literal["files"] = "files"
    path: Path = Field(description="Folder of partitions; relative paths are under AIRLOOP_HOME.")
    partition: str = Field(
        default="date={date:%Y-%m-%d}",
        description="Sub-path of one day's partition, formatted with the day as `date`.",
    )
    format: Literal["parquet", "csv"] = "parquet"


class SqlSource(_Strict):
    """A SQL query over the run's data interval, bound as `:start` and `:end` (end exclusive)."""

    type: Literal["sql"] = "sql"
    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg2://user@host/db.")
    query: str


Source = Annotated[FilesSource | SqlSource, Field(discriminator="type")]


class LabelConfig(_Strict):
    """Binary label: positive when `column >= threshold`; rows with no label are dropped."""

    column: str
    threshold: float


class DatasetConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_\-]+$")
    source: Source
    suite: Path = Field(description="Great Expectations suite (JSON); relative to include/gx/.")
    time_column: str = Field(description="Event time, used to order rows and split the holdout.")
    numeric_features: list[str]
    categorical_features: list[str]
    label: LabelConfig
    leakage_columns: list[str] = Field(
        default_factory=list,
        description="Columns known only after the fact; never features (checked).",
    )

    @model_validator(mode="after")
    def _features_do_not_leak(self) -> DatasetConfig:
        features = set(self.numeric_features) | set(self.categorical_features)
        leaked = sorted(features & (set(self.leakage_columns) | {self.label.column}))
        if leaked:
            raise ValueError(f"features include columns known only after the fact: {leaked}")
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    @property
    def suite_path(self) -> Path:
        return self.suite if self.suite.is_absolute() else PROJECT_ROOT / "include" / "gx" / self.suite


class ModelConfig(_Strict):
    """HistGradientBoostingClassifier hyperparameters; Params of a run override them."""

    learning_rate: float = Field(default=0.1, gt=0, le=1)
    max_iter: int = Field(default=200, ge=1, le=5000)
    max_leaf_nodes: int = Field(default=31, ge=2, le=1024)
    l2_regularization: float = Field(default=0.0, ge=0)
    class_weight: Literal["balanced"] | None = "balanced"
    random_state: int = 42


class TrainingConfig(_Strict):
    window_days: int = Field(default=30, ge=1, le=3660, description="Days of data per run.")
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1, description="Latest rows held out.")
    min_rows: int = Field(default=500, ge=10, description="Fewer labelled rows fail the run.")
    model: ModelConfig = Field(default_factory=ModelConfig)


class PromotionConfig(_Strict):
    metric: Literal["roc_auc", "average_precision", "f1", "accuracy"] = "roc_auc"
    min_improvement: float = Field(
        default=0.001, ge=0, description="The challenger must beat the champion by at least this much."
    )


class DriftPolicy(_Strict):
    """When drift of the served inputs counts as degradation."""

    max_drifted_share: float = Field(
        default=0.3, gt=0, le=1, description="Degraded when at least this share of the features drifted."
    )
    key_features: list[str] = Field(
        default_factory=list, description="Degraded when any of these drifted, whatever the share."
    )
    min_rows: int = Field(default=500, ge=30, description="Fewer served rows in a window: no drift verdict.")


class PerformancePolicy(_Strict):
    """When the served model's measured quality (once labels land) counts as degradation."""

    metric: Literal["roc_auc", "average_precision", "f1", "accuracy"] = "roc_auc"
    floor_ratio: float = Field(
        default=0.95, gt=0, le=1, description="Degraded below this share of the champion's validation score."
    )
    min_labels: int = Field(default=200, ge=10, description="Fewer labelled rows: no performance verdict.")


class StormGuards(_Strict):
    """What keeps a noisy signal from turning into a storm of retraining runs."""

    cooldown_minutes: float = Field(default=360, ge=0, description="No new retraining this soon after the last.")
    dedupe_hours: float = Field(
        default=24, ge=0, description="The same reason for the same model version within this is a duplicate."
    )
    circuit_breaker_after: int = Field(
        default=3, ge=1, description="After this many challengers in a row lose, stop retraining and alert."
    )


class AlertsConfig(_Strict):
    """Where alerts go besides the task log and `<home>/alerts/alerts.jsonl` (always on)."""

    webhook_url_env: str | None = Field(
        default=None, description="Env var holding a URL that receives each alert as JSON (POST)."
    )
    slack_webhook_url_env: str | None = Field(default=None, description="Env var holding a Slack incoming webhook.")
    email_to: list[str] = Field(default_factory=list, description="Recipients, sent through SMTP (AIRLOOP_SMTP_*).")


class MonitoringConfig(_Strict):
    """The degradation policy and how monitoring reads and reports a window."""

    labels_path: Path = Field(
        default=Path("labels/flights"),
        description="The labels feed (see airloop.monitoring.labels); relative paths are under AIRLOOP_HOME.",
    )

    report_sample_rows: int = Field(
        default=20_000,
        ge=1_000,
        description="Evidently's reports (for people) run on at most this many rows per side; verdicts use every row.",
    )
    label_lookback_days: int = Field(
        default=14, ge=0, description="Past windows whose labels land within this are recomputed."
    )
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    performance: PerformancePolicy = Field(default_factory=PerformancePolicy)
    guards: StormGuards = Field(default_factory=StormGuards)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


class PipelineConfig(_Strict):
    """Everything one pipeline needs; loaded from one YAML file."""

    model_name: str = Field(description="Registered model name in the MLflow Model Registry.")
    experiment: str = Field(description="MLflow experiment for training and validation runs.")
    dataset: DatasetConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    @model_validator(mode="after")
    def _key_features_are_features(self) -> PipelineConfig:
        unknown = sorted(set(self.monitoring.drift.key_features) - set(self.dataset.features))
        if unknown:
            raise ValueError(f"monitoring.drift.key_features are not features of the dataset: {unknown}")
        return self


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load a pipeline config file; `overrides` is merged over it key by key (nested dicts)."""
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return PipelineConfig.model_validate(_merge(raw, overrides or {}))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged

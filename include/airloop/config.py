"""Pipeline configuration: which dataset, which features and label, which model, which thresholds.

Adding a dataset means a YAML file like ``include/pipelines/flights.yaml`` and an expectation
suite in ``include/gx/``; no code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airloop.settings import PROJECT_ROOT
from airloop.tasks import DEFAULT_ESTIMATORS, LIVE_METRICS, METRICS, TaskKind, is_classification

#: A value a person writes in the config: a label value, or a tunable parameter (a form field's value).
Scalar = bool | int | float | str


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
    """The label and the task it sets (see `airloop.tasks`); rows with no label are dropped.

    - `binary` (the default): positive when `column >= threshold` (a number), or when its value
      is one of `positive` (strings, numbers or booleans); the model predicts 0 or 1.
    - `multiclass`: the column's values are the classes, kept as they are (the model answers them).
    - `regression`: the column is a number, which the model predicts.
    """

    column: str
    task: TaskKind = "binary"
    threshold: float | None = None
    positive: list[Scalar] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_rule(self) -> LabelConfig:
        has_rule = self.threshold is not None or self.positive is not None
        if self.task == "binary" and (self.threshold is None) == (self.positive is None):
            raise ValueError("a binary label needs one rule: `threshold` (positive when >= it) or `positive` (values)")
        if self.task != "binary" and has_rule:
            raise ValueError(f"a {self.task} label takes no `threshold` or `positive`: those make a binary label")
        return self

    def target(self, values: Any) -> Any:
        """What the model learns from a pandas Series of label values (none of them missing):
        0/1 (binary), the values themselves (multiclass) or numbers (regression)."""
        if self.task == "multiclass":
            return values
        if self.task == "regression":
            return values.astype("float64")
        positive = values.isin(self.positive) if self.positive is not None else values >= self.threshold
        return positive.astype("int64")


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
    def training_columns(self) -> list[str]:
        """What training reads from a snapshot (and promotion, for its held-out rows): features, label, time."""
        return list(dict.fromkeys([*self.features, self.label.column, self.time_column]))

    @property
    def suite_path(self) -> Path:
        return self.suite if self.suite.is_absolute() else PROJECT_ROOT / "include" / "gx" / self.suite


#: `package.module.Name` or `package.module:name` (as `pkgutil.resolve_name` reads them).
IMPORT_PATH = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)?$"


#: The training run's own Params (`airloop.pipeline.RunOptions` and `reason`): no tunable parameter may take one's name.
RUN_PARAM_NAMES = frozenset(
    {"window_days", "window_end", "force_promote", "require_approval", "dry_run", "reason", "model"}
)


class ModelConfig(BaseModel):
    """The model: a scikit-learn estimator by import path, or a function of yours that builds the pipeline.

    Every other key is a keyword argument of the estimator (or of the builder), for example::

        model:
          estimator: sklearn.linear_model.LogisticRegression
          C: 0.5
          max_iter: 1000
          tunable: [C]

    With `estimator`, Airloop adds the preprocessing (see `airloop.training.model.build_pipeline`).
    With `builder`, the function is called as `builder(dataset, **parameters)` and returns the
    whole scikit-learn `Pipeline`, preprocessing included, taking the dataset's feature columns.
    Either way the model must fit the task: a classifier with `predict_proba`, or a regressor. With
    neither key, the task's default (`airloop.tasks.DEFAULT_ESTIMATORS`: gradient boosting) is
    filled in when the pipeline config loads. The names in `tunable`
    are fields of the training DAG's Params form, each with the value set here as its default; a
    run's value overrides it for that run. Nothing is imported when the config loads: a wrong path
    or parameter fails the train task, with the field's name.
    """

    model_config = ConfigDict(extra="allow")

    estimator: str | None = Field(
        default=None, pattern=IMPORT_PATH, description="Estimator class (none: the task's default)."
    )
    builder: str | None = Field(
        default=None, pattern=IMPORT_PATH, description="Function returning the pipeline (instead of `estimator`)."
    )
    tunable: list[str] = Field(default_factory=list, description="Parameters offered in the run's Params form.")

    @property
    def path(self) -> str:
        """The builder's or the estimator's import path (the task's default estimator is filled in at load)."""
        found = self.builder or self.estimator
        if found is None:
            raise ValueError("training.model names no estimator: load it as part of a pipeline config")
        return found

    @property
    def parameters(self) -> dict[str, Any]:
        """The keyword arguments of the estimator (or the builder): every key but the three above."""
        return dict(self.model_extra or {})

    @property
    def tunable_values(self) -> dict[str, Scalar]:
        """Each tunable parameter with its value in the config (the Params form's defaults)."""
        return {name: self.parameters[name] for name in self.tunable}

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.builder is not None and self.estimator is not None:
            raise ValueError("set `estimator` or `builder`, not both")
        for name in self.tunable:
            if name in RUN_PARAM_NAMES:
                raise ValueError(f"tunable parameter {name!r} is already a field of the training run's form")
            value = self.parameters.get(name)
            if value is None or not isinstance(value, Scalar):
                raise ValueError(
                    f"tunable parameter {name!r} needs a value here (a number, string or boolean): "
                    "it is the Params form's default"
                )
        return self


class TrainingConfig(_Strict):
    window_days: int = Field(default=30, ge=1, le=3660, description="Days of data per run.")
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1, description="Latest rows held out.")
    min_rows: int = Field(default=500, ge=10, description="Fewer labelled rows fail the run.")
    refit: bool = Field(
        default=False,
        description="After scoring on the held-out rows, fit the same pipeline on the whole window, so the served "
        "model knows the latest days; the recorded metrics stay the held-out ones. flights.yaml turns it on "
        "(with recency_half_life_days 7 and concept_shift.retrain_after_days 2), measured on the full-year "
        "replay (README, The loop, measured).",
    )
    recency_half_life_days: float | None = Field(
        default=None,
        gt=0,
        description="Weigh each row by its age: a row this many days older than the window's last counts half "
        "(none: every row counts the same), so a change is learned from its first days.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig)


class ServabilityPolicy(_Strict):
    """What a winning challenger must show in the target's candidate slot before it takes traffic.

    Besides health and the contract (its input example predicts; a missing or mistyped column
    gets 422; the serving token is required when set): this latency budget.
    """

    requests: int = Field(
        default=200, ge=0, le=10_000, description="Requests of the input example timed for the budget (0: none)."
    )
    p95_latency_ms: float = Field(
        default=500, ge=0, description="The 95th percentile of those requests' latency must be at most this."
    )


class ShadowPolicy(_Strict):
    """A challenger the held-out rule rejected is judged again on live requests once their labels land.

    The held-out score judges a model fitted without the window's latest days (`training.refit`
    then refits on them): right after a shift those are the days that matter, and only the refitted
    challenger has seen them. Shadowing, it scores the champion's logged requests it was not fitted
    on; it is promoted (through the servability gate) if it beats the champion on those same rows.
    """

    days: int = Field(
        default=0,
        ge=0,
        le=30,
        description="Labelled days of live requests a rejected challenger is judged on; 0: off (a rejection is final).",
    )
    min_rows: int = Field(default=500, ge=50, description="Fewer labelled live rows than this: no verdict yet.")


class PromotionConfig(_Strict):
    metric: str | None = Field(
        default=None,
        description="Held-out metric compared (one of the task's, `airloop.tasks.METRICS`; none: the task's "
        "first). Its direction is the metric's own: log_loss, rmse and mae are better smaller.",
    )
    min_improvement: float = Field(
        default=0.001, ge=0, description="The challenger must beat the champion by at least this much."
    )
    servability: ServabilityPolicy = Field(default_factory=ServabilityPolicy)
    approval: Literal["none", "required"] = Field(
        default="none",
        description="`required`: a person approves each winner in the Airflow UI (Required Actions) or the "
        "REST API before it takes traffic and `champion`; no answer within `approval_timeout_hours` rejects.",
    )
    approval_timeout_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="How long an approval request waits before it counts as rejected."
    )
    shadow: ShadowPolicy = Field(default_factory=ShadowPolicy)


class DriftPolicy(_Strict):
    """Drift of the served inputs: always measured and reported; a degradation only if `raises`.

    On the 2013 replay drift fired on every daily window and did not tell when a retrained model
    would do better (`make evaluate-loop`), so by default it informs people and decides nothing.
    """

    raises: bool = Field(default=False, description="Let drift alone raise a degradation (off: reported only).")
    max_drifted_share: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="With `raises`: degraded when at least this share of the features drifted, each feature "
        "weighted by its importance to the served version when recorded.",
    )
    key_features: list[str] = Field(
        default_factory=list, description="With `raises`: degraded when any of these drifted, whatever the share."
    )
    min_rows: int = Field(default=500, ge=30, description="Fewer served rows in a window: no drift verdict.")


class ConceptShiftPolicy(_Strict):
    """Degraded when a segment's outcomes leave what the served model predicts for it, day after day.

    Each labelled day's calibrated predictions are first moved to the day's overall outcome rate
    (a storm delays everyone; that is not the model's fault), then each segment's observed rate is
    compared with its prediction. See `airloop.monitoring.signals`.
    """

    segments: list[str] = Field(
        default_factory=list, description="Columns whose values are the segments (default: the categorical features)."
    )
    min_rows: int = Field(default=50, ge=10, description="A segment needs this many labelled rows on a day.")
    min_z: float = Field(default=6.0, gt=0, description="Standard deviations between observed and predicted.")
    min_effect: float = Field(default=0.2, gt=0, le=1, description="Observed minus predicted rate, at least.")
    persist_days: int = Field(default=2, ge=1, le=14, description="On this many labelled days in a row: an alert.")
    retrain_after_days: int = Field(
        default=8,
        ge=1,
        le=60,
        description="On this many labelled days in a row: a retraining. A challenger learns the new regime only "
        "once it is in its training rows: with the latest training.holdout_fraction of the window held out "
        "(6 of 30 days by default) that takes 8 days, unless training.refit and recency_half_life_days let it "
        "learn from the first days: flights.yaml ships 2 with both (the alert's day), chosen on the full-year replay.",
    )

    @model_validator(mode="after")
    def _retrain_after_the_alert(self) -> ConceptShiftPolicy:
        if self.retrain_after_days < self.persist_days:
            raise ValueError("concept_shift.retrain_after_days must be at least persist_days")
        return self


class PerformancePolicy(_Strict):
    """The served model's measured quality once labels land: reported per window."""

    metric: str | None = Field(
        default=None,
        description="The window's headline metric, one the served rows can give (`airloop.tasks.LIVE_METRICS`; "
        "none: the task's first).",
    )
    min_labels: int = Field(default=200, ge=10, description="Fewer labelled rows: no performance verdict.")


class ServingHealthBudget(_Strict):
    """The serving endpoint's budget, checked each monitoring window; a breach alerts, never retrains."""

    p50_ms: float = Field(default=50, gt=0, description="Median latency of answered scoring requests, at most.")
    p99_ms: float = Field(default=250, gt=0, description="99th percentile latency, at most.")
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="Share of requests answered 5xx, at most.")
    min_requests: int = Field(default=20, ge=1, description="Fewer requests since the last check: no verdict.")


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


#: The schedule presets a monitoring DAG may use besides a cron expression (Airflow's names).
SCHEDULE_PRESETS = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"})


class MonitoringConfig(_Strict):
    """The degradation policy and how monitoring reads and reports a window."""

    schedule: str = Field(
        default="0 3 * * *", description="When the monitoring DAG runs (cron, or a preset such as @daily)."
    )
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
    concept_shift: ConceptShiftPolicy = Field(default_factory=ConceptShiftPolicy)
    performance: PerformancePolicy = Field(default_factory=PerformancePolicy)
    serving_health: ServingHealthBudget = Field(default_factory=ServingHealthBudget)
    guards: StormGuards = Field(default_factory=StormGuards)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter  # Airflow's own cron parser: what it accepts, the DAG accepts

        if value not in SCHEDULE_PRESETS and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is neither a cron expression nor one of {', '.join(sorted(SCHEDULE_PRESETS))}")
        return value


class RetrainingConfig(_Strict):
    """When the pipeline trains: one policy for the calendar and the degradation trigger.

    - `schedule`: retrain once `max_age_days` of data have landed after the champion's training
      data (or the last retraining), and promote if the challenger wins; degradations are
      alerted, never retrained on. Age counts landed data, not the clock.
    - `degradation`: retrain only on a degradation signal (a concept shift).
    - `both` (the default, chosen on the 2013 replay): the age bound, and degradation signals
      between, each retraining restarting the clock.

    Every retraining goes through `airloop_retraining`'s storm guards.
    """

    strategy: Literal["schedule", "degradation", "both"] = "both"
    max_age_days: int = Field(
        default=30,
        ge=1,
        le=3660,
        description="`schedule`/`both`: retrain once this many days of data have landed since the last training.",
    )

    @property
    def retrains_on_age(self) -> bool:
        return self.strategy in ("schedule", "both")

    @property
    def retrains_on_degradation(self) -> bool:
        return self.strategy in ("degradation", "both")


class ServingConfig(_Strict):
    """How the endpoint answers; recorded with the model at training, so every target serves it alike."""

    predict_method: Literal["predict", "predict_proba"] = Field(
        default="predict",
        description="What a request that names no `params.predict_method` gets: class labels (`predict`, "
        "as `mlflow models serve` answers) or one probability per class (`predict_proba`).",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The pipeline's stable serving port; unset: AIRLOOP_SERVING_PORT. Each pipeline needs its own.",
    )


class PipelineConfig(_Strict):
    """Everything one pipeline needs; loaded from one YAML file."""

    model_name: str = Field(description="Registered model name in the MLflow Model Registry.")
    experiment: str = Field(description="MLflow experiment for training and validation runs.")
    dataset: DatasetConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    retraining: RetrainingConfig = Field(default_factory=RetrainingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)

    @model_validator(mode="after")
    def _fits_the_task(self) -> PipelineConfig:
        """Fill in the task's default estimator and refuse what the task cannot do, naming the field."""
        task = self.task
        model = self.training.model
        if model.builder is None and model.estimator is None:
            model.estimator = DEFAULT_ESTIMATORS[task]
        if self.promotion_metric not in METRICS[task]:
            raise ValueError(
                f"promotion.metric {self.promotion_metric!r} is not a {task} metric: {list(METRICS[task])}"
            )
        if self.performance_metric not in LIVE_METRICS[task]:
            raise ValueError(
                f"monitoring.performance.metric {self.performance_metric!r} cannot be measured on served {task} "
                f"rows: one of {list(LIVE_METRICS[task])}"
            )
        if not is_classification(task) and self.serving.predict_method == "predict_proba":
            raise ValueError("serving.predict_method predict_proba: a regression model has no probabilities")
        if task == "multiclass" and self.promotion.shadow.days:
            raise ValueError(
                "promotion.shadow needs each served row's scores, which the inference log keeps for binary and "
                "regression models only: set shadow.days 0 for a multiclass label"
            )
        if task != "binary" and self.retraining.strategy == "degradation" and not self.monitoring.drift.raises:
            raise ValueError(
                f"retraining.strategy degradation would never retrain a {task} model: concept shift is watched on "
                "binary labels only; use `schedule` or `both`, or let drift raise (monitoring.drift.raises)"
            )
        return self

    @property
    def task(self) -> TaskKind:
        return self.dataset.label.task

    @property
    def promotion_metric(self) -> str:
        """`promotion.metric`, or the task's default when the file names none."""
        return self.promotion.metric or METRICS[self.task][0]

    @property
    def performance_metric(self) -> str:
        """`monitoring.performance.metric`, or the task's default when the file names none."""
        return self.monitoring.performance.metric or LIVE_METRICS[self.task][0]

    @model_validator(mode="after")
    def _monitored_columns_are_features(self) -> PipelineConfig:
        unknown = sorted(set(self.monitoring.drift.key_features) - set(self.dataset.features))
        if unknown:
            raise ValueError(f"monitoring.drift.key_features are not features of the dataset: {unknown}")
        unknown = sorted(set(self.monitoring.concept_shift.segments) - set(self.dataset.categorical_features))
        if unknown:
            raise ValueError(
                f"monitoring.concept_shift.segments are not categorical features of the dataset: {unknown}"
            )
        return self

    @property
    def segments(self) -> list[str]:
        """The columns concept shift is watched on."""
        return self.monitoring.concept_shift.segments or list(self.dataset.categorical_features)


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

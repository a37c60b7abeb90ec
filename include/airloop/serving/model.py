"""A model to serve: an MLflow scikit-learn model directory, read without MLflow.

The serving image carries only what prediction needs (scikit-learn, skops, pandas); the
registry is reached once, at build or start time, by :func:`fetch_model`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from airloop.serving.rows import Rows, as_frame
from airloop.tasks import served_score

MODEL_INFO_FILE = "airloop-model.json"

#: MLflow signature types and the pandas dtypes a column of that type is given.
NUMERIC_TYPES = {"double": "float64", "float": "float64", "long": "float64", "integer": "float64"}
STRING_TYPES = {"string"}
BOOLEAN_TYPES = {"boolean"}
PREDICT_METHODS = ("predict", "predict_proba")  # class labels (a regressor's values), or one probability per class
# The MLmodel metadata key naming what a request without `params.predict_method` gets (the
# pipeline's `serving.predict_method`, written at training).
PREDICT_METHOD_KEY = "airloop.predict_method"
TASK_KEY = "airloop.task"  # the label's task (`airloop.tasks`): binary, multiclass or regression


def model_metadata(predict_method: str, task: str) -> dict[str, str]:
    """What training records in the MLmodel file for serving to read back on any target."""
    return {PREDICT_METHOD_KEY: predict_method, TASK_KEY: task}


class ModelLoadError(RuntimeError):
    """The model directory cannot be served."""


@dataclass(frozen=True)
class ModelInfo:
    """Where the served model came from; `GET /version` returns it."""

    name: str = "unknown"
    version: str = "unknown"
    alias: str | None = None
    run_id: str | None = None
    model_uri: str | None = None
    image: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class ServingModel:
    """A loaded pipeline, its input columns (name -> MLflow type, and which are required) and an
    input example."""

    pipeline: Any
    columns: dict[str, str]
    required: set[str]
    example: pd.DataFrame | None
    info: ModelInfo
    predict_method: str = "predict"  # what a request that names none gets
    task: str = "binary"  # `airloop.tasks`: what `predict` answers and what the log's score is
    classes: np.ndarray | None = field(init=False)  # a classifier's classes, as the user's label values
    #: The pipeline's `predict_proba` (a regressor's `predict`), on arrays where that is proven exact
    #: (`airloop.serving.arrays`).
    raw_predict: Callable[[Rows], np.ndarray] = field(init=False)
    takes_columns: bool = field(init=False)  # whether `raw_predict` is the array path (it takes columns)

    def __post_init__(self) -> None:
        from airloop.serving.arrays import array_predictor

        method = "predict" if self.task == "regression" else "predict_proba"
        classes = None if self.task == "regression" else getattr(self.pipeline, "classes_", None)
        self.classes = None if classes is None else np.asarray(classes)  # unfitted: predicting says so
        on_arrays = array_predictor(self.pipeline, self.example, method)
        self.takes_columns = on_arrays is not None
        self.raw_predict = on_arrays or getattr(self.pipeline, method)

    @property
    def predict_methods(self) -> tuple[str, ...]:
        """The `params.predict_method` values this model answers: a regressor has no probabilities."""
        return ("predict",) if self.task == "regression" else PREDICT_METHODS

    def predict(self, rows: Rows) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (class labels, as `mlflow models serve` returns them, or a regressor's values) and
        class probabilities, one column per class in `classes` order (a regressor: None). A request's
        columns go to the array path as they are; the pipeline itself gets a DataFrame of them."""
        if not self.takes_columns:
            rows = as_frame(rows)
        if self.task == "regression":
            return np.asarray(self.raw_predict(rows), dtype="float64"), None
        proba = self.raw_predict(rows)
        classes = self.classes if self.classes is not None else np.arange(proba.shape[1])
        return classes[proba.argmax(axis=1)], proba

    def score_of(self, predictions: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
        """The inference log's `score` of each row (`airloop.tasks.served_score`)."""
        return served_score(self.task, predictions, proba)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """What the inference log records as `score` for these rows."""
        return self.score_of(*self.predict(frame))

    def warm_up(self) -> None:
        """Predict the input example, as a server must before it is ready to take traffic; raises if that fails."""
        if self.example is None:
            raise ModelLoadError("the model has no input example to warm up with")
        labels, _ = self.predict(self.example)
        if len(labels) != len(self.example):
            raise ModelLoadError("warm-up prediction returned the wrong number of rows")


def task_of(pipeline: Any, recorded: str | None) -> str:
    """The task a model was trained for: as recorded at training, else (an older model) its shape."""
    from airloop.tasks import TASKS

    if recorded is not None:
        if recorded not in TASKS:
            raise ModelLoadError(f"MLmodel metadata {TASK_KEY}={recorded!r} is not one of {list(TASKS)}")
        return recorded
    if not hasattr(pipeline, "predict_proba"):
        return "regression"
    return "binary" if len(getattr(pipeline, "classes_", [0, 1])) == 2 else "multiclass"


def load_model_dir(path: Path, image: str | None = None) -> ServingModel:
    """Load an MLflow sklearn model saved with skops, trusting only the types it lists."""
    import skops.io

    path = Path(path)
    try:
        mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    except FileNotFoundError as err:
        raise ModelLoadError(f"{path} is not an MLflow model directory (no MLmodel file)") from err
    flavor = mlmodel.get("flavors", {}).get("sklearn")
    if not flavor or flavor.get("serialization_format") != "skops":
        raise ModelLoadError(f"{path}: only scikit-learn models saved with skops can be served")
    trusted = flavor.get("skops_trusted_types") or []
    pipeline = skops.io.load(path / flavor["pickled_model"], trusted=trusted)
    signature = mlmodel.get("signature") or {}
    if not signature.get("inputs"):
        raise ModelLoadError(f"{path}: the model has no input signature to check requests against")
    inputs = json.loads(signature["inputs"])
    columns = {c["name"]: c["type"] for c in inputs}
    required = {c["name"] for c in inputs if c.get("required", True)}
    info = read_model_info(path) or ModelInfo()
    if image:
        info = ModelInfo(**{**info.as_dict(), "image": image})
    metadata = mlmodel.get("metadata") or {}
    method = metadata.get(PREDICT_METHOD_KEY, "predict")  # older models name none
    if method not in PREDICT_METHODS:
        known = list(PREDICT_METHODS)
        raise ModelLoadError(f"{path}: MLmodel metadata {PREDICT_METHOD_KEY}={method!r} is not one of {known}")
    try:
        task = task_of(pipeline, metadata.get(TASK_KEY))
    except ModelLoadError as err:
        raise ModelLoadError(f"{path}: {err}") from err
    example = _input_example(path, mlmodel)
    return ServingModel(pipeline, columns, required, example, info, predict_method=method, task=task)


def read_model_info(path: Path) -> ModelInfo | None:
    """Where a fetched model directory came from, or None if `fetch_model` did not write it."""
    info_path = Path(path) / MODEL_INFO_FILE
    return ModelInfo(**json.loads(info_path.read_text())) if info_path.exists() else None


def _input_example(path: Path, mlmodel: dict[str, Any]) -> pd.DataFrame | None:
    meta = mlmodel.get("saved_input_example_info") or {}
    file = path / meta.get("artifact_path", "input_example.json")
    if not file.exists():
        return None
    body = json.loads(file.read_text())
    if "columns" in body and "data" in body:
        return pd.DataFrame(body["data"], columns=body["columns"])
    return pd.DataFrame(body)


def cached_model(name: str, version: str, model_dir: Path, *, tracking_uri: str) -> ServingModel:
    """Version `version` of registered model `name`, fetched into `model_dir` the first time and
    loaded from there after (a registered version's artifacts never change)."""
    if read_model_info(model_dir) is None:
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        fetch_model(f"models:/{name}/{version}", model_dir, tracking_uri=tracking_uri)
    return load_model_dir(model_dir)


def fetch_model(model_uri: str, dest: Path, *, tracking_uri: str | None, alias: str | None = None) -> ModelInfo:
    """Download a registered model (`models:/name@alias` or `models:/name/3`) into `dest`.

    `alias`: the alias a version fetched by number was named by, recorded in its model info."""
    import shutil

    import mlflow
    from mlflow.tracking import MlflowClient

    name, _, ref = model_uri.removeprefix("models:/").partition("/")
    client = MlflowClient(tracking_uri=tracking_uri)
    if "@" in name:
        name, alias = name.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        version = client.get_model_version(name, ref)
    shutil.rmtree(dest, ignore_errors=True)
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        f"models:/{name}/{version.version}", dst_path=str(dest.parent / ".download")
    )
    shutil.move(local, dest)
    shutil.rmtree(dest.parent / ".download", ignore_errors=True)
    info = ModelInfo(
        name=name,
        version=str(version.version),
        alias=alias,
        run_id=version.run_id,
        model_uri=f"models:/{name}/{version.version}",
    )
    (dest / MODEL_INFO_FILE).write_text(json.dumps(info.as_dict(), indent=2))
    return info

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

MODEL_INFO_FILE = "airloop-model.json"

#: MLflow signature types and the pandas dtypes a column of that type is given.
NUMERIC_TYPES = {"double": "float64", "float": "float64", "long": "float64", "integer": "float64"}
STRING_TYPES = {"string"}
BOOLEAN_TYPES = {"boolean"}
PREDICT_METHODS = ("predict", "predict_proba")  # class labels, or one probability per class
# The MLmodel metadata key naming what a request without `params.predict_method` gets (the
# pipeline's `serving.predict_method`, written at training).
PREDICT_METHOD_KEY = "airloop.predict_method"


def model_metadata(predict_method: str) -> dict[str, str]:
    """What training records in the MLmodel file for serving to read back on any target."""
    return {PREDICT_METHOD_KEY: predict_method}


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
    classes: np.ndarray = field(init=False)
    #: The pipeline's `predict_proba`, on arrays where that is proven exact (`airloop.serving.arrays`).
    predict_proba: Callable[[pd.DataFrame], np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        from airloop.serving.arrays import array_predictor

        self.classes = np.asarray(getattr(self.pipeline, "classes_", [0, 1]))
        self.predict_proba = array_predictor(self.pipeline, self.example) or self.pipeline.predict_proba

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Class labels (as `mlflow models serve` returns them) and class probabilities, one column
        per class in `classes` order (the last is the positive class's)."""
        proba = self.predict_proba(frame)
        return self.classes[proba.argmax(axis=1)], proba

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The positive class's probabilities (what the inference log records as `score`)."""
        return self.predict(frame)[1][:, -1]


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
    method = (mlmodel.get("metadata") or {}).get(PREDICT_METHOD_KEY, "predict")  # older models name none
    if method not in PREDICT_METHODS:
        known = list(PREDICT_METHODS)
        raise ModelLoadError(f"{path}: MLmodel metadata {PREDICT_METHOD_KEY}={method!r} is not one of {known}")
    return ServingModel(pipeline, columns, required, _input_example(path, mlmodel), info, predict_method=method)


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


def fetch_model(model_uri: str, dest: Path, *, tracking_uri: str) -> ModelInfo:
    """Download a registered model (`models:/name@alias` or `models:/name/3`) into `dest`."""
    import shutil

    import mlflow
    from mlflow.tracking import MlflowClient

    name, _, ref = model_uri.removeprefix("models:/").partition("/")
    alias = None
    if "@" in name:
        name, alias = name.split("@", 1)
    client = MlflowClient(tracking_uri=tracking_uri)
    version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, ref)
    shutil.rmtree(dest, ignore_errors=True)
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

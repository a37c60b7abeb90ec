"""The model: a scikit-learn Pipeline with its preprocessing, fit for the label's task.

The estimator is the config's (`training.model`, see `airloop.config.ModelConfig`). Airloop adds
the preprocessing that fits it: an estimator that takes categorical features natively (it has a
`categorical_features` parameter, as gradient boosting's `HistGradientBoostingClassifier` does)
gets them ordinal-encoded, unseen and missing values as NaN, numeric columns as they are; any
other gets them one-hot encoded (unseen values ignored) and numeric columns median-imputed and
standardised. A `builder` function returns the whole pipeline instead.
"""

from __future__ import annotations

import inspect
import pkgutil
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.validation import has_fit_parameter

from airloop.config import DatasetConfig, ModelConfig
from airloop.tasks import DEFAULT_ESTIMATORS


class ModelConfigError(ValueError):
    """`training.model` names something that cannot be the model; the message names the field."""


def build_pipeline(dataset: DatasetConfig, model: ModelConfig) -> Pipeline:
    """The unfitted pipeline the config asks for: preprocessing, then the estimator (step `model`).

    The model must fit the label's task: a classifier with `predict_proba`, or a regressor.
    """
    task = dataset.label.task
    if model.builder is not None:
        built = _resolve(model.builder, "builder")(dataset, **model.parameters)
        if not isinstance(built, Pipeline):
            raise ModelConfigError(
                f"training.model.builder {model.builder} returned {type(built).__name__}, not a scikit-learn Pipeline"
            )
        _check_task(built, task, f"the pipeline from training.model.builder {model.builder}")
        return built
    path = model.estimator or DEFAULT_ESTIMATORS[task]
    estimator_class: Any = _resolve(path, "estimator")
    if not (inspect.isclass(estimator_class) and issubclass(estimator_class, BaseEstimator)):
        raise ModelConfigError(f"training.model.estimator {path} is not a scikit-learn estimator class")
    known = {
        name
        for name, parameter in inspect.signature(estimator_class.__init__).parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    unknown = sorted(set(model.parameters) - set(known))
    if unknown:
        raise ModelConfigError(
            f"training.model: {', '.join(unknown)} not a parameter of {estimator_class.__name__} "
            f"(it takes {', '.join(sorted(known))})"
        )
    arguments = model.parameters
    if "categorical_features" in known:
        arguments.setdefault("categorical_features", list(range(len(dataset.categorical_features))))  # encoded first
        encode = _native_categoricals(dataset)
    else:
        encode = _one_hot(dataset)
    estimator = estimator_class(**arguments)
    _check_task(estimator, task, f"training.model.estimator {path}")
    return Pipeline([("encode", encode), ("model", estimator)])


def skops_trusted_types(pipeline: Pipeline) -> list[str]:
    """The types skops must be told to trust to load `pipeline` (MLflow saves scikit-learn models with skops).

    They are the fitted pipeline's own: what the config's estimator or builder put in it.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))


def sample_weight_key(pipeline: Pipeline, why: str) -> str:
    """The `fit` keyword that carries row weights to the pipeline's last step; `why` says who asks."""
    name, estimator = pipeline.steps[-1]
    if not has_fit_parameter(estimator, "sample_weight"):
        raise ModelConfigError(f"{why} weighs rows, but {type(estimator).__name__}.fit takes no sample_weight")
    return f"{name}__sample_weight"


def _native_categoricals(dataset: DatasetConfig) -> ColumnTransformer:
    """Categoricals as ordinal codes (unseen and missing: NaN), first; numeric columns as they are."""
    return ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan),
                dataset.categorical_features,
            ),
            ("numeric", "passthrough", dataset.numeric_features),
        ],
        verbose_feature_names_out=False,
    )


def _one_hot(dataset: DatasetConfig) -> ColumnTransformer:
    """Categoricals one-hot (unseen values: all zeros); numeric columns median-imputed and standardised."""
    return ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), dataset.categorical_features),
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), dataset.numeric_features),
        ],
        verbose_feature_names_out=False,
    )


def _resolve(path: str, field: str) -> Any:
    try:
        return pkgutil.resolve_name(path)
    except (ImportError, AttributeError, ValueError) as err:
        raise ModelConfigError(f"training.model.{field} {path} cannot be imported: {err}") from err


def _check_task(model: Any, task: str, what: str) -> None:
    if task == "regression":
        if not is_regressor(model):
            raise ModelConfigError(f"{what} is not a regressor (dataset.label.task is regression)")
    elif not is_classifier(model) or not hasattr(model, "predict_proba"):
        raise ModelConfigError(f"{what} is not a classifier with predict_proba (dataset.label.task is {task})")

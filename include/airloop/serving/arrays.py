"""The served pipeline's encoding step done on arrays: the same numbers, without pandas.

Airloop's pipelines (`airloop.training.model.build_pipeline`) ordinal-encode the categorical
columns and pass the numeric ones through a `ColumnTransformer`, then hand the array to the
estimator. On a DataFrame that step is most of a prediction's cost: in one process here, a
1,000-row request spent about twice as long in it as in the trees. :func:`array_predictor`
builds the same encoding from the fitted encoder's categories (one dict lookup per value) and
calls the fitted estimator on the array.

It is only used where it is exact: the pipeline must have that shape, and at load its answers
must equal the pipeline's on the input example, on unseen categories and on missing values;
otherwise the server predicts with the pipeline as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from airloop.serving.rows import Rows, row_count

log = logging.getLogger(__name__)

#: Probabilities per class (or predicted values) for rows whose columns are the signature's (a
#: request's column arrays, or a DataFrame).
Predictor = Callable[[Rows], np.ndarray]


def array_predictor(pipeline: Any, example: pd.DataFrame | None, method: str = "predict_proba") -> Predictor | None:
    """The pipeline's `method` (`predict_proba`, or a regressor's `predict`) on arrays for a pipeline of
    Airloop's shape, checked against it; else None."""
    try:
        predictor = _build(pipeline, method)
        if predictor is None or example is None or example.empty:
            return None
        for probe in _probes(example, pipeline):
            if not np.array_equal(predictor(probe), getattr(pipeline, method)(probe), equal_nan=True):
                log.warning("the array path disagrees with the pipeline on the input example: pipeline kept")
                return None
    except Exception as err:  # noqa: BLE001 - any surprise keeps the pipeline, which is always right
        log.warning("no array path for this pipeline (%s: %s): pipeline kept", type(err).__name__, err)
        return None
    return predictor


def _build(pipeline: Any, method: str) -> Predictor | None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    encode, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(encode, ColumnTransformer) or getattr(encode, "sparse_output_", False):
        return None
    categorical: list[tuple[str, dict[Any, float]]] = []
    numeric: list[str] = []
    for name, transformer, columns in encode.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        if isinstance(transformer, OrdinalEncoder) and _encodes_unknown_and_missing_as_nan(transformer):
            if numeric:  # the output's column order must be categorical, then numeric
                return None
            for column, categories in zip(columns, transformer.categories_, strict=True):
                codes = {value: float(code) for code, value in enumerate(categories) if not _missing(value)}
                categorical.append((column, codes))
        elif _passes_through(transformer):
            numeric.extend(columns)
        else:
            return None

    predict = getattr(estimator, method)

    def predict_encoded(rows: Rows) -> np.ndarray:
        encoded = np.empty((row_count(rows), len(categorical) + len(numeric)), dtype="float64")
        for i, (column, codes) in enumerate(categorical):
            encoded[:, i] = [codes.get(value, math.nan) for value in rows[column].tolist()]
        for i, column in enumerate(numeric, start=len(categorical)):
            encoded[:, i] = rows[column]
        return predict(encoded)

    return predict_encoded


def _passes_through(transformer: Any) -> bool:
    """`"passthrough"`, which a fitted ColumnTransformer holds as an identity FunctionTransformer."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(transformer, str):
        return transformer == "passthrough"
    return isinstance(transformer, FunctionTransformer) and transformer.func is None


def _encodes_unknown_and_missing_as_nan(encoder: Any) -> bool:
    return (
        encoder.handle_unknown == "use_encoded_value"
        and _missing(encoder.unknown_value)
        and _missing(getattr(encoder, "encoded_missing_value", math.nan))
        and getattr(encoder, "infrequent_categories_", None) is None
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _probes(example: pd.DataFrame, pipeline: Any) -> list[pd.DataFrame]:
    """The input example, and copies of it with every categorical value unseen, then missing."""
    encode = pipeline.steps[0][1]
    categorical = [c for _, t, cols in encode.transformers_ if not _passes_through(t) and t != "drop" for c in cols]
    unseen = example.copy()
    missing = example.copy()
    for column in categorical:
        unseen[column] = "airloop-never-seen-category"
        missing[column] = None
    return [example, unseen, missing]

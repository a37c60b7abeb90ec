"""What the label asks the model to do: binary, multiclass or regression, and all that follows from it.

The label config names the task (`dataset.label.task`, see `airloop.config.LabelConfig`). This
module owns what differs between tasks, in one place: the metrics and whether more or less is
better, the default estimator and what a model must offer, the output metrics are computed on
(the positive class's probability, one probability per class, or the predicted value), and the
`score` the inference log records for each served row.

- binary: the target is 0/1 (`threshold` or `positive`); metrics roc_auc (the promotion default),
  average_precision, f1, accuracy, log_loss; the logged score is the positive class's probability.
- multiclass: the target is the label's own values; metrics roc_auc_ovr (macro, one-vs-rest),
  f1_macro, accuracy, log_loss; the logged score is the predicted class's probability.
- regression: the target is the label as a number; metrics rmse, mae, r2; the logged score is
  the predicted value.

Nothing heavy (not even numpy) is imported at module level: the config imports this module, and
every DAG file imports the config.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

TaskKind = Literal["binary", "multiclass", "regression"]
TASKS: tuple[TaskKind, ...] = ("binary", "multiclass", "regression")

#: The metrics each task's training records (every one may be the promotion metric), default first.
METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "f1", "accuracy", "log_loss"),
    "multiclass": ("roc_auc_ovr", "f1_macro", "accuracy", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
#: The metrics monitoring can measure on served rows once labels land: from what the inference
#: log keeps (a binary model's score is its positive-class probability; a multiclass model's is
#: only its predicted class's, so its live metrics come from the predicted labels).
LIVE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "f1", "accuracy", "log_loss"),
    "multiclass": ("f1_macro", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
#: Metrics where smaller is better; every other is better greater.
SMALLER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
#: Metrics that are shares or scores between 0 and 1 (the others: errors in the label's unit, log loss, R²).
UNIT_INTERVAL = frozenset({"roc_auc", "roc_auc_ovr", "average_precision", "f1", "f1_macro", "accuracy"})

#: The estimator a config that names none gets: gradient-boosted trees, categoricals taken natively.
DEFAULT_ESTIMATORS: dict[str, str] = {
    "binary": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}


def greater_is_better(metric: str) -> bool:
    return metric not in SMALLER_IS_BETTER


def improvement(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is on `metric` (negative: worse), whichever way the metric points."""
    return challenger - champion if greater_is_better(metric) else champion - challenger


def is_classification(task: str) -> bool:
    return task != "regression"


def outputs(task: str, model: Any, features: Any) -> np.ndarray:
    """What the task's metrics are computed on: the positive class's probability (binary), one
    probability per class in `model.classes_` order (multiclass) or the predicted value (regression)."""
    import numpy as np

    if task == "regression":
        return np.asarray(model.predict(features), dtype="float64")
    proba = np.asarray(model.predict_proba(features), dtype="float64")
    return proba[:, 1] if task == "binary" else proba


def served_score(task: str, predictions: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
    """The one number per served row the inference log records as `score` (and prediction drift watches)."""
    import numpy as np

    if task == "regression" or proba is None:
        return np.asarray(predictions, dtype="float64")
    return proba[:, -1] if task == "binary" else proba.max(axis=1)


def evaluate(task: str, y_true: Any, output: np.ndarray, classes: Any = None) -> dict[str, float]:
    """The task's metrics of `output` (see `outputs`) against the true targets; NaN where undefined.

    `classes` (multiclass): the model's classes, the order of `output`'s columns.
    """
    import numpy as np

    y = np.asarray(y_true)
    if task == "binary":
        return _binary(y, np.asarray(output, dtype="float64"))
    if task == "multiclass":
        return _multiclass(y, np.asarray(output, dtype="float64"), np.asarray(classes))
    return _regression(y.astype("float64"), np.asarray(output, dtype="float64"))


def live_metrics(task: str, target: Any, predictions: Any, scores: np.ndarray) -> dict[str, float]:
    """Metrics of served rows whose labels landed, from what the inference log keeps (`LIVE_METRICS`)."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    y = np.asarray(target)
    if task == "multiclass":
        predicted = np.asarray(predictions).astype(y.dtype, copy=False)
        return {
            "f1_macro": float(f1_score(y, predicted, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y, predicted)),
            "rows": float(len(y)),
        }
    metrics = evaluate(task, y, scores)
    if task == "binary":
        predicted = (np.asarray(scores) >= 0.5).astype(int)
        metrics["precision"] = float(precision_score(y, predicted, zero_division=0))
        metrics["recall"] = float(recall_score(y, predicted, zero_division=0))
    return metrics


def _binary(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, log_loss, roc_auc_score

    predicted = (proba >= 0.5).astype(int)
    both = len(np.unique(y)) == 2
    metrics: dict[str, Any] = {
        "roc_auc": roc_auc_score(y, proba) if both else math.nan,
        "average_precision": average_precision_score(y, proba) if both else math.nan,
        "log_loss": log_loss(y, proba, labels=[0, 1]) if len(y) else math.nan,
        "accuracy": accuracy_score(y, predicted) if len(y) else math.nan,
        "f1": f1_score(y, predicted, zero_division=0) if len(y) else math.nan,
        "positive_rate": float(np.mean(y)) if len(y) else math.nan,
        "rows": float(len(y)),
    }
    return {k: float(v) for k, v in metrics.items()}


def _multiclass(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    if not len(y):
        return {"roc_auc_ovr": math.nan, "f1_macro": math.nan, "accuracy": math.nan, "log_loss": math.nan, "rows": 0.0}
    predicted = classes[proba.argmax(axis=1)]
    known = np.isin(y, classes)  # a class the model never saw has no column: it counts as a miss, and not in AUC
    try:  # one-vs-rest needs every class among the true values
        auc = roc_auc_score(y[known], proba[known], multi_class="ovr", average="macro", labels=classes)
    except ValueError:
        auc = math.nan
    return {
        "roc_auc_ovr": float(auc),
        "f1_macro": float(f1_score(y, predicted, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, predicted)),
        "log_loss": float(log_loss(y[known], proba[known], labels=classes)) if known.any() else math.nan,
        "rows": float(len(y)),
    }


def _regression(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    if not len(y):
        return {"rmse": math.nan, "mae": math.nan, "r2": math.nan, "rows": 0.0}
    return {
        "rmse": float(math.sqrt(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)) if len(y) > 1 else math.nan,
        "mean_label": float(np.mean(y)),
        "rows": float(len(y)),
    }

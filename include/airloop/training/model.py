"""The model: a scikit-learn Pipeline with its preprocessing, and its quality metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from airloop.config import DatasetConfig, ModelConfig

#: Types skops must trust to load the pipeline (MLflow saves sklearn models with skops).
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


def build_pipeline(dataset: DatasetConfig, params: ModelConfig) -> Pipeline:
    """Categoricals ordinal-encoded (unknown values allowed), then gradient-boosted trees."""
    encode = ColumnTransformer(
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
    n_categorical = len(dataset.categorical_features)
    model = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        l2_regularization=params.l2_regularization,
        class_weight=params.class_weight,
        random_state=params.random_state,
        categorical_features=list(range(n_categorical)),
        early_stopping=False,
    )
    return Pipeline([("encode", encode), ("model", model)])


def classification_metrics(y_true: pd.Series, proba: np.ndarray) -> dict[str, float]:
    """Held-out quality of positive-class probabilities `proba`."""
    predicted = (proba >= 0.5).astype(int)
    both_classes = len(np.unique(y_true)) == 2
    metrics: dict[str, Any] = {
        "roc_auc": roc_auc_score(y_true, proba) if both_classes else float("nan"),
        "average_precision": average_precision_score(y_true, proba) if both_classes else float("nan"),
        "log_loss": log_loss(y_true, proba, labels=[0, 1]),
        "accuracy": accuracy_score(y_true, predicted),
        "f1": f1_score(y_true, predicted, zero_division=0),
        "positive_rate": float(np.mean(y_true)),
        "rows": float(len(y_true)),
    }
    return {k: float(v) for k, v in metrics.items()}

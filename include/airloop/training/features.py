"""Features and label from a snapshot, as the dataset config declares them."""

from __future__ import annotations

import pandas as pd

from airloop.config import DatasetConfig


class FeatureError(ValueError):
    """The frame lacks what the config asks for."""


def features_and_label(frame: pd.DataFrame, dataset: DatasetConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Feature columns and the task's target (`LabelConfig.target`); rows whose label is unknown are left out."""
    missing = [c for c in [*dataset.features, dataset.label.column] if c not in frame.columns]
    if missing:
        raise FeatureError(f"columns missing from the data: {missing}")
    labelled = frame[frame[dataset.label.column].notna()]
    try:
        label = dataset.label.target(labelled[dataset.label.column])
    except (TypeError, ValueError) as err:  # e.g. text in a regression label
        raise FeatureError(
            f"label column {dataset.label.column!r} cannot be a {dataset.label.task} target: {err}"
        ) from err
    return feature_frame(labelled, dataset), label.rename("label")


def feature_frame(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Only the declared features, numeric as float (so a null never changes the schema)."""
    out = frame[dataset.features].copy()
    for column in dataset.numeric_features:
        out[column] = out[column].astype("float64")
    for column in dataset.categorical_features:
        out[column] = out[column].astype("object")
    return out.reset_index(drop=True)


def time_split(frame: pd.DataFrame, time_column: str, holdout_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier rows to train on, the latest `holdout_fraction` held out (no look-ahead)."""
    ordered = frame.sort_values(time_column, kind="stable")
    cut = round(len(ordered) * (1 - holdout_fraction))
    return ordered.iloc[:cut], ordered.iloc[cut:]

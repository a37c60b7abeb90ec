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
    known = frame[dataset.label.column].notna().to_numpy()
    labels = frame[dataset.label.column][known]
    try:
        label = dataset.label.target(labels)
    except (TypeError, ValueError) as err:  # e.g. text in a regression label
        raise FeatureError(
            f"label column {dataset.label.column!r} cannot be a {dataset.label.task} target: {err}"
        ) from err
    # The feature columns of the labelled rows, not every column of the frame, are what is copied.
    rows = frame if known.all() else frame.loc[known, dataset.features]
    return feature_frame(rows, dataset), label.rename("label")


def feature_frame(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Only the declared features, numeric as float (so a null never changes the schema)."""
    types = {column: "float64" for column in dataset.numeric_features}
    types |= {column: "object" for column in dataset.categorical_features}
    # One copy: the column selection; `astype` converts only the columns whose type differs.
    out = frame[dataset.features].astype(types, copy=False)
    out.index = pd.RangeIndex(len(out))
    return out


def time_split(frame: pd.DataFrame, time_column: str, holdout_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier rows to train on, the latest `holdout_fraction` held out (no look-ahead)."""
    times = frame[time_column]
    # Already in time order (as a landing zone of daily files often is): views, not a sorted copy.
    ordered = frame if times.is_monotonic_increasing else frame.sort_values(time_column, kind="stable")
    cut = round(len(ordered) * (1 - holdout_fraction))
    return ordered.iloc[:cut], ordered.iloc[cut:]

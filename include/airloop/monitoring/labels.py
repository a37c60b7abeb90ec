"""The labels feed: outcomes that land after the prediction, joined to served rows by request id.

A flight's delay is known only once it lands, so labels for a window arrive hours or days after
its predictions. Each batch of labels is a Parquet file under `<labels>/date=<arrival day>/` with
columns `request_id`, `row`, the dataset's label column (raw, e.g. `arr_delay` in minutes) and
`labelled_at`. Monitoring joins them on (`request_id`, `row`), so a label can land any time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd

from airloop.config import LabelConfig

KEY = ["request_id", "row"]
PARTITION = "date={date:%Y-%m-%d}"


def write_labels(folder: Path, labels: pd.DataFrame, *, label_column: str, arrived: dt.datetime) -> Path:
    """Land one batch of labels; the same batch written twice is one file (named by its content)."""
    missing = [c for c in [*KEY, label_column] if c not in labels.columns]
    if missing:
        raise ValueError(f"labels batch lacks column(s) {missing}; it needs {[*KEY, label_column]}")
    batch = labels[[*KEY, label_column]].copy()
    batch["row"] = batch["row"].astype("int64")
    batch["labelled_at"] = (
        pd.Timestamp(arrived).tz_convert("UTC") if arrived.tzinfo else pd.Timestamp(arrived, tz="UTC")
    )
    digest = hashlib.sha256(pd.util.hash_pandas_object(batch[[*KEY, label_column]], index=False).to_numpy().tobytes())
    target = Path(folder) / PARTITION.format(date=arrived.date()) / f"labels-{digest.hexdigest()[:16]}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    batch.to_parquet(partial, index=False)
    partial.replace(target)  # readers never see half a file
    return target


def read_labels(folder: Path, label_column: str) -> pd.DataFrame:
    """Every label landed so far; a label landed twice keeps its latest value."""
    files = sorted(Path(folder).glob("date=*/*.parquet"))
    if not files:
        return pd.DataFrame(
            {
                "request_id": pd.Series(dtype=str),
                "row": pd.Series(dtype="int64"),
                label_column: pd.Series(dtype=float),
                "labelled_at": pd.Series(dtype="datetime64[ns, UTC]"),
            }
        )
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return frame.sort_values("labelled_at", kind="stable").drop_duplicates(KEY, keep="last")


def join_labels(served: pd.DataFrame, labels: pd.DataFrame, label: LabelConfig) -> pd.DataFrame:
    """Served rows that have a label by now, with the binary `target` the model was trained for."""
    joined = served.merge(labels[[*KEY, label.column]], on=KEY, how="inner")
    joined = joined[joined[label.column].notna()]
    joined["target"] = label.target(joined[label.column])
    return joined

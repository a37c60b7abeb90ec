"""A request's rows as the server holds them: by column, without a DataFrame.

Parsing builds one array per signature column (`airloop.serving.payload`); the array path predicts
from them (`airloop.serving.arrays`), the batcher joins them, the inference log writes them. A
DataFrame is made only where one is needed: a pipeline without the array path, or a caller in
process that has one already.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd

#: A request's rows by column, in the signature's order and types: what the server predicts, logs
#: and hands to the shadow.
Columns: TypeAlias = dict[str, np.ndarray]


#: Rows the model predicts: a request's columns, or a DataFrame (in process, the tests).
Rows: TypeAlias = Columns | pd.DataFrame


def row_count(rows: Rows) -> int:
    """How many rows: a DataFrame's length, or the length of the columns' arrays."""
    if isinstance(rows, pd.DataFrame):
        return len(rows)
    return len(next(iter(rows.values()))) if rows else 0


def as_frame(rows: Rows) -> pd.DataFrame:
    """The rows as a DataFrame: a request's columns wrapped without copying their arrays."""
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, copy=False)


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Several requests' rows as one, in order (all of one kind: columns, or DataFrames)."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

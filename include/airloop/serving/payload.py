"""Parse a scoring request in MLflow's protocol and check it against the model's signature.

Accepted bodies, as `mlflow models serve` accepts them: JSON
`{"dataframe_split": {"columns": [...], "data": [[...]]}}`, `{"dataframe_records": [{...}]}`,
`{"instances": [{...}] | {"col": [...]}}` and `{"inputs": [{...}] | {"col": [...]}}`, each with
optional `"params": {"predict_method": "predict" | "predict_proba"}`; or `text/csv` with a header row.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from airloop.serving.model import BOOLEAN_TYPES, NUMERIC_TYPES, PREDICT_METHODS, STRING_TYPES
from airloop.serving.rows import Columns, as_frame

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MEDIA_TYPES = ("application/json", "text/csv")


class PayloadError(ValueError):
    """A request the server refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ScoringRequest:
    """What a request asks: its rows (the signature's columns, order and types) and what to answer."""

    columns: Columns
    predict_method: str = "predict"
    #: The JSON body as sent, when it is strict JSON (no NaN or Infinity) with every signature
    #: column: the inference log keeps these bytes as they are rather than writing the rows out again.
    body: bytes | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (the columns' arrays, not copied)."""
        return as_frame(self.columns)


def parse_request(
    body: bytes,
    columns: dict[str, str],
    required: set[str],
    media: str = "application/json",
    *,
    default_method: str = "predict",
    methods: tuple[str, ...] = PREDICT_METHODS,
) -> ScoringRequest:
    """Read a scoring request of either media type (415 for any other); `default_method` answers a
    request that names no `params.predict_method` (a CSV body never does); `methods` are the ones
    the model answers (a regressor has no `predict_proba`)."""
    if media == "text/csv":
        return ScoringRequest(_read_csv(body, columns, required), predict_method=default_method)
    if media != "application/json":
        raise PayloadError(415, f"content type {media!r} is not supported; send one of {list(MEDIA_TYPES)}")
    document, strict = _json_document(body)
    names, table, rows = rows_by_column(document)
    return ScoringRequest(
        _conform_table(names, table, rows, columns, required),
        predict_method=_predict_method(document.get("params"), default_method, methods),
        body=body if strict and len(names) == len(columns) else None,  # no column left out, to fill with nulls
    )


def _read_csv(body: bytes, columns: dict[str, str], required: set[str]) -> Columns:
    """A CSV body with a header row; string columns stay strings (a carrier `9E` is not a number)."""
    strings = {name: str for name, kind in columns.items() if kind in STRING_TYPES}
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=strings)
    except pd.errors.EmptyDataError as err:
        raise PayloadError(422, "the CSV body has no header row and no rows") from err
    except (ValueError, pd.errors.ParserError) as err:
        raise PayloadError(400, f"malformed CSV: {err}") from err
    return conform(frame, columns, required)


def _predict_method(params: Any, default: str, methods: tuple[str, ...]) -> str:
    if params is None:
        return default
    if not isinstance(params, dict):
        raise PayloadError(400, f"'params' must be an object, got {type(params).__name__}")
    unknown = sorted(set(params) - {"predict_method"})
    if unknown:
        raise PayloadError(422, f"unknown param(s) {unknown}; this model takes 'predict_method'")
    method = params.get("predict_method", default)
    if method not in methods:
        why = " (a regression model has no probabilities)" if method in PREDICT_METHODS else ""
        raise PayloadError(422, f"params.predict_method {method!r} is not one of {list(methods)}{why}")
    return str(method)


def _json_document(body: bytes) -> tuple[dict[str, Any], bool]:
    """The body's JSON object, and whether it is strict JSON."""
    strict = True
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        # Python's json writes NaN and Infinity, which orjson refuses; MLflow clients send them.
        try:
            document, strict = json.loads(body), False
        except ValueError:
            raise PayloadError(400, f"malformed JSON: {err}") from err
    if not isinstance(document, dict):
        raise PayloadError(400, f"expected a JSON object with one of the keys {list(FORMATS)}")
    return document, strict


#: A request's rows as columns: the names as sent (duplicates kept, to be refused), each column's
#: values by name, and the row count. Built straight from the parsed JSON, without a DataFrame:
#: at 1,000 rows pandas' inference of each column's type costs more than the prediction.
Table = tuple[list[str], dict[str, Sequence[Any]], int]


def rows_by_column(document: dict[str, Any]) -> Table:
    """A JSON request's rows as sent, by column (the names, each one's values, the row count); no type is checked."""
    present = [key for key in FORMATS if key in document]
    if len(present) != 1:
        raise PayloadError(400, f"expected exactly one of the keys {list(FORMATS)}, got {sorted(document)}")
    return _to_table(present[0], document[present[0]])


def _to_table(kind: str, value: Any) -> Table:
    if kind == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value or "columns" not in value:
            raise PayloadError(400, "dataframe_split needs 'columns' and 'data'")
        names, data = value["columns"], value["data"]
        if not isinstance(names, list):
            raise PayloadError(400, "dataframe_split 'columns' must be a list of names")
        if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
            raise PayloadError(400, "dataframe_split 'data' must be a list of rows (lists)")
        widths = {len(row) for row in data}
        if widths - {len(names)}:
            raise PayloadError(422, f"rows have {sorted(widths)} values for {len(names)} columns")
        names = [str(n) for n in names]
        return names, dict(zip(names, zip(*data, strict=True) if data else [()] * len(names), strict=True)), len(data)
    if isinstance(value, list):
        if not all(isinstance(row, dict) for row in value):
            raise PayloadError(400, f"{kind} must be a list of objects (column -> value)")
        names = list(dict.fromkeys(str(key) for row in value for key in row))
        # A key left out of some records is a missing value there, as in pandas' from_records.
        records: dict[str, Sequence[Any]] = {n: [row.get(n) for row in value] for n in names}
        return names, records, len(value)
    if isinstance(value, dict):
        lengths = {len(v) if isinstance(v, list) else 1 for v in value.values()}
        if len(lengths) > 1:
            raise PayloadError(422, f"{kind} columns have different lengths: {sorted(lengths)}")
        names = [str(k) for k in value]
        table: dict[str, Sequence[Any]] = {str(k): v if isinstance(v, list) else [v] for k, v in value.items()}
        return names, table, lengths.pop() if lengths else 0
    raise PayloadError(400, f"{kind} must be an object or a list of objects")


def conform(frame: pd.DataFrame, columns: dict[str, str], required: set[str]) -> Columns:
    """Check a frame's names and types against the signature; 422 naming the column on any mismatch."""
    names = [str(c) for c in frame.columns]
    table: dict[str, Sequence[Any]] = {}
    if len(set(names)) == len(names):  # else refused by name, before any value is read
        table = {name: frame[column].tolist() for name, column in zip(names, frame.columns, strict=True)}
    return _conform_table(names, table, len(frame), columns, required)


def _conform_table(
    names: list[str], table: dict[str, Sequence[Any]], rows: int, columns: dict[str, str], required: set[str]
) -> Columns:
    if rows == 0:
        raise PayloadError(422, "the request has no rows")
    if len(set(names)) != len(names):
        raise PayloadError(422, f"duplicate column(s): {sorted({n for n in names if names.count(n) > 1})}")
    unknown = sorted(set(names) - set(columns))
    missing = sorted(required - set(names))
    if missing or unknown:
        parts = [f"missing column(s): {missing}" if missing else "", f"unknown column(s): {unknown}" if unknown else ""]
        raise PayloadError(422, "; ".join(p for p in parts if p) + f". Expected columns: {list(columns)}")
    return {
        name: _cast(table[name], name, kind) if name in table else np.full(rows, np.nan)
        for name, kind in columns.items()
    }


_NUMBERS = frozenset({int, float, type(None)})
_STRINGS = frozenset({str, type(None)})
_BOOLEANS = frozenset({bool, type(None)})


def _cast(values: Sequence[Any], name: str, kind: str) -> np.ndarray:
    """One column's values as the array the model takes: checked by the types present, not value by value."""
    types = set(map(type, values))
    if kind in NUMERIC_TYPES:
        if types <= _NUMBERS:  # bool is not among them: `True` is no number here
            try:
                return np.array(values, dtype="float64")  # None -> NaN
            except OverflowError as err:
                raise PayloadError(422, f"column {name!r} has a number out of range: {err}") from err
        bad = next(v for v in values if type(v) not in _NUMBERS)
        raise PayloadError(422, f"column {name!r} expects numbers ({kind}), got {bad!r}")
    if kind in STRING_TYPES:
        # A missing value may come as NaN (Python's json writes it; a key left out reads as it).
        bad = [v for v in values if type(v) not in _STRINGS and not _is_nan(v)] if not types <= _STRINGS else []
        if bad:
            raise PayloadError(422, f"column {name!r} expects strings, got {bad[0]!r}")
        array = np.empty(len(values), dtype=object)
        array[:] = [None if _is_nan(v) else v for v in values] if float in types else list(values)
        return array
    if kind in BOOLEAN_TYPES:
        if not types <= _BOOLEANS:
            bad = next(v for v in values if type(v) not in _BOOLEANS)
            raise PayloadError(422, f"column {name!r} expects booleans, got {bad!r}")
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array
    raise PayloadError(500, f"column {name!r} has signature type {kind!r}, which this server cannot check")


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from airloop.monitoring.drift import compute_drift, evidently_verdicts, infer_column_kinds, wasserstein_sorted

ROWS = 3000


def _by_column(result):
    return {c.column: c for c in result.columns}


def _seeded_frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current windows: the `*_shifted` columns move, the others do not."""
    rng = np.random.default_rng(seed)

    def window(drifted: bool) -> pd.DataFrame:
        shift = 1.0 if drifted else 0.0
        frame = pd.DataFrame(
            {
                "normal": rng.normal(0, 1, rows),
                "normal_shifted": rng.normal(0.4 * shift, 1, rows),
                "delay_with_missing": np.where(rng.random(rows) < 0.1, np.nan, np.round(rng.gamma(1.5, 12, rows))),
                "spread_shifted": rng.normal(0, 1 + 0.5 * shift, rows),
                "with_inf": np.where(rng.random(rows) < 0.05, np.inf, rng.exponential(1, rows)),
                "few_values_shifted": rng.choice([0.0, 1.0, 2.0], rows, p=[0.6, 0.3, 0.1] if drifted else None),
                "binary": (rng.random(rows) < 0.3).astype(float),
                "carrier": rng.choice(list("ABCDEFGH"), rows),
                "carrier_shifted": rng.choice(list("ABCD"), rows, p=[0.55, 0.15, 0.15, 0.15] if drifted else None),
                "flag": rng.random(rows) < 0.5,
                "code": pd.Categorical(rng.choice(["x", "y", "z"], rows)),
                "origin_with_missing": pd.Series(rng.choice(["EWR", "JFK", "LGA", None], rows), dtype=object),
                "pair_shifted": rng.choice(["p", "q"], rows, p=[0.5 + 0.15 * shift, 0.5 - 0.15 * shift]),
            }
        )
        if drifted:
            frame.loc[frame.index[: rows // 10], "carrier"] = "NEW"  # a value only the current window has
        return frame

    return window(False), window(True)


NUMERIC = [
    "normal",
    "normal_shifted",
    "delay_with_missing",
    "spread_shifted",
    "with_inf",
    "few_values_shifted",
    "binary",
]
CATEGORICAL = ["carrier", "carrier_shifted", "flag", "code", "origin_with_missing", "pair_shifted"]


def test_shifted_columns_drift_and_unshifted_do_not():
    reference, current = _seeded_frames(ROWS, seed=7)
    result = compute_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL)
    by_column = _by_column(result)
    assert by_column["normal_shifted"].method == "wasserstein_distance_norm"
    assert by_column["few_values_shifted"].method == "jensenshannon"  # numeric with at most five values
    assert by_column["carrier"].method == "jensenshannon"
    assert set(result.drifted_columns()) == {
        "normal_shifted",
        "spread_shifted",
        "few_values_shifted",
        "carrier",
        "carrier_shifted",
        "pair_shifted",
    }
    assert result.share_drifted == pytest.approx(6 / 13)
    assert not result.dataset_drift
    assert compute_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL, drift_share=0.4).dataset_drift


def test_same_window_does_not_drift():
    reference, _ = _seeded_frames(ROWS, seed=3)
    result = compute_drift(reference, reference.copy(), numeric=NUMERIC, categorical=CATEGORICAL)
    assert result.drifted_columns() == []
    assert all(c.score == pytest.approx(0.0, abs=1e-12) for c in result.columns if c.method != "z")


def _evidently_verdicts(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, tuple[float, bool]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    return evidently_verdicts(snapshot)


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "methods"),
    [
        pytest.param(ROWS, ROWS + 500, {"wasserstein_distance_norm", "jensenshannon"}, id="large-sample-distances"),
        # At most 1000 reference rows Evidently switches to tests: K-S, chi-square and the z-test.
        pytest.param(600, 900, {"ks", "chisquare", "z"}, id="small-sample-tests"),
    ],
)
def test_verdicts_and_scores_match_evidently(reference_rows, current_rows, methods):
    reference, _ = _seeded_frames(reference_rows, seed=11)
    _, current = _seeded_frames(current_rows, seed=12)
    ours = _by_column(compute_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL))
    theirs = _evidently_verdicts(reference, current)
    assert set(theirs) == set(ours)
    assert {c.method for c in ours.values()} == methods
    for column, (score, drifted) in theirs.items():
        assert ours[column].drifted == drifted, column
        assert ours[column].score == pytest.approx(score, rel=1e-9, abs=1e-12), column
    assert any(drifted for _, drifted in theirs.values())
    assert not all(drifted for _, drifted in theirs.values())


@pytest.mark.parametrize(
    ("n", "m", "values"),
    [
        pytest.param(1000, 1000, "continuous", id="equal-sizes"),
        pytest.param(997, 1501, "continuous", id="coprime-sizes"),
        pytest.param(1, 7, "continuous", id="single-value"),
        pytest.param(2000, 3000, "ties", id="ties"),
    ],
)
def test_wasserstein_sorted_equals_scipy(n, m, values):
    rng = np.random.default_rng(n + m)
    if values == "ties":
        u, v = rng.integers(0, 20, n).astype(float), rng.integers(3, 25, m).astype(float)
    else:
        u, v = rng.normal(0, 1, n), rng.normal(0.5, 2, m)
    assert wasserstein_sorted(np.sort(u), np.sort(v)) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12)


def test_all_missing_column_is_not_compared():
    reference = pd.DataFrame({"x": np.arange(2000.0), "c": ["a"] * 2000})
    current = pd.DataFrame({"x": [np.nan] * 50, "c": pd.Series([None] * 50, dtype=object)})
    by_column = _by_column(compute_drift(reference, current, numeric=["x"], categorical=["c"]))
    for column in ("x", "c"):
        assert by_column[column].method == "no_data"
        assert np.isnan(by_column[column].score)
        assert not by_column[column].drifted


def test_empty_current_window_is_not_drift():
    reference, current = _seeded_frames(ROWS, seed=5)
    result = compute_drift(reference, current.iloc[:0], numeric=NUMERIC, categorical=CATEGORICAL)
    assert result.current_rows == 0
    assert {c.method for c in result.columns} == {"no_data"}
    assert not result.dataset_drift


@pytest.mark.parametrize(
    ("current_value", "drifted", "score"),
    [
        pytest.param(5.0, False, 0.0, id="same-constant"),
        # Evidently floors the reference std at 0.001: a move of 0.01 scores 10.
        pytest.param(5.01, True, 10.0, id="moved-constant"),
    ],
)
def test_constant_reference(current_value, drifted, score):
    reference = pd.DataFrame({"x": np.full(2000, 5.0)})
    current = pd.DataFrame({"x": np.full(1500, current_value)})
    column = compute_drift(reference, current, numeric=["x"], categorical=[]).columns[0]
    assert column.method == "jensenshannon"  # a single value: Evidently treats it as discrete
    reference["x"] += np.random.default_rng(0).normal(0, 1e-9, 2000)  # distinct values, std far below 0.001
    column = compute_drift(reference, current, numeric=["x"], categorical=[]).columns[0]
    assert column.method == "wasserstein_distance_norm"
    assert column.drifted == drifted
    assert column.score == pytest.approx(score, abs=1e-5)


def test_category_seen_only_in_current_counts():
    reference = pd.DataFrame({"c": ["a", "b"] * 1000})
    current = pd.DataFrame({"c": ["a", "b"] * 900 + ["new"] * 200})
    column = compute_drift(reference, current, numeric=[], categorical=["c"]).columns[0]
    # Shares (0.5, 0.5, 0) against (0.45, 0.45, 0.1).
    assert column.score == pytest.approx(distance.jensenshannon([0.5, 0.5, 0.0], [0.45, 0.45, 0.1]))
    assert column.drifted


def test_infinities_count_as_missing():
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, 3000)
    reference = pd.DataFrame({"x": values})
    current = pd.DataFrame({"x": np.concatenate([values, np.full(3000, np.inf)])})
    column = compute_drift(reference, current, numeric=["x"], categorical=[]).columns[0]
    assert column.score == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("numeric", "categorical", "match"),
    [
        pytest.param(["x", "gone"], ["c"], r"reference frame lacks the drift columns \['gone'\]", id="missing-column"),
        pytest.param(["x"], ["c", "only_current"], r"lacks .*'only_current'", id="missing-in-reference"),
        pytest.param(["x", "c"], ["c"], r"both numeric and categorical: \['c'\]", id="listed-twice"),
        pytest.param(["x", "c"], [], r"numeric drift column 'c' has non-numeric dtype", id="strings-as-numeric"),
    ],
)
def test_bad_column_lists_raise(numeric, categorical, match):
    reference = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    current = reference.assign(only_current=1)
    with pytest.raises(ValueError, match=match):
        compute_drift(reference, current, numeric=numeric, categorical=categorical)


def test_missing_column_in_current_names_it():
    reference = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"current frame lacks the drift columns \['x'\]"):
        compute_drift(reference, reference.rename(columns={"x": "y"}), numeric=["x"], categorical=[])


def test_dataset_drift_at_exactly_the_share_and_json_form():
    reference = pd.DataFrame({"a": ["x", "y"] * 1000, "b": ["x", "y"] * 1000})
    current = pd.DataFrame({"a": ["x"] * 2000, "b": ["x", "y"] * 1000})
    result = compute_drift(reference, current, numeric=[], categorical=["a", "b"], drift_share=0.5)
    assert result.drifted_columns() == ["a"]
    assert result.share_drifted == 0.5
    assert result.dataset_drift  # Evidently's rule is share >= drift_share
    as_json = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert as_json["dataset_drift"] is True
    assert as_json["columns"][0] == {
        "column": "a",
        "kind": "categorical",
        "method": "jensenshannon",
        "score": pytest.approx(result.columns[0].score),
        "threshold": 0.1,
        "drifted": True,
    }


def test_no_data_score_is_json_null():
    reference = pd.DataFrame({"x": [np.nan] * 3})
    result = compute_drift(reference, reference, numeric=["x"], categorical=[])
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["columns"][0]["score"] is None


def test_infer_column_kinds_matches_evidently():
    from evidently.core.datasets import infer_column_type
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "float": rng.normal(size=100),
            "few_ints": rng.integers(0, 5, 100),
            "many_ints": rng.integers(0, 500, 100),
            "strings": rng.choice(["a", "b"], 100),
            "text": [f"free text {i}" for i in range(100)],
            "flag": rng.random(100) < 0.5,
            "category": pd.Categorical(rng.choice(["u", "v"], 100)),
            "when": pd.date_range("2026-01-01", periods=100, freq="h"),
        }
    )
    numeric, categorical = infer_column_kinds(frame)
    kinds = {ColumnType.Numerical: numeric, ColumnType.Categorical: categorical}
    for name in frame.columns:
        evidently_type = infer_column_type(frame[name])
        assert (name in kinds.get(evidently_type, [])) or (
            evidently_type not in kinds and name not in numeric + categorical
        ), name
    assert numeric == ["float", "many_ints"]
    assert categorical == ["few_ints", "strings", "flag", "category"]

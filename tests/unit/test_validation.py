from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from airloop.data.snapshot import write_snapshot
from airloop.lineage import Lineage
from airloop.pipeline import RunOptions, data_window, ingest, pipeline_config
from airloop.validation import DataValidationError
from airloop.validation.checks import load_suite, validate_snapshot
from tests.conftest import flights

WINDOW = (dt.date(2026, 3, 1), dt.date(2026, 3, 8))


@pytest.fixture
def snapshot_frame(settings, flights_config):
    from airloop.data.snapshot import read_snapshot

    return read_snapshot(ingest(settings, flights_config, *WINDOW))


def _validate(settings, config, frame):
    snapshot = write_snapshot(
        frame, lake=settings.state.lake, dataset="flights", start=WINDOW[0], end=WINDOW[1], source="test"
    )
    return snapshot, validate_snapshot(config, snapshot, lake=settings.state.lake, tracking_uri=None, lineage=Lineage())


def test_clean_batch_passes_and_keeps_its_reports(settings, flights_config, snapshot_frame):
    snapshot, summary = _validate(settings, flights_config, snapshot_frame)
    assert summary.success
    assert not summary.failures
    assert summary.evaluated == len(json.loads(flights_config.dataset.suite_path.read_text())["expectations"])
    assert json.loads(summary.results_path.read_text())["success"] is True
    assert "<html" in summary.report_path.read_text().lower()
    assert snapshot.data_path.exists()  # not quarantined


def _nulls(frame):
    frame.loc[frame.index[:40], "carrier"] = None
    return frame


def _out_of_range(frame):
    frame.loc[frame.index[:7], "distance"] = -5
    return frame


def _unknown_airport(frame):
    frame.loc[frame.index[:3], "origin"] = "XXX"
    return frame


def _missing_column(frame):
    return frame.drop(columns=["dest"])


def _wrong_type(frame):
    frame["distance"] = frame["distance"].astype(str)
    return frame


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        pytest.param(_nulls, ["expect_column_values_to_not_be_null(carrier): 40 of"], id="nulls"),
        pytest.param(
            _out_of_range, ["expect_column_values_to_be_between(distance): 7 of", "e.g. [-5"], id="out-of-range"
        ),
        pytest.param(
            _unknown_airport, ["expect_column_values_to_be_in_set(origin): 3 of", "'XXX'"], id="unknown-category"
        ),
        pytest.param(
            _missing_column,
            [
                "expect_table_columns_to_match_set: observed {'missing': ['dest']}",
                "expect_column_values_to_not_be_null(dest): ",
                'column "dest"',
            ],
            id="missing-column",
        ),
        pytest.param(
            _wrong_type,
            ["expect_column_values_to_be_in_type_list(distance): ", "rows unexpected (100.00%)"],
            id="wrong-type",
        ),
    ],
)
def test_bad_batch_is_quarantined_with_a_report_naming_each_failure(
    settings, flights_config, snapshot_frame, corrupt, expected
):
    with pytest.raises(DataValidationError) as caught:
        _validate(settings, flights_config, corrupt(snapshot_frame.copy()))
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message
    quarantine = caught.value.quarantine
    assert quarantine == settings.state.lake / "quarantine" / "flights" / "2026-03-01_2026-03-08"
    assert {p.name for p in quarantine.iterdir()} >= {
        "data.parquet",
        "manifest.json",
        "validation.json",
        "validation.html",
    }
    assert not (settings.state.lake / "snapshots" / "flights" / "2026-03-01_2026-03-08").exists()
    assert json.loads((quarantine / "validation.json").read_text())["success"] is False


def test_a_suite_with_an_unknown_expectation_is_refused(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(
        json.dumps(
            {"name": "s", "expectations": [{"type": "expect_column_values_to_be_sparkly", "kwargs": {"column": "a"}}]}
        )
    )
    with pytest.raises(Exception, match="sparkly"):
        load_suite(path)


def test_window_ends_at_the_run_date_unless_chosen(settings):
    config = pipeline_config(flights(settings), RunOptions(window_days=7))
    assert data_window(config, RunOptions(), dt.date(2026, 3, 8)) == WINDOW
    chosen = RunOptions(window_end=dt.date(2026, 3, 3))
    assert data_window(config, chosen, dt.date(2026, 11, 1)) == (dt.date(2026, 2, 24), dt.date(2026, 3, 3))


def test_row_count_floor_is_checked(settings, flights_config, snapshot_frame):
    with pytest.raises(DataValidationError, match="expect_table_row_count_to_be_between"):
        _validate(settings, flights_config, snapshot_frame.head(np.int64(20)))


def _a_non_string_among_strings(frame):
    frame["tailnum"] = frame["tailnum"].astype(object)
    frame.loc[frame.index[:2], "tailnum"] = 42
    return frame


def test_a_non_string_in_a_string_column_is_found_and_reported(flights_config, snapshot_frame):
    # String columns are validated as Arrow strings; one that holds another value must stay as it is.
    # (A snapshot's Parquet cannot hold such a column: the suite is run on the frame itself.)
    from airloop.validation.checks import failed_expectations, run_suite

    result = run_suite(
        _a_non_string_among_strings(snapshot_frame.copy()), load_suite(flights_config.dataset.suite_path)
    )
    assert [(f.expectation, f.column, f.unexpected_count, f.sample) for f in failed_expectations(result)] == [
        ("expect_column_values_to_be_in_type_list", "tailnum", 2, [42, 42])
    ]


def test_nulls_in_a_string_column_are_reported_as_null(settings, flights_config, snapshot_frame):
    with pytest.raises(DataValidationError) as caught:
        _validate(settings, flights_config, _nulls(snapshot_frame.copy()))
    report = json.loads((caught.value.quarantine / "validation.json").read_text())
    (not_null,) = [
        r for r in report["results"] if r["expectation_config"]["type"].endswith("not_be_null") and not r["success"]
    ]
    assert not_null["result"]["partial_unexpected_list"] == [None] * 5
    assert caught.value.summary.failures[0].sample == [None] * 5
    assert "ambiguous" not in (caught.value.quarantine / "validation.html").read_text()


def _suite(*expectations):
    import great_expectations as gx

    return gx.ExpectationSuite(
        name="s", expectations=[gx.expectations.__dict__[kind](**kw) for kind, kw in expectations]
    )


@pytest.mark.parametrize(
    ("type_list", "success"),
    [(["object", "str"], True), (["StringDtype"], True), (["int64"], False)],
    ids=["a-suite-without-the-arrow-type", "the-arrow-type-alone", "a-wrong-type"],
)
def test_type_lists_judge_string_columns_as_before(type_list, success):
    import pandas as pd

    from airloop.validation.checks import run_suite

    frame = pd.DataFrame({"code": ["JFK", None, "LGA"] * 10})
    result = run_suite(frame, _suite(("ExpectColumnValuesToBeInTypeList", {"column": "code", "type_list": type_list})))
    assert result.success is success


@pytest.mark.parametrize(
    "regex", [r"^[A-Z]{3}$", r"^(?!XXX)[A-Z]{3}$"], ids=["re2-compiles-it", "look-ahead-needs-python-re"]
)
def test_regular_expressions_judge_as_python_re(regex):
    import re

    import pandas as pd

    from airloop.validation.checks import run_suite

    values = ["JFK", "XXX", "lga", None, "EWR"]
    frame = pd.DataFrame({"code": values * 4})
    result = run_suite(frame, _suite(("ExpectColumnValuesToMatchRegex", {"column": "code", "regex": regex})))
    expected = sum(v is not None and not re.search(regex, v) for v in values) * 4
    (outcome,) = result.results
    assert outcome.result["unexpected_count"] == expected > 0
    assert not result.success

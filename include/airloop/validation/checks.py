"""Validate a snapshot against the dataset's Great Expectations suite; quarantine what fails."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from airloop.config import PipelineConfig
from airloop.data.snapshot import SnapshotManifest, read_snapshot
from airloop.lineage import TAG_PREFIX, Lineage
from airloop.validation import DataValidationError, FailedExpectation, ValidationSummary

log = logging.getLogger(__name__)

RESULTS_FILE = "validation.json"
REPORT_FILE = "validation.html"
SAMPLE_SIZE = 5
ARROW_STRING_TYPE = "StringDtype"  # the type name that accepts an Arrow-backed string column


def load_suite(path: Path) -> Any:
    """The expectation suite in `path` (GX's JSON form); every expectation must be known to GX."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    raw = json.loads(Path(path).read_text())
    for item in raw.get("expectations", []):
        # The suite constructor drops an unknown expectation type with only a log line: refuse it.
        ExpectationConfiguration(**item).to_domain_obj()
    return gx.ExpectationSuite(**raw)


def run_suite(frame: pd.DataFrame, suite: Any) -> Any:
    """Validate `frame` in an ephemeral GX context (nothing written, nothing sent); one suite result.

    GX's pandas engine is the gate, run so that it does not do work the verdicts do not need:

    - Each column's expectations run on a batch of that column alone, the table's (and those of a
      column the frame lacks, which GX reports as such) on the whole frame. The engine filters
      the batch's whole frame, every column, for each column expectation: on 1M rows x 28 columns
      that copying took about half the time.
    - Each part runs in GX's v1 Validator (what a ValidationDefinition runs) built once per batch:
      `Batch.validate` would load the batch a second time.
    - String columns are held as Arrow strings (`_with_arrow_strings`) and the batches are not
      fingerprinted (`_without_batch_fingerprints`); with regular expressions that Arrow's engine
      compiles, GX's regex checks run there too (`_pandas_options`).

    The parts are merged into one suite result.
    """
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.validator.v1_validator import Validator

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("airloop")
        .add_dataframe_asset("snapshot")
        .add_batch_definition_whole_dataframe("whole")
    )
    by_column: dict[str | None, list[Any]] = {}
    for expectation in suite.expectations:
        kwargs = expectation.configuration.kwargs
        column = kwargs.get("column")
        # A row condition may name other columns: such an expectation needs the whole frame.
        alone = column in frame.columns and not kwargs.get("row_condition")
        by_column.setdefault(column if alone else None, []).append(expectation)
    results: list[Any] = []
    meta: Any = {}
    batch_id = None
    with _pandas_options(suite), _without_batch_fingerprints():
        frame = _with_arrow_strings(frame, suite)
        for column, expectations in by_column.items():
            part = gx.ExpectationSuite(
                name=suite.name if column is None else f"{suite.name}[{column}]",
                expectations=[e.configuration.to_domain_obj() for e in expectations],
            )
            validator = Validator(
                batch_definition=batch_definition,
                batch_parameters={"dataframe": frame if column is None else frame[[column]]},
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
            )
            outcome = validator.validate_expectation_suite(part)
            results.extend(_none_for_missing(r) for r in outcome.results)
            if column is None or not meta:
                meta, batch_id = outcome.meta, outcome.batch_id
    successful = sum(bool(r.success) for r in results)
    return ExpectationSuiteValidationResult(
        success=successful == len(results),
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(results) - successful,
            "success_percent": successful / len(results) * 100 if results else None,
        },
        meta=meta,
        batch_id=batch_id,
    )


def _with_arrow_strings(frame: pd.DataFrame, suite: Any) -> pd.DataFrame:
    """`frame` with each object column that holds only strings (and nulls) as pandas' Arrow-backed
    string dtype, unless one of the suite's type expectations on that column does not accept it.

    GX checks an object column's type list value by value in Python (a million calls for a
    million rows) and scans its objects for nulls again for each expectation; on the Arrow dtype
    the type is the dtype's and the nulls are a bitmap. A column with any other value stays
    object, so GX still finds and reports that value. A type expectation accepts the Arrow dtype
    if it names "StringDtype" (under `_pandas_options`, `pd.StringDtype()` is the Arrow one).
    """
    import pyarrow as pa

    refused = {
        item.configuration.kwargs.get("column")
        for item in suite.expectations
        if (kinds := _type_names(item.configuration)) is not None and ARROW_STRING_TYPE not in kinds
    }
    converted = frame.copy(deep=False)
    for position, name in enumerate(frame.columns):
        series = frame.iloc[:, position]
        if series.dtype != object or name in refused or pd.api.types.infer_dtype(series, skipna=True) != "string":
            continue
        values = pa.array(series.to_numpy(), type=pa.string(), from_pandas=True)
        converted.isetitem(position, pd.Series(pd.arrays.ArrowStringArray(values), index=frame.index))
    return converted


def _type_names(configuration: Any) -> list[str] | None:
    """The type names a type expectation accepts (None for any other expectation)."""
    kwargs = configuration.kwargs
    if configuration.type == "expect_column_values_to_be_in_type_list":
        return list(kwargs.get("type_list") or [])
    if configuration.type == "expect_column_values_to_be_of_type":
        return [kwargs.get("type_")]
    return None


def _pandas_options(suite: Any) -> Any:
    """pandas options while the suite runs: "StringDtype" names the Arrow-backed string dtype and,
    when Arrow's regex engine (RE2) compiles every regular expression of the suite, `astype(str)`
    (which GX's regex checks call first) keeps strings in Arrow, so the match runs in Arrow too.

    RE2 has no look-around or back-references: a suite that uses them keeps Python's `re`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    options: list[Any] = ["mode.string_storage", "pyarrow"]
    patterns = []
    for item in suite.expectations:
        kwargs = item.configuration.kwargs
        patterns += [kwargs["regex"]] if isinstance(kwargs.get("regex"), str) else []
        patterns += [p for p in kwargs.get("regex_list") or [] if isinstance(p, str)]
    try:
        for pattern in patterns:
            pc.match_substring_regex(pa.array([""]), pattern=pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        log.info("a regular expression of suite %r needs Python's re: its checks run there", suite.name)
    else:
        options += ["future.infer_string", True]
    return pd.option_context(*options)


@contextlib.contextmanager
def _without_batch_fingerprints() -> Iterator[None]:
    """GX's pandas engine hashes each batch it loads (a "fingerprint" kept in the result's batch
    markers) unless the frame is over `HASH_THRESHOLD` bytes: at 1M rows that was a third of the
    run, half of it on the string columns. The snapshot's content hash already names the data
    (`airloop.snapshot_hash` on the validation run), so no batch is hashed while the suite runs."""
    from great_expectations.execution_engine import pandas_execution_engine

    threshold = pandas_execution_engine.HASH_THRESHOLD
    pandas_execution_engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        pandas_execution_engine.HASH_THRESHOLD = threshold


def _none_for_missing(result: Any) -> Any:
    """The result with pandas' NA in its unexpected samples as None (a null in an Arrow string
    column is NA, which GX's JSON and Data Docs renderers cannot handle)."""
    detail = result.result or {}
    if "partial_unexpected_list" in detail:
        detail["partial_unexpected_list"] = [None if v is pd.NA else v for v in detail["partial_unexpected_list"]]
    for count in detail.get("partial_unexpected_counts") or []:
        if isinstance(count, dict) and count.get("value") is pd.NA:
            count["value"] = None
    return result


def failed_expectations(result: Any) -> list[FailedExpectation]:
    """The failures of a GX validation result, in suite order of columns then expectation."""
    failures = []
    for item in result.results:
        if item.success:
            continue
        config, detail, info = item.expectation_config, item.result or {}, item.exception_info or {}
        errors = [info] if "raised_exception" in info else list(info.values())
        messages = [e.get("exception_message") for e in errors if isinstance(e, dict) and e.get("raised_exception")]
        observed = detail.get("observed_value")
        if mismatch := (detail.get("details") or {}).get("mismatched"):
            observed = {k: v for k, v in mismatch.items() if v}
        failures.append(
            FailedExpectation(
                expectation=config.type,
                column=config.kwargs.get("column"),
                element_count=detail.get("element_count"),
                unexpected_count=detail.get("unexpected_count"),
                unexpected_percent=detail.get("unexpected_percent"),
                sample=[None if _is_nan(v) else v for v in detail.get("partial_unexpected_list") or []][:SAMPLE_SIZE],
                observed=_jsonable(observed),
                error="; ".join(m for m in messages if m) or None,
            )
        )
    return sorted(failures, key=lambda f: (f.column or "", f.expectation))


def write_reports(result: Any, folder: Path) -> tuple[Path, Path]:
    """The result as JSON and as a Data Docs page (GX's own renderer), in `folder`."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    folder.mkdir(parents=True, exist_ok=True)
    results_path, report_path = folder / RESULTS_FILE, folder / REPORT_FILE
    results_path.write_text(json.dumps(result.to_json_dict(), indent=1))
    report_path.write_text(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))
    return results_path, report_path


def quarantine_batch(
    snapshot: SnapshotManifest, lake: Path, reports: list[Path], lineage: Lineage | None = None
) -> Path:
    """Move the snapshot and its reports out of the lake's snapshots into quarantine, naming the run
    it stopped; a batch already quarantined for the same window moves to the history, not away."""
    from airloop.validation.quarantine import keep_replaced, quarantine_dir, record_blocked

    target = quarantine_dir(lake, snapshot.dataset) / snapshot.snapshot_id
    keep_replaced(lake, snapshot.dataset, snapshot.snapshot_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(snapshot.path), target)
    for report in reports:
        shutil.copy2(report, target / report.name)
    record_blocked(target, lineage or Lineage())
    log.error("quarantined %s snapshot %s in %s", snapshot.dataset, snapshot.snapshot_id, target)
    return target


def validate_snapshot(
    config: PipelineConfig, snapshot: SnapshotManifest, *, lake: Path, tracking_uri: str | None, lineage: Lineage
) -> ValidationSummary:
    """Validate the snapshot, keep and log the reports, and raise (after quarantine) on failure."""
    suite = load_suite(config.dataset.suite_path)
    frame = read_snapshot(snapshot)
    log.info(
        "validating %d rows of %s with suite %r (%d expectations)",
        len(frame),
        snapshot.snapshot_id,
        suite.name,
        len(suite.expectations),
    )
    result = run_suite(frame, suite)
    results_path, report_path = write_reports(result, lake / "validation" / snapshot.dataset / snapshot.snapshot_id)
    summary = ValidationSummary(
        snapshot=snapshot,
        suite=suite.name,
        success=bool(result.success),
        evaluated=int(result.statistics["evaluated_expectations"]),
        failures=failed_expectations(result),
        results_path=results_path,
        report_path=report_path,
    )
    if tracking_uri:
        summary.mlflow_run_id = _log_to_mlflow(config, summary, tracking_uri, lineage)
    if summary.success:
        log.info("all %d expectations met; reports in %s", summary.evaluated, results_path.parent)
        return summary
    quarantine = quarantine_batch(snapshot, lake, [results_path, report_path], lineage)
    # Not logged here as well: whoever runs the stage shows the error (Airflow logs it with the task's failure).
    raise DataValidationError(summary, quarantine)


def _log_to_mlflow(config: PipelineConfig, summary: ValidationSummary, tracking_uri: str, lineage: Lineage) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(config.experiment)
    tags = {
        **lineage.tags(),
        f"{TAG_PREFIX}stage": "validate",
        f"{TAG_PREFIX}snapshot_id": summary.snapshot.snapshot_id,
        f"{TAG_PREFIX}snapshot_hash": summary.snapshot.content_hash,
        f"{TAG_PREFIX}validation.success": str(summary.success).lower(),
    }
    # One validation run per orchestrator run and snapshot: a rerun logs into the same run.
    existing = None
    if lineage.run_id:
        found = MlflowClient().search_runs(
            [experiment.experiment_id],
            f"tags.`{TAG_PREFIX}stage` = 'validate' and tags.`{TAG_PREFIX}airflow_run_id` = '{lineage.run_id}' "
            f"and tags.`{TAG_PREFIX}snapshot_hash` = '{summary.snapshot.content_hash}'",
            max_results=1,
        )
        existing = found[0].info.run_id if found else None
    with mlflow.start_run(run_id=existing, run_name=f"validate {summary.snapshot.snapshot_id}", tags=tags) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics(
            {
                "expectations_evaluated": summary.evaluated,
                "expectations_failed": len(summary.failures),
                "rows": summary.snapshot.rows,
            }
        )
        mlflow.log_artifact(str(summary.results_path), artifact_path="validation")
        mlflow.log_artifact(str(summary.report_path), artifact_path="validation")
        if not summary.success:
            mlflow.end_run(status="FAILED")
    return run.info.run_id


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

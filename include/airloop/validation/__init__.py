"""Data validation with Great Expectations: the summary a run passes on, and the failure it raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from airloop.data.snapshot import SnapshotManifest


class FailedExpectation(BaseModel):
    """One expectation the batch did not meet, with enough detail to act on."""

    expectation: str
    column: str | None = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = []
    observed: Any = None
    error: str | None = None

    def describe(self) -> str:
        head = f"{self.expectation}({self.column})" if self.column else self.expectation
        if self.error:
            return f"{head}: {self.error}"
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent is not None else ""
            return f"{head}: {self.unexpected_count} of {self.element_count} rows unexpected{pct}, e.g. {self.sample}"
        return f"{head}: observed {self.observed}"


class ValidationSummary(BaseModel):
    """The outcome of validating one snapshot; the XCom passed on to training."""

    snapshot: SnapshotManifest
    suite: str
    success: bool
    evaluated: int
    failures: list[FailedExpectation]
    results_path: Path
    report_path: Path
    mlflow_run_id: str | None = None


class DataValidationError(RuntimeError):
    """The batch failed its expectation suite; it has been quarantined with its report."""

    def __init__(self, summary: ValidationSummary, quarantine: Path) -> None:
        self.summary = summary
        self.quarantine = quarantine
        lines = [
            f"data validation failed for {summary.snapshot.dataset} snapshot {summary.snapshot.snapshot_id}: "
            f"{len(summary.failures)} of {summary.evaluated} expectations in suite {summary.suite!r} not met",
            *(f"  - {f.describe()}" for f in summary.failures),
            f"The batch and its report are quarantined in {quarantine} (report: {summary.report_path.name}).",
            "Nothing downstream runs and the champion model is unchanged. Fix the source, then "
            f"`airloop quarantine [--pipeline NAME] readmit {summary.snapshot.snapshot_id} --why '...'` (or the "
            "pipeline's readmit DAG) validates it again and lets the blocked run go on.",
        ]
        super().__init__("\n".join(lines))

"""Quarantined batches: what failed, the run each one blocked, and re-admitting one once its source is fixed.

A batch that fails its expectation suite lives in `<lake>/quarantine/<dataset>/<snapshot id>/` with its
data, its manifest, Great Expectations' reports and `blocked.json` (the orchestrator run it stopped).
`readmit` reads the window from the source again and validates it with the same suite:

- the source still holds the same data (same content hash): refused, nothing changes;
- it passes: the new snapshot is in the lake and the blocked run may go on (the CLI clears it
  through Airflow's REST API, so it ingests the fixed data and trains);
- it fails again: it is quarantined again with the new report, still naming the blocked run.

Nothing is lost on the way: a quarantined batch that is replaced (re-admitted, or quarantined
again) moves to `<lake>/quarantine-history/<dataset>/<snapshot id>/<UTC time>/`, and every attempt,
who made it and why, is appended to `<lake>/quarantine/<dataset>/readmissions.jsonl`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from airloop.data.snapshot import MANIFEST_FILE, SnapshotManifest
from airloop.lineage import Lineage

if TYPE_CHECKING:
    from airloop.config import PipelineConfig
    from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)

BLOCKED_FILE = "blocked.json"
READMISSIONS_FILE = "readmissions.jsonl"


class QuarantineError(RuntimeError):
    """A re-admission that cannot be tried (no such batch, or the source was not fixed)."""


class BlockedRun(BaseModel):
    """The orchestrator run a quarantined batch stopped."""

    dag_id: str
    run_id: str


class Readmission(BaseModel):
    """One attempt to re-admit a batch: who, why, and what validation said."""

    snapshot_id: str
    by: str
    why: str
    at: dt.datetime
    admitted: bool
    content_hash: str | None = None
    failures: list[str] = Field(default_factory=list)
    blocked: BlockedRun | None = None
    history: Path | None = None  # where the replaced quarantined batch was kept


def quarantine_dir(lake: Path, dataset: str) -> Path:
    return lake / "quarantine" / dataset


def history_dir(lake: Path, dataset: str) -> Path:
    return lake / "quarantine-history" / dataset


def quarantined_ids(lake: Path, dataset: str) -> list[str]:
    folder = quarantine_dir(lake, dataset)
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def blocked_run(batch: Path) -> BlockedRun | None:
    path = batch / BLOCKED_FILE
    return BlockedRun.model_validate_json(path.read_text()) if path.is_file() else None


def keep_replaced(lake: Path, dataset: str, snapshot_id: str, *, now: dt.datetime | None = None) -> Path | None:
    """Move a quarantined batch that is about to be replaced into the history; None if there is none."""
    batch = quarantine_dir(lake, dataset) / snapshot_id
    if not batch.is_dir():
        return None
    kept = history_dir(lake, dataset) / snapshot_id / f"{(now or dt.datetime.now(dt.UTC)):%Y%m%dT%H%M%S%fZ}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(batch), kept)
    return kept


def record_blocked(batch: Path, lineage: Lineage) -> None:
    """Name the run a freshly quarantined batch stopped (nothing when called outside an orchestrator)."""
    if lineage.dag_id and lineage.run_id:
        (batch / BLOCKED_FILE).write_text(BlockedRun(dag_id=lineage.dag_id, run_id=lineage.run_id).model_dump_json())


def readmissions(lake: Path, dataset: str) -> list[Readmission]:
    path = quarantine_dir(lake, dataset) / READMISSIONS_FILE
    if not path.is_file():
        return []
    return [Readmission.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def readmit(
    settings: AirloopSettings,
    config: PipelineConfig,
    snapshot_id: str,
    *,
    by: str,
    why: str,
    now: dt.datetime | None = None,
) -> Readmission:
    """Read the quarantined batch's window from the source again and validate it (see the module)."""
    from airloop.data.snapshot import content_hash, write_snapshot
    from airloop.data.sources import read_window
    from airloop.validation import DataValidationError
    from airloop.validation.checks import validate_snapshot

    dataset, lake = config.dataset.name, settings.state.lake
    batch = quarantine_dir(lake, dataset) / snapshot_id
    known = quarantined_ids(lake, dataset)
    if snapshot_id not in known:
        raise QuarantineError(f"no quarantined {dataset} batch {snapshot_id!r}; quarantined: {known or 'none'}")
    if not why.strip():
        raise QuarantineError("say why the batch may come back (what was fixed at the source)")
    quarantined = SnapshotManifest.model_validate_json((batch / MANIFEST_FILE).read_text())
    blocked = blocked_run(batch)
    frame, origin = read_window(
        config.dataset.source, home=settings.home, start=quarantined.window_start, end=quarantined.window_end
    )
    digest = content_hash(frame)
    if digest == quarantined.content_hash:
        raise QuarantineError(
            f"the source still holds the quarantined data of {snapshot_id} ({origin}, content hash {digest[:12]}): "
            "fix it at the source first"
        )
    log.info("re-admitting %s: %d rows read again from %s (by %s: %s)", snapshot_id, len(frame), origin, by, why)
    at = now or dt.datetime.now(dt.UTC)
    history = keep_replaced(lake, dataset, snapshot_id, now=at)
    snapshot = write_snapshot(
        frame, lake=lake, dataset=dataset, start=quarantined.window_start, end=quarantined.window_end, source=origin
    )
    lineage = Lineage(reason=f"re-admission of {snapshot_id} by {by}: {why}")
    attempt = Readmission(
        snapshot_id=snapshot_id,
        by=by,
        why=why,
        at=at,
        admitted=True,
        content_hash=digest,
        blocked=blocked,
        history=history,
    )
    try:
        validate_snapshot(config, snapshot, lake=lake, tracking_uri=settings.tracking_uri, lineage=lineage)
    except DataValidationError as err:
        attempt.admitted = False
        attempt.failures = [f.describe() for f in err.summary.failures]
        if blocked is not None:  # still the run it stops
            (err.quarantine / BLOCKED_FILE).write_text(blocked.model_dump_json())
    _append(lake, dataset, attempt)
    return attempt


def _append(lake: Path, dataset: str, attempt: Readmission) -> None:
    path = quarantine_dir(lake, dataset) / READMISSIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(json.loads(attempt.model_dump_json())) + "\n")

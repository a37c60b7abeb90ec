"""Immutable, content-addressed snapshots of a run's input, with a manifest.

A snapshot is keyed on its dataset and data window, never the wall clock: the same run (or any
run over the same window) writes the same folder again, never a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"


class SnapshotManifest(BaseModel):
    """What a snapshot holds and where it came from; the XCom passed between tasks."""

    dataset: str
    snapshot_id: str
    window_start: dt.date
    window_end: dt.date
    source: str
    rows: int
    columns: dict[str, str]
    content_hash: str
    path: Path

    @property
    def data_path(self) -> Path:
        return self.path / DATA_FILE


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the columns, their types and every value: equal data, equal hash."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def snapshot_dir(lake: Path, dataset: str, start: dt.date, end: dt.date) -> Path:
    return lake / "snapshots" / dataset / f"{start.isoformat()}_{end.isoformat()}"


def write_snapshot(
    frame: pd.DataFrame, *, lake: Path, dataset: str, start: dt.date, end: dt.date, source: str
) -> SnapshotManifest:
    """Write `frame` as the snapshot of [start, end); rewriting the same data is a no-op."""
    folder = snapshot_dir(lake, dataset, start, end)
    manifest = SnapshotManifest(
        dataset=dataset,
        snapshot_id=folder.name,
        window_start=start,
        window_end=end,
        source=source,
        rows=len(frame),
        columns={str(c): str(t) for c, t in frame.dtypes.items()},
        content_hash=content_hash(frame),
        path=folder,
    )
    existing = read_manifest(folder)
    if existing is not None and existing.content_hash == manifest.content_hash and manifest.data_path.exists():
        log.info("snapshot %s already holds this data (hash %s)", folder, manifest.content_hash[:12])
        return existing
    if existing is not None:
        # The data behind a model version never changes: the old content is kept beside, by its hash.
        kept = _kept_dir(folder, existing.content_hash)
        log.warning(
            "snapshot %s changed at the source (hash %s -> %s); the earlier content stays in %s",
            folder,
            existing.content_hash[:12],
            manifest.content_hash[:12],
            kept.name,
        )
        if not kept.exists():
            folder.rename(kept)
    # Write beside, then swap, so a crash never leaves a half-written snapshot in place.
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    frame.to_parquet(staging / DATA_FILE, index=False)
    (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    log.info("snapshot %s: %d rows, hash %s", folder, manifest.rows, manifest.content_hash[:12])
    return manifest


def read_manifest(folder: Path) -> SnapshotManifest | None:
    path = folder / MANIFEST_FILE
    if not path.exists():
        return None
    return SnapshotManifest.model_validate_json(path.read_text()).model_copy(update={"path": folder})


def find_snapshot(
    lake: Path, dataset: str, start: dt.date, end: dt.date, content: str | None
) -> SnapshotManifest | None:
    """The snapshot of [start, end) holding exactly `content` (a hash), current or kept; any if None."""
    folder = snapshot_dir(lake, dataset, start, end)
    for candidate in (folder, *([_kept_dir(folder, content)] if content else [])):
        manifest = read_manifest(candidate)
        if manifest is not None and (content is None or manifest.content_hash == content):
            return manifest
    return None


def _kept_dir(folder: Path, content: str) -> Path:
    return folder.with_name(f"{folder.name}@{content[:16]}")


def read_snapshot(manifest: SnapshotManifest, columns: list[str] | None = None) -> pd.DataFrame:
    """The snapshot's rows, checked against the manifest's hash; only `columns` if given.

    The hash covers every column, so all are read; the others are dropped before returning.
    """
    import pyarrow as pa

    frame = pd.read_parquet(manifest.data_path)
    actual = content_hash(frame)
    if actual != manifest.content_hash:
        raise ValueError(
            f"snapshot {manifest.path} does not match its manifest (hash {actual[:12]} != "
            f"{manifest.content_hash[:12]}); re-run ingest for this window"
        )
    if columns is not None:
        frame = frame[columns]
    # Arrow's allocator keeps what the read freed (the Parquet pages, the dropped columns) for its own
    # reuse, which pandas and scikit-learn never ask it for: at 10M rows, 4 GB held for nothing.
    pa.default_memory_pool().release_unused()
    return frame

"""Scaling: ingest + validate + train (the `airloop.pipeline` stages) at 10k, 100k and 1M rows.

Each size runs in a fresh interpreter, so its peak memory is its own. The landing zone is the
replayed 2013 flights resampled (seeded, with replacement) to the size and spread over the days
of the training window.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.processes import peak_rss_mb, report, run_worker

SIZES = {"smoke": [3_000], "full": [10_000, 100_000, 1_000_000]}
RUN_DATE = dt.date(2026, 7, 1)
SEED = 13


def make_landing(home: Path, rows: int) -> dict[str, Any]:
    """Worker: `rows` resampled flights as one Parquet partition per day of the training window."""
    import numpy as np
    import pandas as pd

    from airloop.data.replay import load_flights_2013
    from airloop.settings import AirloopSettings

    settings = AirloopSettings(home=home)
    config = settings.load_pipelines().get("flights").config
    days = config.training.window_days
    flights = load_flights_2013()
    sample = flights.sample(n=rows, replace=rows > len(flights), random_state=SEED).sort_values("time_hour")
    # Contiguous, time-ordered chunks: the latest rows land on the latest day, as in real data.
    chunks = np.array_split(np.arange(len(sample)), days)
    folder = settings.state.landing / "flights"
    for offset, index in enumerate(chunks):
        day = RUN_DATE - dt.timedelta(days=days - offset)
        batch = sample.iloc[index].copy()
        clock = batch["time_hour"] - batch["time_hour"].dt.normalize()
        batch["time_hour"] = pd.Timestamp(day, tz="UTC") + clock
        batch["year"], batch["month"], batch["day"] = day.year, day.month, day.day
        target = folder / f"date={day:%Y-%m-%d}"
        target.mkdir(parents=True, exist_ok=True)
        batch.to_parquet(target / "flights.parquet", index=False)
    return {"rows": rows, "days": days}


def measure(home: Path) -> dict[str, Any]:
    """Worker: time ingest, validate and train on the landing zone; peak memory of this process."""
    # The heavy libraries first, so the figures below are the stages' work, not their imports.
    import great_expectations  # noqa: F401
    import mlflow  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    from airloop import pipeline
    from airloop.lineage import Lineage
    from airloop.settings import AirloopSettings

    baseline_mb = peak_rss_mb()
    os.chdir(home)  # an MLflow SQLite store keeps artifacts under the working directory
    settings = AirloopSettings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    options = pipeline.RunOptions()
    config = pipeline.pipeline_config(settings.load_pipelines().get("flights"), options)
    lineage = Lineage(run_id="bench-scaling")
    start, end = pipeline.data_window(config, options, RUN_DATE)
    timings = {}
    began = time.perf_counter()
    snapshot = pipeline.ingest(settings, config, start, end)
    timings["ingest_s"] = time.perf_counter() - began
    validated = pipeline.validate(settings, config, snapshot, lineage)
    timings["validate_s"] = time.perf_counter() - began - timings["ingest_s"]
    pipeline.train(settings, config, validated, lineage)
    timings["train_s"] = time.perf_counter() - began - timings["ingest_s"] - timings["validate_s"]
    return {
        "rows": snapshot.rows,
        "seconds": time.perf_counter() - began,
        "peak_mb": peak_rss_mb(),
        **timings,
        "after_imports_mb": baseline_mb,
    }


def run(size: str) -> dict[str, Any]:
    """{"scaling": [{rows, seconds, peak_mb, per-stage seconds, growth per 10x}, ...]}."""
    points: list[dict[str, Any]] = []
    for rows in SIZES[size]:
        with tempfile.TemporaryDirectory(prefix=f"airloop-bench-scaling-{rows}-") as tmp:
            run_worker("benchmarks.bench_scaling", ["landing", tmp, str(rows)], timeout=1800)
            point = run_worker("benchmarks.bench_scaling", ["measure", tmp], timeout=7200)
        if points:
            previous = points[-1]
            # Per 10x rows, even where a step is not exactly 10x: ratio ** (1 / log10(rows ratio)).
            decades = math.log10(point["rows"] / previous["rows"])
            point["time_growth_per_10x"] = (point["seconds"] / previous["seconds"]) ** (1 / decades)
            point["memory_growth_per_10x"] = (point["peak_mb"] / previous["peak_mb"]) ** (1 / decades)
        points.append(point)
    return {"scaling": points}


if __name__ == "__main__":
    command, home = sys.argv[1], Path(sys.argv[2])
    if command == "landing":
        report(make_landing(home, int(sys.argv[3])))
    elif command == "measure":
        report(measure(home))
    else:
        raise SystemExit(f"unknown command {command!r}: landing or measure")

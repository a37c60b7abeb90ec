"""Scaling: ingest + validate + train (the `airloop.pipeline` stages) at 10k, 100k and 1M rows.

Each size runs in a fresh interpreter, so its peak memory is its own. The landing zone is the
replayed 2013 flights resampled (seeded, with replacement) to the size and spread over the days
of the training window.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.processes import peak_rss_mb, report, reset_peak_rss, run_worker

SIZES = {"smoke": [3_000], "full": [10_000, 100_000, 1_000_000, 10_000_000]}
STAGES = ("ingest", "validate", "train")
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
    config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"suite": _suite(config, home)})})
    lineage = Lineage(run_id="bench-scaling")
    start, end = pipeline.data_window(config, options, RUN_DATE)
    figures: dict[str, float] = {}

    def stage(name: str, work: Callable[[], Any]) -> Any:
        # Each stage's own peak (an Airflow task is a process of its own), on top of what the
        # stages before it left in this process's heap: an upper bound for the task's process.
        gc.collect()
        reset_peak_rss()
        started = time.perf_counter()
        outcome = work()
        figures[f"{name}_s"] = time.perf_counter() - started
        figures[f"{name}_peak_mb"] = peak_rss_mb()
        log(f"{name}: {figures[f'{name}_s']:.1f} s, peak {figures[f'{name}_peak_mb']:,.0f} MB")
        return outcome

    snapshot = stage("ingest", lambda: pipeline.ingest(settings, config, start, end))
    validated = stage("validate", lambda: pipeline.validate(settings, config, snapshot, lineage))
    stage("train", lambda: pipeline.train(settings, config, validated, lineage))
    return {
        "rows": snapshot.rows,
        "seconds": sum(figures[f"{name}_s"] for name in STAGES),
        "peak_mb": max(figures[f"{name}_peak_mb"] for name in STAGES),
        **figures,
        "after_imports_mb": baseline_mb,
    }


def _suite(config: Any, home: Path) -> Path:
    """The pipeline's suite with its row-count ceiling (5M, for a month of one airport's flights)
    lifted above the largest size: every other expectation judges the window as the pipeline does."""
    suite = json.loads(config.dataset.suite_path.read_text())
    for item in suite["expectations"]:
        if item["type"] == "expect_table_row_count_to_be_between":
            item["kwargs"]["max_value"] = max(item["kwargs"].get("max_value") or 0, 10 * max(SIZES["full"]))
    path = home / "suite.json"
    path.write_text(json.dumps(suite))
    return path


def log(message: str) -> None:
    print(f"bench_scaling: {message}", file=sys.stderr, flush=True)


def run(size: str) -> dict[str, Any]:
    """{"sizes": [{rows, seconds, peak_mb, per-stage seconds and peaks, growth per 10x}, ...], and the
    10M-row point's seconds and peak as `rows_10m_s` and `rows_10m_peak_mb` when it was measured}."""
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
    figures: dict[str, Any] = {"sizes": points}
    for point in points:
        if point["rows"] == 10_000_000:
            figures |= {"rows_10m_s": point["seconds"], "rows_10m_peak_mb": point["peak_mb"]}
    return figures


if __name__ == "__main__":
    command, home = sys.argv[1], Path(sys.argv[2])
    if command == "landing":
        report(make_landing(home, int(sys.argv[3])))
    elif command == "measure":
        report(measure(home))
    else:
        raise SystemExit(f"unknown command {command!r}: landing or measure")

"""Drift: Airloop's `compute_drift` against Evidently 0.7's `DataDriftPreset` on the full data.

Reference and current each hold `rows` rows x 20 columns (10 numeric, 10 categorical), a seeded
mix of shifted and unshifted columns, with missing values, a column whose shift is below the
threshold, a category only the current window has, and object, bool, int and category dtypes.
The frames are generated once into Parquet (not timed); each contender then runs in a fresh
interpreter that reads them, resets its peak-memory mark (Linux `clear_refs`), and runs once per
repeat. Peak memory is the process's resident high-water mark while the contender runs, data
included (both hold the same frames). Evidently runs its preset with the defaults, as its docs
show: `Report([DataDriftPreset()], include_tests=True).run(current, reference)` on datasets with
the same explicit numeric/categorical definition; its verdict per column is its own test status.

`python -m benchmarks.bench_drift --size smoke|full` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.processes import report, run_worker

SEED = 20130101
NUMERIC = [
    "num_normal",
    "num_normal_shifted",
    "num_lognormal",
    "num_lognormal_scaled",
    "num_delay_minutes",
    "num_delay_minutes_shifted",
    "num_uniform",
    "num_uniform_small_shift",
    "num_few_values_shifted",
    "num_sparse",
]
CATEGORICAL = [
    "cat_carrier",
    "cat_carrier_shifted",
    "cat_origin",
    "cat_dest_new_value",
    "cat_flag",
    "cat_code_shifted",
    "cat_category",
    "cat_category_shifted",
    "cat_with_missing",
    "cat_long_tail_shifted",
]
#: rows of each size; the figures of the largest one are the section's headline.
SIZES = {"smoke": (3_000,), "full": (100_000, 1_000_000)}
REPEATS = {"airloop": 5, "evidently": 1}
SMOKE_REPEATS = {"airloop": 2, "evidently": 1}
WORKER_TIMEOUT_S = 3600


def make_frame(rows: int, *, drifted: bool, seed: int) -> pd.DataFrame:
    """One window of the synthetic data: the reference (``drifted=False``) or the current window."""
    rng = np.random.default_rng(seed)
    shift = 1.0 if drifted else 0.0
    carriers = np.array([f"C{i:02d}" for i in range(16)], dtype=object)
    airports = np.array([f"A{i:03d}" for i in range(100)], dtype=object)
    tail = np.array([f"T{i:04d}" for i in range(1000)], dtype=object)

    def shares(weights: np.ndarray) -> np.ndarray:
        return weights / weights.sum()

    carrier_weights = shares(np.linspace(1, 3, carriers.size))
    carrier_weights_shifted = shares(np.linspace(1, 3, carriers.size)[::-1] if drifted else carrier_weights)
    dest_weights = shares(np.ones(airports.size))
    tail_weights = shares(1.0 / np.arange(1, tail.size + 1) ** (1.1 + 0.3 * shift))
    delay = np.round(rng.gamma(1.5, 12.0, rows) - 10.0)
    frame = pd.DataFrame(
        {
            "num_normal": rng.normal(0.0, 1.0, rows),
            "num_normal_shifted": rng.normal(0.3 * shift, 1.0, rows),
            "num_lognormal": rng.lognormal(3.0, 0.8, rows),
            "num_lognormal_scaled": rng.lognormal(3.0 + 0.25 * shift, 0.8, rows),
            "num_delay_minutes": np.where(rng.random(rows) < 0.03, np.nan, delay),
            "num_delay_minutes_shifted": np.round(rng.gamma(1.5, 12.0, rows) - 10.0 + 6.0 * shift),
            "num_uniform": rng.uniform(0.0, 100.0, rows),
            "num_uniform_small_shift": rng.uniform(0.0 + 1.0 * shift, 100.0 + 1.0 * shift, rows),
            "num_few_values_shifted": rng.choice(
                [0.0, 1.0, 2.0, 3.0], rows, p=[0.4, 0.3, 0.2, 0.1] if drifted else None
            ),
            "num_sparse": np.where(rng.random(rows) < 0.3, np.nan, rng.exponential(5.0, rows)),
            "cat_carrier": rng.choice(carriers, rows, p=carrier_weights),
            "cat_carrier_shifted": rng.choice(carriers, rows, p=carrier_weights_shifted),
            "cat_origin": rng.choice(np.array(["EWR", "JFK", "LGA"], dtype=object), rows),
            "cat_dest_new_value": rng.choice(airports, rows, p=dest_weights),
            "cat_flag": rng.random(rows) < 0.2,
            "cat_code_shifted": rng.integers(0, 6 + int(3 * shift), rows),
            "cat_category": pd.Categorical(rng.choice(airports[:50], rows)),
            "cat_category_shifted": pd.Categorical(
                rng.choice(airports[:50], rows, p=shares(np.arange(1, 51.0) ** shift))
            ),
            "cat_with_missing": np.where(rng.random(rows) < 0.05, np.array(None), rng.choice(carriers[:8], rows)),
            "cat_long_tail_shifted": rng.choice(tail, rows, p=tail_weights),
        }
    )
    if drifted:
        # A destination the reference never saw takes 15% of the current window.
        new = rng.random(rows) < 0.15
        frame.loc[new, "cat_dest_new_value"] = "NEW"
    return frame


def write_frames(folder: Path, rows: int) -> tuple[Path, Path]:
    """Reference and current Parquet files of `rows` rows each."""
    reference, current = folder / f"reference_{rows}.parquet", folder / f"current_{rows}.parquet"
    make_frame(rows, drifted=False, seed=SEED).to_parquet(reference)
    make_frame(rows, drifted=True, seed=SEED + 1).to_parquet(current)
    return reference, current


def _memory_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_memory() -> None:
    # Linux: writing 5 to clear_refs resets the resident high-water mark (VmHWM) to the current RSS,
    # so reading the Parquet files does not count as the contender's peak.
    Path("/proc/self/clear_refs").write_text("5")


def run_airloop(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    """Per-column verdicts of Airloop's drift computation."""
    from airloop.monitoring.drift import compute_drift

    result = compute_drift(reference, current, numeric=NUMERIC, categorical=CATEGORICAL)
    return {c.column: c.drifted for c in result.columns}


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    """Per-column verdicts of Evidently's DataDriftPreset with its defaults (its own test status)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from airloop.monitoring.drift import evidently_verdicts

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return {column: drifted for column, (_, drifted) in evidently_verdicts(snapshot).items()}


CONTENDERS = {"airloop": run_airloop, "evidently": run_evidently}


def worker(contender: str, reference_path: Path, current_path: Path, repeats: int) -> dict[str, Any]:
    """In a fresh interpreter: read the frames, then time the contender `repeats` times."""
    import warnings

    run = CONTENDERS[contender]
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    # Import time is not computation time: both contenders have their libraries loaded before the clock.
    if contender == "evidently":
        import evidently.presets  # noqa: F401
    else:
        import scipy.spatial.distance
        import scipy.stats  # noqa: F401

    _reset_peak_memory()
    data_mb = _memory_mb("VmRSS")
    seconds, cpu_seconds, verdicts = [], [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Evidently warns per column on large data; the figures are what count
        for _ in range(repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            verdicts = run(reference, current)
            seconds.append(time.perf_counter() - started)
            cpu_seconds.append(time.process_time() - started_cpu)
    return {
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "median_cpu_s": statistics.median(cpu_seconds),
        "peak_mb": _memory_mb("VmHWM"),
        "data_mb": data_mb,
        "verdicts": verdicts,
    }


def compare(rows: int, folder: Path, repeats: dict[str, int]) -> dict[str, Any]:
    """Both contenders on `rows` rows, each in its own interpreter."""
    reference, current = write_frames(folder, rows)
    outcome = {
        name: run_worker(
            "benchmarks.bench_drift",
            ["--worker", name, "--reference", str(reference), "--current", str(current), "--repeats", str(count)],
            timeout=WORKER_TIMEOUT_S,
        )
        for name, count in repeats.items()
    }
    ours, theirs = outcome["airloop"], outcome["evidently"]
    agree = sum(ours["verdicts"][c] == theirs["verdicts"][c] for c in theirs["verdicts"])
    return {
        "rows": rows,
        "airloop_s": round(ours["median_s"], 3),
        "evidently_s": round(theirs["median_s"], 2),
        "speedup": round(theirs["median_s"] / ours["median_s"], 1),
        # CPU seconds move less than wall time when other work shares the machine.
        "airloop_cpu_s": round(ours["median_cpu_s"], 3),
        "evidently_cpu_s": round(theirs["median_cpu_s"], 2),
        "cpu_speedup": round(theirs["median_cpu_s"] / ours["median_cpu_s"], 1),
        "airloop_peak_mb": round(ours["peak_mb"]),
        "evidently_peak_mb": round(theirs["peak_mb"]),
        "data_mb": round(ours["data_mb"]),
        "verdict_agreement": agree / len(theirs["verdicts"]),
        "drifted_columns_evidently": sum(theirs["verdicts"].values()),
        "drifted_columns_airloop": sum(ours["verdicts"].values()),
        "columns": len(theirs["verdicts"]),
    }


def run(size: str) -> dict[str, Any]:
    """The section's figures: the largest size's, plus the smaller size's under `rows_<n>_` keys."""
    sizes = SIZES[size]
    repeats = SMOKE_REPEATS if size == "smoke" else REPEATS
    with tempfile.TemporaryDirectory(prefix="airloop-bench-drift-") as tmp:
        by_size = [compare(rows, Path(tmp), repeats) for rows in sizes]
    headline = by_size[-1]
    figures: dict[str, Any] = dict(headline)
    for smaller in by_size[:-1]:
        label = f"rows_{smaller['rows'] // 1000}k_"
        figures.update({label + key: value for key, value in smaller.items() if key != "rows"})
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    parser.add_argument("--worker", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--current", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        report(worker(args.worker, args.reference, args.current, args.repeats))
        return
    json.dump(run(args.size), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

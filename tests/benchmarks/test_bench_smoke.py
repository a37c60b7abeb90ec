"""`make bench-smoke`: the benchmark harness runs every section at tiny sizes and writes its results."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from airloop.settings import PROJECT_ROOT
from benchmarks.run import REQUIRED_KEYS, SECTIONS, SMOKE_ONLY_KEYS


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def test_smoke_run_writes_every_issue_key_as_a_number_and_a_readable_report(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--size", "smoke", "--out", str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        # A guard against a hang, not a speed check: about 4 minutes here, over 10 on a day this
        # machine ran Python at half speed (2026-12-07).
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())

    for section in SECTIONS:
        figures = results[section]
        if isinstance(figures, dict) and figures.get("status") == "missing":
            continue  # its module has not landed yet; the harness said so instead of crashing
        if section == "scaling":
            assert figures["sizes"], "scaling measured no size"
            for point in figures["sizes"]:
                assert all(_is_number(point[key]) for key in ("rows", "seconds", "peak_mb")), point
                assert point["rows"] > 0
                assert point["seconds"] > 0
                assert point["peak_mb"] > 0
            continue
        keys = SMOKE_ONLY_KEYS.get(section, REQUIRED_KEYS[section])
        missing = [key for key in keys if not _is_number(figures.get(key))]
        assert not missing, f"{section} lacks {missing}: {figures}"

    if isinstance(results["serving"], dict) and "status" not in results["serving"]:
        serving = results["serving"]
        assert serving["load_generator"] in ("wrk", "httpx-asyncio")
        assert serving["rps_ratio_c8"] == serving["airloop_rps_c8"] / serving["mlflow_rps_c8"]
        assert serving["inference_log_rows"] > 0

    assert {"cpu", "cores", "memory_mb", "python", "libraries", "date"} <= set(results["machine"])
    statuses = {check["target"]: check["status"] for check in results["targets"]}
    assert statuses["pipeline.max_parse_s <= 0.5"] in ("pass", "fail")
    assert statuses["pipeline.ratio <= 1.3"] == "not measured"  # smoke does not start Airflow
    assert statuses["pipeline.monitoring_run_s <= 15"] == "not measured"
    assert statuses["scaling.rows_10m_peak_mb <= 12288"] == "not measured"  # smoke trains no 10M rows

    report = (tmp_path / "RESULTS.md").read_text()
    assert "## Targets" in report
    assert "## Machine" in report
    for check in results["targets"]:
        assert f"`{check['target']}`" in report


def test_a_section_that_does_not_exist_is_recorded_not_fatal():
    from benchmarks import run as harness

    assert harness.run_section("nonexistent", "smoke") == {
        "status": "missing",
        "error": "benchmarks.bench_nonexistent does not exist",
    }


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    from benchmarks import bench_pipeline
    from benchmarks import run as harness

    def broken(size: str) -> dict:
        raise RuntimeError(f"broken at {size}")

    monkeypatch.setattr(bench_pipeline, "run", broken)
    results = harness.run_benchmarks("smoke", ["pipeline"], tmp_path)
    assert results["pipeline"]["status"] == "error"
    assert results["pipeline"]["error"] == "RuntimeError: broken at smoke"
    assert "Not measured (error)" in (tmp_path / "RESULTS.md").read_text()
    assert {c["status"] for c in results["targets"]} == {"not measured"}


def test_targets_compare_against_fixed_and_relative_bounds():
    from benchmarks.run import Target

    relative = Target("serving", "batch_rows_per_s", ">=", 0.5, relative_to="inprocess_rows_per_s")
    assert relative.check({"serving": {"batch_rows_per_s": 60.0, "inprocess_rows_per_s": 100.0}})["status"] == "pass"
    assert relative.check({"serving": {"batch_rows_per_s": 40.0, "inprocess_rows_per_s": 100.0}})["status"] == "fail"
    bound = Target("pipeline", "ratio", "<=", 1.5)
    assert bound.check({"pipeline": {"ratio": 1.6}})["status"] == "fail"
    assert bound.check({"pipeline": {"ratio": 1.5}})["status"] == "pass"
    assert bound.check({"pipeline": {"status": "error"}})["status"] == "not measured"

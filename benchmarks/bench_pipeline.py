"""Pipeline overhead: one `airloop_flights_training` run on a real embedded Airflow against the same stage
functions in one Python process; the gap between a task's end and its downstream task's start;
the parse time of each DAG file in a fresh interpreter; and one nightly `airloop_flights_monitoring`
run over a day of served requests (issue 15: read, assess and publish a daily window in 15 s).

Smoke size measures the parse times only: starting Airflow alone takes longer than smoke allows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.processes import PROJECT_ROOT, BenchmarkError, free_port, report, run_worker

DAG_ID = "airloop_flights_training"
MONITORING_DAG = "airloop_flights_monitoring"
PASSWORD = "bench-admin-password"
#: Measured runs, after one warm-up run (triggered: the training DAG has no calendar schedule).
REPEATS = {"smoke": 0, "full": 2}
PARSE_REPEATS = {"smoke": 1, "full": 5}

# Airflow itself is imported first, as it already is in the dag-processor: the figure is what
# the DAG file adds (the interpreter's whole wall time is reported beside it).
PARSE_PROBE = """
import json, runpy, sys, time
sys.path.insert(0, {plugins!r})
import airflow.sdk
started = time.perf_counter()
runpy.run_path({path!r}, run_name="dag_file")
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""


def parse_times(repeats: int) -> dict[str, dict[str, float]]:
    """Per DAG file: median seconds to run it after `import airflow.sdk`, and the interpreter's wall."""
    times: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="airloop-bench-parse-") as airflow_home:
        env = {**os.environ, "AIRFLOW_HOME": airflow_home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        for path in sorted((PROJECT_ROOT / "dags").glob("*.py")):
            code = PARSE_PROBE.format(plugins=str(PROJECT_ROOT / "plugins"), path=str(path))
            parse, wall = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
                )
                wall.append(time.perf_counter() - started)
                if done.returncode != 0:
                    raise BenchmarkError(f"{path.name} does not parse: {done.stderr[-2000:]}")
                parse.append(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
            times[path.stem] = {"parse_s": statistics.median(parse), "interpreter_s": statistics.median(wall)}
    return times


def _timestamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def task_gaps(task_instances: list[dict[str, Any]], downstream: dict[str, list[str]]) -> list[float]:
    """Seconds from each task's end to the start of each of its downstream tasks."""
    by_id = {ti["task_id"]: ti for ti in task_instances}
    gaps = []
    for upstream, children in downstream.items():
        for child in children:
            up, down = by_id.get(upstream), by_id.get(child)
            if up and down and up.get("end_date") and down.get("start_date"):
                gaps.append((_timestamp(down["start_date"]) - _timestamp(up["end_date"])).total_seconds())
    return gaps


def in_process(home: Path, landing: Path, run_date: str, tracking_uri: str) -> dict[str, Any]:
    """Worker: every stage of `airloop_flights_training` (deploy included) in this process, timed from here."""
    started = time.perf_counter()
    from airloop import pipeline
    from airloop.deploy.service import deploy_version
    from airloop.lineage import Lineage
    from airloop.settings import AirloopSettings

    home.mkdir(parents=True, exist_ok=True)
    if not (home / "landing").exists():
        (home / "landing").symlink_to(landing)
    settings = AirloopSettings(home=home, mlflow_tracking_uri=tracking_uri, deploy_target="none")
    lineage = Lineage(dag_id="bench_in_process", run_id=f"in_process__{run_date}")
    imported = time.perf_counter()
    flights = settings.load_pipelines().get("flights")
    decision = pipeline.run_in_process(
        settings, flights, pipeline.RunOptions(), dt.date.fromisoformat(run_date), lineage
    )
    deploy_version(settings, decision.model_name, "champion", lineage=lineage)
    return {"stages_s": time.perf_counter() - imported, "imports_s": imported - started, "decision": decision.decision}


def _settings(home: Path) -> Any:
    from airloop.settings import AirloopSettings

    # Every port on a free one, including services added to the stack later (e.g. the Evidently UI).
    ports: dict[str, Any] = {name: free_port() for name in AirloopSettings.model_fields if name.endswith("_port")}
    return AirloopSettings(home=home, deploy_target="none", admin_password=PASSWORD, **ports)


def airflow_runs(repeats: int) -> dict[str, Any]:
    """Start the embedded stack, warm it with one run, then time `repeats` runs against in-process ones."""
    from airloop.data.replay import fill_landing_zone
    from airloop.stack.airflow_api import AirflowClient
    from airloop.stack.embedded import EmbeddedStack

    with tempfile.TemporaryDirectory(prefix="airloop-bench-pipeline-") as tmp:
        settings = _settings(Path(tmp) / ".airloop")
        today = dt.datetime.now(dt.UTC).date()
        run_dates = [today - dt.timedelta(days=1 + i) for i in range(repeats)]
        warmup_date = today - dt.timedelta(days=1 + repeats)
        window = 30  # the config's training window; the landing zone covers every run's window
        fill_landing_zone(settings.state.landing / "flights", warmup_date - dt.timedelta(days=window), today)
        stack = EmbeddedStack(settings)
        started = time.perf_counter()
        try:
            stack.up(timeout=600)
            stack_up_s = time.perf_counter() - started
            with AirflowClient(settings.airflow_url, settings.admin_user, PASSWORD) as client:
                client.wait_for_dag(DAG_ID, timeout=300)
                tasks = client.request("GET", f"/api/v2/dags/{DAG_ID}/tasks")["tasks"]
                downstream = {t["task_id"]: t["downstream_task_ids"] for t in tasks}
                client.unpause(DAG_ID)
                warmup = _warm_up(client, settings, warmup_date)
                measured = []
                for run_date in run_dates:
                    measured.append(_one_pair(client, settings, Path(tmp), run_date, downstream))
                monitoring = monitoring_run(client, settings)
                processed = dag_processor_parse_times(client)
        finally:
            stack.down()
    airflow_s = statistics.median(m["airflow_s"] for m in measured)
    inprocess_s = statistics.median(m["inprocess_s"] for m in measured)
    gaps = [gap for m in measured for gap in m["gaps"]]
    return {
        "airflow_s": airflow_s,
        "inprocess_s": inprocess_s,
        "ratio": airflow_s / inprocess_s,
        "median_task_gap_s": statistics.median(gaps),
        "max_task_gap_s": max(gaps),
        "airflow_started_to_end_s": statistics.median(m["started_to_end_s"] for m in measured),
        "airflow_task_seconds": statistics.median(m["task_seconds"] for m in measured),
        "inprocess_stages_s": statistics.median(m["inprocess_stages_s"] for m in measured),
        "inprocess_imports_s": statistics.median(m["inprocess_imports_s"] for m in measured),
        **{
            f"airflow_task_s_{task}": statistics.median(m["per_task_s"].get(task, 0.0) for m in measured)
            for task in downstream
        },
        "warmup_run_s": warmup,
        "stack_up_s": stack_up_s,
        "runs": len(measured),
        **monitoring,
        **processed,
    }


def dag_processor_parse_times(client: Any) -> dict[str, float]:
    """Per DAG file, the seconds the running dag-processor last took to process it (Airflow's own
    `last_parse_duration`, shown on each DAG's page): a forked child of a process that has
    Airflow's models loaded, so it is the figure users see, beside the cold probe of `parse_times`."""
    dags = client.request("GET", "/api/v2/dags", params={"limit": 1000})["dags"]
    by_file: dict[str, float] = {}
    for dag in dags:
        if dag.get("last_parse_duration") is not None:
            stem = Path(dag["fileloc"]).stem
            by_file[stem] = max(by_file.get(stem, 0.0), dag["last_parse_duration"])
    return {f"dag_processor_parse_s_{stem}": seconds for stem, seconds in sorted(by_file.items())}


def monitoring_run(client: Any, settings: Any) -> dict[str, Any]:
    """The nightly monitoring run over a day of requests the champion answered; its seconds, task by task.

    The day's requests are logged as the serving process logs them (`InferenceLog`, one request
    per hour of landed flights, scored by the champion), into the data interval of the run that
    unpausing the DAG starts: the nightly run itself is what is timed.
    """
    import mlflow
    import pandas as pd

    from airloop.serving.inference_log import InferenceLog

    pipeline = settings.load_pipelines().get("flights")
    config = pipeline.config
    now = dt.datetime.now(dt.UTC)
    end = now.replace(hour=3, minute=0, second=0, microsecond=0)
    end = end if end <= now else end - dt.timedelta(days=1)  # the interval of the latest nightly run
    start = end - dt.timedelta(days=1)
    day = (now - dt.timedelta(days=1)).date()
    rows = pd.read_parquet(settings.state.landing / "flights" / f"date={day:%Y-%m-%d}")
    mlflow.set_tracking_uri(settings.tracking_uri)
    champion = mlflow.MlflowClient().get_model_version_by_alias(config.model_name, "champion")
    model = mlflow.sklearn.load_model(f"models:/{config.model_name}@champion")
    log = InferenceLog(settings.state.inference, model_name=config.model_name, model_version=champion.version)
    for hour, group in rows.groupby(rows["time_hour"].dt.hour):
        features = group[config.dataset.features]
        log.append(
            f"bench-{hour}",
            start + dt.timedelta(hours=int(hour)),
            features,
            model.predict(features),
            model.predict_proba(features)[:, -1],
        )
    log.close()
    client.unpause(MONITORING_DAG)
    deadline = time.monotonic() + 120
    while not (runs := client.request("GET", f"/api/v2/dags/{MONITORING_DAG}/dagRuns")["dag_runs"]):
        if time.monotonic() > deadline:
            raise BenchmarkError(f"unpausing {MONITORING_DAG} started no run within 120 s")
        time.sleep(1)
    run = client.follow(MONITORING_DAG, runs[0]["dag_run_id"], timeout=1800, poll=1.0)
    instances = client.task_instances(MONITORING_DAG, run["dag_run_id"])
    if run["state"] != "success":
        failed = [
            f"{ti['task_id']}:\n"
            + "\n".join(
                client.task_log(MONITORING_DAG, run["dag_run_id"], ti["task_id"], ti["try_number"]).splitlines()[-25:]
            )
            for ti in instances
            if ti["state"] == "failed"
        ]
        raise BenchmarkError(f"monitoring run {run['dag_run_id']} ended {run['state']}:\n" + "\n".join(failed))
    served = client.xcom(MONITORING_DAG, run["dag_run_id"], "monitor")["served_rows"]
    return {
        "monitoring_run_s": (_timestamp(run["end_date"]) - _timestamp(run["start_date"])).total_seconds(),
        "monitoring_queued_to_end_s": (_timestamp(run["end_date"]) - _timestamp(run["queued_at"])).total_seconds(),
        "monitoring_rows": served,
        "monitoring_logged_rows": len(rows),
        **{f"monitoring_task_s_{ti['task_id']}": ti["duration"] or 0.0 for ti in instances},
    }


def _warm_up(client: Any, settings: Any, run_date: dt.date) -> float:
    """One run before the measured ones, for what a stack does once (its first DAG run, the first
    registry writes); its seconds from queued to end."""
    run = _training_run(client, settings, run_date, reason="benchmark warm-up")
    return (_timestamp(run["end_date"]) - _timestamp(run["queued_at"])).total_seconds()


def _training_run(client: Any, settings: Any, run_date: dt.date, *, reason: str) -> dict[str, Any]:
    """Trigger the training DAG for `run_date` and follow it to a successful end."""
    logical = f"{run_date.isoformat()}T03:00:00+00:00"
    triggered = client.trigger(DAG_ID, logical_date=logical, conf={"reason": reason})
    run = client.follow(DAG_ID, triggered["dag_run_id"], timeout=3600, poll=2.0)
    if run["state"] != "success":
        raise BenchmarkError(f"run {run['dag_run_id']} ended {run['state']}; see {settings.home / 'logs'}")
    return run


def _one_pair(
    client: Any, settings: Any, tmp: Path, run_date: dt.date, downstream: dict[str, list[str]]
) -> dict[str, Any]:
    run = _training_run(client, settings, run_date, reason="benchmark")
    task_instances = client.task_instances(DAG_ID, run["dag_run_id"])
    started = time.perf_counter()
    worker = run_worker(
        "benchmarks.bench_pipeline",
        [
            "in-process",
            str(tmp / f"inprocess-{run_date}"),
            str(settings.state.landing),
            run_date.isoformat(),
            settings.tracking_uri,
        ],
        timeout=3600,
    )
    inprocess_s = time.perf_counter() - started
    return {
        "airflow_s": (_timestamp(run["end_date"]) - _timestamp(run["queued_at"])).total_seconds(),
        "started_to_end_s": (_timestamp(run["end_date"]) - _timestamp(run["start_date"])).total_seconds(),
        "task_seconds": sum(ti["duration"] or 0.0 for ti in task_instances),
        "per_task_s": {ti["task_id"]: ti["duration"] or 0.0 for ti in task_instances},
        "gaps": task_gaps(task_instances, downstream),
        "inprocess_s": inprocess_s,
        "inprocess_stages_s": worker["stages_s"],
        "inprocess_imports_s": worker["imports_s"],
    }


def run(size: str) -> dict[str, Any]:
    """Parse times at every size; the Airflow run against in-process only at full size."""
    parsed = parse_times(PARSE_REPEATS[size])
    figures: dict[str, Any] = {}
    if REPEATS[size]:
        figures.update(airflow_runs(REPEATS[size]))
    figures["max_parse_s"] = max(p["parse_s"] for p in parsed.values())
    for name, times in parsed.items():
        figures[f"parse_s_{name}"] = times["parse_s"]
        figures[f"interpreter_s_{name}"] = times["interpreter_s"]
    if not REPEATS[size]:
        figures["notes"] = "Smoke size: parse times only; Airflow is not started (it takes longer than smoke allows)."
    return figures


if __name__ == "__main__":
    if sys.argv[1] != "in-process":
        raise SystemExit("usage: python -m benchmarks.bench_pipeline in-process HOME LANDING RUN_DATE TRACKING_URI")
    report(in_process(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5]))

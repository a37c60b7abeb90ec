"""`airloop quarantine list | show | readmit`: the batches validation quarantined, and re-admitting one.

Each pipeline's readmit DAG (`airloop_<pipeline>_readmit`) re-admits through
:func:`readmit_and_resume` too (the UI's way).

`readmit` validates the window again (`airloop.validation.quarantine.readmit`); when it passes and
the batch names the Airflow run it blocked, that run's tasks are cleared from `ingest` on through
Airflow's REST API (as the UI's Clear would), so it reads the fixed data and goes on to train.
"""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airloop.config import PipelineConfig
    from airloop.pipelines import Pipeline
    from airloop.settings import AirloopSettings
    from airloop.validation.quarantine import Readmission

#: The training DAG's first task: clearing from it re-reads the window the batch came from.
INGEST_TASK = "ingest"


def run_quarantine(settings: AirloopSettings, pipeline: Pipeline, args: argparse.Namespace) -> int:
    from airloop.validation.quarantine import QuarantineError

    config = pipeline.config
    try:
        if args.action == "list":
            return _list(settings, pipeline)
        if args.action == "show":
            return _show(settings, pipeline, args.snapshot_id)
        return _readmit(settings, config, args)
    except QuarantineError as err:
        print(f"error: {err}")
        return 2


def _list(settings: AirloopSettings, pipeline: Pipeline) -> int:
    from airloop.health.summary import quarantined_batches

    batches = quarantined_batches(settings, pipeline)
    if not batches:
        print(f"no quarantined {pipeline.config.dataset.name} batches (pipeline {pipeline.name})")
    for batch in batches:
        failed = ", ".join(batch.failed) or "-"
        print(f"{batch.snapshot_id}  {batch.rows if batch.rows is not None else '?'} rows  failed: {failed}")
    return 0


def _show(settings: AirloopSettings, pipeline: Pipeline, snapshot_id: str) -> int:
    from airloop.health.summary import quarantine_report, quarantined_batches
    from airloop.validation.quarantine import QuarantineError, blocked_run, quarantine_dir, readmissions

    config = pipeline.config
    found = [b for b in quarantined_batches(settings, pipeline) if b.snapshot_id == snapshot_id]
    if not found:
        raise QuarantineError(
            f"no quarantined {config.dataset.name} batch {snapshot_id!r} "
            f"(see `airloop quarantine --pipeline {pipeline.name} list`)"
        )
    batch = found[0]
    blocked = blocked_run(quarantine_dir(settings.state.lake, config.dataset.name) / snapshot_id)
    report = quarantine_report(settings, config, snapshot_id)
    print(
        f"batch      {batch.snapshot_id}: {batch.window_start} to {batch.window_end} (end exclusive), {batch.rows} rows"
    )
    print(f"failed     {len(batch.failed)} of {batch.evaluated} expectations: {', '.join(batch.failed) or '-'}")
    print(f"report     {report or 'none'}")
    print(f"blocked    {f'{blocked.dag_id} run {blocked.run_id}' if blocked else 'no orchestrator run'}")
    for attempt in (a for a in readmissions(settings.state.lake, config.dataset.name) if a.snapshot_id == snapshot_id):
        print(f"attempt    {_attempt(attempt)}")
    return 0


def _readmit(settings: AirloopSettings, config: PipelineConfig, args: argparse.Namespace) -> int:
    import os

    from airloop.stack import mlflow_auth

    # The validation is logged to MLflow as the pipeline's tasks log it (as its admin, with login on).
    os.environ.update(mlflow_auth.client_environment(settings))
    by = args.by or getpass.getuser()
    resume = not args.no_resume
    attempt, lines = readmit_and_resume(settings, config, args.snapshot_id, by=by, why=args.why, resume=resume)
    print("\n".join(lines))
    return 0 if attempt.admitted else 1


def readmit_and_resume(
    settings: AirloopSettings, config: PipelineConfig, snapshot_id: str, *, by: str, why: str, resume: bool = True
) -> tuple[Readmission, list[str]]:
    """Validate a quarantined batch again; when it passes, clear the run it blocked from `ingest` on.

    The one way to re-admit, from the command line or the pipeline's readmit DAG; returns the
    attempt and what to tell the person who asked.
    """
    from airloop.validation.quarantine import readmit

    attempt = readmit(settings, config, snapshot_id, by=by, why=why)
    lines = [_attempt(attempt)]
    if not attempt.admitted:
        lines += [f"  - {failure}" for failure in attempt.failures]
        lines.append(f"still quarantined; the run it blocked stays (see `airloop quarantine show {snapshot_id}`)")
    elif attempt.blocked is None:
        lines.append("no Airflow run was blocked by it; the next training run reads it")
    elif not resume:
        lines.append(f"not resumed (--no-resume): clear {attempt.blocked.dag_id} run {attempt.blocked.run_id} to go on")
    else:
        lines.append(_resume(settings, attempt))
    return attempt, lines


def _resume(settings: AirloopSettings, attempt: Readmission) -> str:
    """Clear the blocked run from `ingest` on; if Airflow cannot be asked, say how to do it by hand."""
    import httpx

    from airloop.stack.airflow_api import AirflowApiError, AirflowClient
    from airloop.stack.embedded import EmbeddedStack

    assert attempt.blocked is not None
    by_hand = (
        f"re-admitted, but {attempt.blocked.dag_id} run {attempt.blocked.run_id} was not resumed ({{why}}): "
        f"clear it from {INGEST_TASK} on in the Airflow UI to go on"
    )
    creds = EmbeddedStack(settings).known_credentials()  # never makes a login up
    if creds is None:
        return by_hand.format(why="no Airflow admin login is set here (AIRLOOP_ADMIN_PASSWORD)")
    try:
        with AirflowClient(settings.airflow_url, creds.username, creds.password) as client:
            cleared = client.clear(
                attempt.blocked.dag_id,
                attempt.blocked.run_id,
                [INGEST_TASK],
                note=f"{attempt.snapshot_id} re-admitted by {attempt.by}: {attempt.why}",
            )
    except (httpx.HTTPError, AirflowApiError) as err:
        return by_hand.format(why=f"{settings.airflow_url}: {type(err).__name__}: {err}")
    tasks = ", ".join(sorted(t["task_id"] for t in cleared))
    return f"resumed {attempt.blocked.dag_id} run {attempt.blocked.run_id}: cleared {tasks}"


def _attempt(attempt: Readmission) -> str:
    verdict = "re-admitted" if attempt.admitted else f"failed again ({len(attempt.failures)} expectations)"
    return f"{attempt.at:%Y-%m-%d %H:%M} UTC {attempt.snapshot_id} {verdict} by {attempt.by}: {attempt.why}"

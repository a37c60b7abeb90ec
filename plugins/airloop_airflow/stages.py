"""What each training, deploy, reconcile and readmit task does: read the run's context, call the core.

A task finds its pipeline by its DAG's id (:func:`this_pipeline`), so the same code serves every
pipeline of the pipelines folder.

Light at import time (DAG files import it while they are parsed): the core and its heavy
libraries are imported inside each call, in the worker.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from airloop_airflow.notifiers import fail_with_reason, record_failure

if TYPE_CHECKING:
    from airloop.config import PipelineConfig
    from airloop.lineage import Lineage
    from airloop.pipeline import RunOptions
    from airloop.pipelines import Pipeline
    from airloop.registry.approval import ApprovalRequest
    from airloop.settings import AirloopSettings

Json = dict[str, Any]
log = logging.getLogger(__name__)

#: Where the Docker engine answers on its host (the Docker provider's default).
DOCKER_SOCKET = Path("/var/run/docker.sock")


@dataclass(frozen=True)
class CurrentRun:
    settings: AirloopSettings
    pipeline: Pipeline
    options: RunOptions
    config: PipelineConfig
    lineage: Lineage
    run_date: dt.date

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        from airloop.pipeline import data_window

        return data_window(self.config, self.options, self.run_date)


def start_task() -> None:
    """What every Airloop task does first: stop the libraries' known log floods, log MLflow's lines at
    their own level rather than as stderr's errors, say how it started.

    A warm start is the stack's doing (`airloop.stack.embedded.WARM_TASKS`): the task's process was forked from
    one that had imported pandas, scikit-learn, MLflow, GX and Evidently already.
    """
    import sys

    from airloop.quiet_logs import mlflow_logs_at_their_level, quiet_library_noise
    from airloop.stack.embedded import TASK_PRELOAD

    quiet_library_noise()  # before any stage imports skops, GX or MLflow: a task log a person can read
    preload = TASK_PRELOAD[0]
    if preload in sys.modules:
        log.info("started warm: the libraries were imported before this task's process was forked")
    else:
        log.info("started cold: this task imports its libraries itself (%s was not preloaded)", preload)
    mlflow_logs_at_their_level()  # Airflow logs a task's stderr as errors, where MLflow's INFO went


def this_pipeline(dag_id: str) -> tuple[AirloopSettings, Pipeline]:
    """The settings, and the pipeline the running DAG `dag_id` was built for."""
    from airloop.settings import load_settings

    settings = load_settings()
    return settings, settings.load_pipelines().by_dag(dag_id)


def current_run() -> CurrentRun:
    """The running task's settings, pipeline, Params, config and lineage; its date is the logical date."""
    from airloop.lineage import Lineage
    from airloop.pipeline import RunOptions, pipeline_config

    start_task()
    context = get_current_context()
    params = dict(context["params"])
    dag_run = context["dag_run"]
    # A run triggered with no logical date is dated by when it was asked to run, never "now".
    when = context.get("logical_date") or dag_run.run_after
    settings, pipeline = this_pipeline(dag_run.dag_id)
    options = RunOptions.from_params(params, pipeline.config)
    lineage = Lineage(dag_id=dag_run.dag_id, run_id=dag_run.run_id, reason=params.get("reason"))
    return CurrentRun(settings, pipeline, options, pipeline_config(pipeline, options), lineage, when.date())


def ingest() -> Json:
    from airloop import pipeline

    run = current_run()
    if run.options.dry_run:
        _dry_run(run)
    return pipeline.ingest(run.settings, run.config, *run.window).model_dump(mode="json")


def _dry_run(run: CurrentRun) -> NoReturn:
    """Log what the run would do and skip the rest of it: nothing is read into the lake, nothing moves."""
    from airloop.plan import plan_training

    try:
        plan = plan_training(
            run.settings, run.config, run.options, run.run_date, now=dt.datetime.now(dt.UTC), docker_api=docker_api()
        )
    except Exception as err:  # noqa: BLE001 - a dry run reports; it never fails the run or alerts
        log.warning("the plan could not be made (nothing was changed): %s: %s", type(err).__name__, err)
    else:
        for line in plan.lines():
            log.info("%s", line)
    log.info("dry run: the plan is above; every later task is skipped")
    raise AirflowSkipException("dry run")


def validate(snapshot: Json) -> Json:
    from airloop import pipeline
    from airloop.data.snapshot import SnapshotManifest
    from airloop.validation import DataValidationError

    run = current_run()
    try:
        summary = pipeline.validate(run.settings, run.config, SnapshotManifest.model_validate(snapshot), run.lineage)
    except DataValidationError as err:
        # Bad data stays bad on a retry: fail now, with the report, and run nothing downstream.
        batch = err.summary.snapshot
        fail_with_reason(f"{batch.dataset} batch {batch.snapshot_id} quarantined", err)
    return summary.model_dump(mode="json")


def train(validated: Json) -> Json:
    from airloop import pipeline
    from airloop.training.model import ModelConfigError
    from airloop.validation import ValidationSummary

    run = current_run()
    try:
        trained = pipeline.train(run.settings, run.config, ValidationSummary.model_validate(validated), run.lineage)
    except ModelConfigError as err:  # the config's model cannot train: a retry would fail the same way
        fail_with_reason(f"{run.config.model_name}: training.model in {run.pipeline.path} cannot train", err)
    return trained.model_dump(mode="json")


def register(trained: Json) -> Json:
    from airloop import pipeline
    from airloop.training.train import TrainResult

    run = current_run()
    candidate = pipeline.register(run.settings, run.config, TrainResult.model_validate(trained), run.lineage)
    return candidate.model_dump(mode="json")


def evaluate(candidate: Json) -> Json:
    """Should the challenger replace the champion? A decision only: nothing moves here."""
    from airloop.registry.promotion import CandidateVersion, evaluate_challenger

    run = current_run()
    evaluation = evaluate_challenger(
        run.config,
        CandidateVersion.model_validate(candidate),
        tracking_uri=run.settings.tracking_uri,
        force=run.options.force_promote,
    )
    return evaluation.model_dump(mode="json")


def approval_request(context: Any) -> ApprovalRequest | None:
    """What the `approve` step asks a person, or None when this run's evaluation needs no approval."""
    from airloop.registry.approval import approval_request as request_for
    from airloop.registry.approval import why_not_asked
    from airloop.registry.promotion import CandidateVersion, Evaluation
    from airloop.registry.versions import ModelRegistry

    run = current_run()
    evaluation = Evaluation.model_validate(context["ti"].xcom_pull(task_ids="evaluate"))
    if why := why_not_asked(run.config, evaluation):
        log.info("no approval asked: %s", why)
        return None
    candidate = CandidateVersion.model_validate(context["ti"].xcom_pull(task_ids="register"))
    registry = ModelRegistry(evaluation.model_name, tracking_uri=run.settings.tracking_uri)
    challenger_run = _run_url(run.settings, registry, candidate.train.mlflow_run_id)
    links: dict[str, str | None] = {f"challenger v{evaluation.version}: MLflow run": challenger_run}
    if evaluation.champion_version:
        champion_run = registry.client.get_model_version(evaluation.model_name, evaluation.champion_version).run_id
        links[f"champion v{evaluation.champion_version}: MLflow run"] = _run_url(run.settings, registry, champion_run)
    degradation = (context["dag_run"].conf or {}).get("degradation") or {}
    if degradation.get("report"):
        links["the degraded window's report"] = str(degradation["report"])
    pages = {name: url for name, url in links.items() if url}  # a store without a UI has no pages to link
    request = request_for(run.config, evaluation, candidate, run_reason=run.lineage.reason, links=pages)
    log.info("asking for approval (Required Actions in the Airflow UI, or the REST API): %s", request.subject)
    return request


def _run_url(settings: AirloopSettings, registry: Any, run_id: str) -> str | None:
    return settings.mlflow_run_url(registry.client.get_run(run_id).info.experiment_id, run_id)


def record_approval(context: Any, chosen: str, by: str | None, at: dt.datetime) -> None:
    """Tag the reviewer's answer on the version; a rejection (or no answer in time) is its promotion decision."""
    from airloop.registry.approval import APPROVE, ApprovalAnswer, record_answer
    from airloop.registry.promotion import Evaluation
    from airloop.registry.versions import ModelRegistry

    run = current_run()
    evaluation = Evaluation.model_validate(context["ti"].xcom_pull(task_ids="evaluate"))
    answer = ApprovalAnswer(approved=chosen == APPROVE, by=by, at=at)
    record_answer(ModelRegistry(evaluation.model_name, tracking_uri=run.settings.tracking_uri), evaluation, answer)
    log.info("model %s version %s %s by %s", evaluation.model_name, evaluation.version, answer.verdict, by or "nobody")


def readmit() -> Json:
    """The readmit DAG: validate a quarantined batch again and, when it passes, resume the run it blocked."""
    from airloop.quarantine_cli import readmit_and_resume
    from airloop.validation.quarantine import QuarantineError

    start_task()
    context = get_current_context()
    params, dag_run = context["params"], context["dag_run"]
    settings, pipeline = this_pipeline(dag_run.dag_id)
    who = dag_run.triggering_user_name or "airflow"
    try:
        attempt, lines = readmit_and_resume(settings, pipeline.config, params["snapshot_id"], by=who, why=params["why"])
    except QuarantineError as err:
        fail_with_reason(f"batch {params['snapshot_id']} not re-admitted", err)
    for line in lines:
        log.info("%s", line)
    if not attempt.admitted:
        fail_with_reason(f"batch {attempt.snapshot_id} failed validation again", QuarantineError("\n".join(lines)))
    return attempt.model_dump(mode="json")


def docker_api() -> Any:
    """The Docker engine through the Docker provider's hook, or None when none answers.

    A host where no engine listens on the socket (none installed, or a stopped engine's socket
    file left behind) is asked nothing: the hook would log an error for what is a normal case
    there (the target falls back to local), in every deploy and monitoring task.
    """
    from airflow.providers.docker.hooks.docker import DockerHook

    if not _listening(DOCKER_SOCKET):
        return None
    try:
        return DockerHook(docker_conn_id=None, base_url=f"unix://{DOCKER_SOCKET}").api_client
    except Exception:  # noqa: BLE001 - no engine is a normal case: the target falls back to local
        return None


def _listening(unix_socket: Path) -> bool:
    """Whether something accepts connections on `unix_socket`."""
    import socket

    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(5)
        try:
            probe.connect(str(unix_socket))
        except OSError:
            return False
    return True


def kubernetes_api() -> Any:
    """The cluster through the cncf.kubernetes provider's hook (its `kubernetes_default` connection)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook().api_client


def deploy_and_promote(evaluation: Json) -> Json:
    """A winner serves and becomes champion once it proved servable; else the champion keeps serving."""
    from airloop.deploy import DeploymentError, NotServableError
    from airloop.deploy.service import deploy_and_promote as serve_and_promote
    from airloop.registry.promotion import Evaluation

    run = current_run()
    evaluated = Evaluation.model_validate(evaluation)
    try:
        result = serve_and_promote(
            run.settings,
            run.config,
            evaluated,
            docker_api=docker_api(),
            kubernetes_api=kubernetes_api,
            lineage=run.lineage,
        )
    except NotServableError as err:
        # Alias and traffic stay on the old version; the same version would fail its checks again.
        fail_with_reason(f"{evaluated.model_name} version {err.version or evaluated.version} is not servable", err)
    except DeploymentError as err:
        # Alias and traffic stay on the old version. Retried once (a slow start on a busy host), then alerted.
        record_failure(f"deploy of {evaluated.model_name} version {evaluated.version} failed", err)
        raise
    return result.model_dump(mode="json")


def deploy_chosen() -> Json:
    """The deploy DAG: deploy the version and target chosen in the Params."""
    from airloop.deploy import DeploymentError
    from airloop.deploy.service import deploy_version

    settings, model_name, lineage = _deploy_context()
    params = get_current_context()["params"]
    model_name = params.get("model_name") or model_name
    target = None if params["target"] == "auto" else params["target"]
    try:
        deployment = deploy_version(
            settings,
            model_name,
            str(params["version"]),
            target=target,
            docker_api=docker_api(),
            kubernetes_api=kubernetes_api,
            lineage=lineage,
            make_champion=params["make_champion"],
        )
    except DeploymentError as err:
        # Alias and traffic stay on the old version; retrying the same broken version would not help.
        fail_with_reason(f"deploy of {model_name} version {params['version']} failed", err)
    return deployment.model_dump(mode="json")


def reconcile() -> Json:
    """The reconcile DAG: the endpoint serves the version `champion` names, or the run says why not.

    A champion that fails the gate fails the task (and alerts) once; one already tagged not
    servable is reported in the log on each run, and what serves keeps serving.
    """
    from airloop.deploy.reconcile import reconcile_serving

    settings, model_name, lineage = _deploy_context()
    found = reconcile_serving(
        settings, model_name, docker_api=docker_api(), kubernetes_api=kubernetes_api, lineage=lineage
    )
    if found.outcome == "not_servable" and found.attempted:
        fail_with_reason(f"{model_name} champion version {found.champion} cannot serve", RuntimeError(found.message))
    return found.model_dump(mode="json")


def check_champion_serves(settings: AirloopSettings, model_name: str) -> None:
    """Log whether the endpoint serves `champion` (a check only: the reconcile DAG repairs)."""
    from airloop.deploy.reconcile import reconcile_serving

    try:
        reconcile_serving(settings, model_name, docker_api=docker_api(), kubernetes_api=kubernetes_api, repair=False)
    except Exception:
        log.warning("could not compare what serves %s with its champion", model_name, exc_info=True)


def _deploy_context() -> tuple[AirloopSettings, str, Lineage]:
    from airloop.lineage import Lineage

    start_task()
    context = get_current_context()
    dag_run = context["dag_run"]
    settings, pipeline = this_pipeline(dag_run.dag_id)
    lineage = Lineage(dag_id=dag_run.dag_id, run_id=dag_run.run_id, reason=context["params"].get("reason"))
    return settings, pipeline.config.model_name, lineage

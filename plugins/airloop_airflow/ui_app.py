"""The Airloop page's FastAPI app, served by Airflow's API server under `/airloop`.

Airflow mounts a plugin's app as it is: it authenticates nothing. Every route here resolves the
caller with Airflow's own `get_user` (the `Authorization: Bearer` JWT, else the UI's `_token`
cookie: what the UI's iframe sends) and asks Airflow's auth manager whether that user may read
the pipeline's DAGs. No token: 401; a token Airflow refuses, or no access: 403.

Imported only when the first request arrives (see `airloop_airflow.ui`); the data comes from
`airloop.health`, and MLflow is imported there, in the API server, on that first request.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlparse

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.configuration import conf
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from airloop.settings import AirloopSettings

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
    from sqlalchemy.orm import Session

    from airloop.health.page import Links
    from airloop.health.summary import AirflowRun, PipelineHealth
    from airloop.pipelines import Pipeline

ReportKind = Literal["drift", "performance"]


class AirflowRunHistory:
    """`airloop.health.summary.RunHistory` over Airflow's metadata database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, dag_ids: Sequence[str], run_id: str) -> AirflowRun | None:
        query = select(DagRun).where(DagRun.run_id == run_id, DagRun.dag_id.in_(list(dag_ids))).limit(1)
        run = self.session.scalars(query).first()
        return _run(run) if run is not None else None

    def recent(self, dag_id: str, limit: int) -> list[AirflowRun]:
        query = select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(limit)
        return [_run(run) for run in self.session.scalars(query)]


def _run(run: Any) -> AirflowRun:
    from airloop.health.summary import AirflowRun

    return AirflowRun(
        dag_id=run.dag_id,
        run_id=run.run_id,
        state=str(run.state) if run.state is not None else None,
        run_type=str(run.run_type) if run.run_type is not None else None,
        logical_date=run.logical_date,
        start_date=run.start_date,
        end_date=run.end_date,
    )


def may_read(user: BaseUser, pipeline: Pipeline) -> bool:
    """Whether Airflow's auth manager lets `user` read every DAG of the pipeline."""
    manager = get_auth_manager()
    return all(
        manager.is_authorized_dag(
            method="GET", details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)), user=user
        )
        for dag_id in pipeline.dag_ids
    )


def _settings() -> AirloopSettings:
    from airloop.settings import load_settings

    return load_settings()


SettingsDep = Annotated[AirloopSettings, Depends(_settings)]


def _readable(user: BaseUser, settings: AirloopSettings) -> list[Pipeline]:
    found = list(settings.load_pipelines())
    allowed = [p for p in found if may_read(user, p)]
    if found and not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "You may not read the DAGs of any Airloop pipeline")
    return allowed


def _pipeline(user: BaseUser, settings: AirloopSettings, name: str) -> Pipeline:
    pipeline = next((p for p in settings.load_pipelines() if p.name == name), None)
    if pipeline is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No Airloop pipeline named {name!r}")
    if not may_read(user, pipeline):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"You may not read the DAGs of pipeline {name!r}")
    return pipeline


def _health(settings: AirloopSettings, pipeline: Pipeline, session: Session) -> PipelineHealth:
    from airloop.health.summary import pipeline_health

    return pipeline_health(settings, pipeline, runs=AirflowRunHistory(session))


def _links(request: Request) -> Links:
    from airloop.health.page import Links

    airflow = urlparse(conf.get("api", "base_url", fallback="/") or "/").path.rstrip("/")
    return Links(airflow=airflow, app=str(request.scope.get("root_path") or "/airloop").rstrip("/"))


def create_app() -> FastAPI:
    """The app: the page, the per-DAG page, the JSON summary and the saved reports."""
    app = FastAPI(title="Airloop", description="Model health of Airloop's pipelines", docs_url=None, redoc_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def _refusal(request: Request, error: StarletteHTTPException) -> Response:
        """Refusals of a page are pages (with the way to log in); the JSON routes answer JSON."""
        root, path = str(request.scope.get("root_path", "")), request.url.path
        if (path[len(root) :] if path.startswith(root) else path).startswith("/api/"):
            return await http_exception_handler(request, error)
        from airloop.health.page import render_message

        link = None
        if error.status_code == status.HTTP_401_UNAUTHORIZED:
            link = ("Log in to Airflow", get_auth_manager().get_url_login(next_url=str(request.url)))
        return HTMLResponse(render_message("Airloop", str(error.detail), link=link), status_code=error.status_code)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, user: GetUserDep, settings: SettingsDep, session: SessionDep) -> HTMLResponse:
        from airloop.health.page import render_page

        healths = [_health(settings, p, session) for p in _readable(user, settings)]
        return HTMLResponse(render_page(healths, links=_links(request)))

    @app.get("/dags/{dag_id}", response_class=HTMLResponse)
    def dag_view(
        request: Request, dag_id: str, user: GetUserDep, settings: SettingsDep, session: SessionDep
    ) -> HTMLResponse:
        from airloop.health.page import render_message, render_page

        pipeline = settings.load_pipelines().of_dag(dag_id)
        if pipeline is None:
            message = f"{dag_id} is not a DAG of an Airloop pipeline: it has no model health to show."
            return HTMLResponse(render_message("Not an Airloop DAG", message))
        pipeline = _pipeline(user, settings, pipeline.name)
        page = render_page(
            [_health(settings, pipeline, session)],
            links=_links(request),
            title=f"Airloop · {dag_id}",
            context=f"{dag_id} is the {_stage(pipeline, dag_id)} DAG of pipeline {pipeline.name}.",
        )
        return HTMLResponse(page)

    @app.get("/api/pipelines")
    def health_all(user: GetUserDep, settings: SettingsDep, session: SessionDep) -> JSONResponse:
        healths = [_health(settings, p, session) for p in _readable(user, settings)]
        return JSONResponse([h.model_dump(mode="json") for h in healths])

    @app.get("/api/pipelines/{name}")
    def health_one(name: str, user: GetUserDep, settings: SettingsDep, session: SessionDep) -> JSONResponse:
        health = _health(settings, _pipeline(user, settings, name), session)
        return JSONResponse(health.model_dump(mode="json"))

    @app.get("/pipelines/{name}/windows/{window_id}/{kind}")
    def window_report(name: str, window_id: str, kind: ReportKind, user: GetUserDep, settings: SettingsDep) -> Response:
        from airloop.health.summary import window_report

        pipeline = _pipeline(user, settings, name)
        return _file(window_report(settings, pipeline.config, window_id, kind), f"no {kind} report of {window_id}")

    @app.get("/pipelines/{name}/quarantine/{snapshot_id}")
    def quarantine_report(name: str, snapshot_id: str, user: GetUserDep, settings: SettingsDep) -> Response:
        from airloop.health.summary import quarantine_report

        pipeline = _pipeline(user, settings, name)
        report = quarantine_report(settings, pipeline.config, snapshot_id)
        return _file(report, f"no quarantined batch {snapshot_id}")

    return app


def _stage(pipeline: Pipeline, dag_id: str) -> str:
    return next(stage for stage, dag in pipeline.dags.items() if dag == dag_id)


def _file(path: Path | None, missing: str) -> Response:
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing)
    return FileResponse(path, media_type="text/html")

"""The serving app: MLflow's scoring protocol plus health, version and Prometheus metrics.

`POST /invocations` answers `{"predictions": [...]}` like `mlflow models serve`; bad input gets
a 4xx that names the problem and never takes the server down. `GET /openapi.json` describes it
for the model served (`airloop.serving.openapi`). `GET /health` is ready only once
the model is loaded and a warm-up prediction on its input example has passed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airloop.serving import CHECK_REQUEST_PREFIX, SHADOW_LOG_DIR, SHADOW_SLOT_DIR
from airloop.serving.batching import MicroBatcher
from airloop.serving.inference_log import InferenceLog
from airloop.serving.model import ServingModel, load_model_dir
from airloop.serving.openapi import openapi_document
from airloop.serving.payload import PayloadError, parse_request
from airloop.serving.shadow import ShadowScorer

log = logging.getLogger(__name__)

#: Past this many bytes an oversized body is no longer read to the end before answering 413.
DRAIN_LIMIT = 64 * 1024 * 1024


class ServingSettings(BaseSettings):
    """Serving configuration from `AIRLOOP_SERVING_*` variables."""

    model_config = SettingsConfigDict(env_prefix="AIRLOOP_SERVING_", extra="ignore")

    model_dir: Path = Field(description="MLflow model directory to serve (see `fetch_model`).")
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    inference_log_dir: Path | None = Field(default=None, description="Where predictions are logged; none: off.")
    token: str | None = Field(default=None, description="If set, /invocations needs `Authorization: Bearer`.")
    image: str | None = Field(default=None, description="The image this runs in, for /version.")
    shadow_model_dir: Path | None = Field(
        default=None,
        description="A folder watched for a shadow challenger (an MLflow model directory, put there by a rename): "
        "while one is there it scores a copy of each request off the request path (see airloop.serving.shadow). "
        "Default: <inference_log_dir>/shadow-slot/<model name>.",
    )
    shadow_log_dir: Path | None = Field(
        default=None, description="The shadow's inference log (same request ids). Default: <inference_log_dir>/shadow."
    )
    shadow_poll_seconds: float = Field(
        default=10, gt=0, description="How often the shadow folder is looked at (first after one interval)."
    )
    shadow: bool = Field(
        default=True, description="Serve a shadow challenger when one is in the slot (false: never; memory-bound pods)."
    )
    replay_clock: bool = Field(
        default=False,
        description="Replays and backtests: log each request at the time in its `X-Airloop-Event-Time` "
        "header (ISO 8601) instead of the wall clock. Off in production.",
    )


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "airloop_serving_requests", "Scoring requests by HTTP status.", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "airloop_serving_request_seconds",
            "Scoring latency by HTTP status.",
            ["status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.rows = Counter("airloop_serving_predictions", "Rows predicted.", registry=self.registry)

    def observe(self, status: int, started: float) -> None:
        self.requests.labels(str(status)).inc()
        self.latency.labels(str(status)).observe(time.perf_counter() - started)


class ServingState:
    """What the app knows: the model once loaded, or why it is not ready."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.model: ServingModel | None = None
        self.problem: str | None = "loading"
        self.inference_log: InferenceLog | None = None
        self.shadow: ShadowScorer | None = None
        self.metrics = _Metrics()
        self._batcher: MicroBatcher | None = None

    def _shadow_slot(self, model: ServingModel) -> ShadowScorer | None:
        """Where a shadow challenger of this model is looked for and logged: beside the inference log."""
        logs = self.settings.inference_log_dir
        if not self.settings.shadow:
            return None
        slot = self.settings.shadow_model_dir or (logs / SHADOW_SLOT_DIR / model.info.name if logs else None)
        shadow_log = self.settings.shadow_log_dir or (logs / SHADOW_LOG_DIR if logs else None)
        return ShadowScorer(slot, shadow_log) if slot and shadow_log else None

    def record(self, model: ServingModel, request_id: str, at: dt.datetime, frame: Any, *, answer: Any) -> None:
        """Log an answered request, and hand a copy to the shadow; a deployment check is neither."""
        if request_id.startswith(CHECK_REQUEST_PREFIX):
            return
        if self.inference_log is not None:
            labels, proba = answer
            self.inference_log.append(request_id, at, frame, labels, model.score_of(labels, proba))
        if self.shadow is not None:
            try:
                self.shadow.submit(request_id, at, frame)
            except Exception:  # the champion's answer never depends on its shadow
                log.exception("request %s: no copy for the shadow", request_id)

    def batcher(self, model: ServingModel) -> MicroBatcher:
        """The batcher in front of the loaded model (made on first use, inside the event loop)."""
        if self._batcher is None:
            self._batcher = MicroBatcher(model.predict)
        return self._batcher

    def load(self) -> None:
        """Load the model and predict its input example; record any failure as the problem."""
        try:
            model = load_model_dir(self.settings.model_dir, image=self.settings.image)
            if model.example is None:
                raise RuntimeError("the model has no input example to warm up with")
            labels, _ = model.predict(model.example)
            if len(labels) != len(model.example):
                raise RuntimeError("warm-up prediction returned the wrong number of rows")
        except Exception as err:
            self.problem = f"model not ready: {type(err).__name__}: {err}"
            log.exception("the model at %s cannot serve", self.settings.model_dir)
            return
        if self.settings.inference_log_dir:
            inference_log = InferenceLog(
                self.settings.inference_log_dir, model_name=model.info.name, model_version=model.info.version
            )
            try:
                inference_log.check_writable(dt.datetime.now(dt.UTC))
            except OSError as err:
                self.problem = f"inference log not writable: {err}"
                log.error("%s", self.problem)
                return
            self.inference_log = inference_log
        self.shadow = self._shadow_slot(model)
        self.model = model
        self.problem = None
        log.info("serving %s version %s (%d input columns)", model.info.name, model.info.version, len(model.columns))


def _event_time(request: Request) -> dt.datetime:
    """The replayed time a request says it was made at (replay clock only)."""
    value = request.headers.get("x-airloop-event-time")
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError as err:
        raise PayloadError(400, f"X-Airloop-Event-Time {value!r} is not an ISO 8601 time") from err
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str, request_id: str) -> Response:
    code = {
        400: "BAD_REQUEST",
        401: "UNAUTHENTICATED",
        413: "REQUEST_TOO_LARGE",
        415: "UNSUPPORTED_MEDIA_TYPE",
        422: "INVALID_PARAMETER_VALUE",
        503: "SERVICE_UNAVAILABLE",
    }.get(status, "INTERNAL_ERROR")
    return _json({"error_code": code, "message": message}, status, {"X-Request-ID": request_id})


def _lifespan(state: ServingState) -> Any:
    """Load the model at startup (and watch the shadow folder, if there is one); close the logs at the end."""

    async def watch_shadow(shadow: ShadowScorer) -> None:
        # The first look waits an interval: a new endpoint's health and latency checks run without it.
        while True:
            await asyncio.sleep(state.settings.shadow_poll_seconds)
            await run_in_threadpool(shadow.refresh)  # never raises

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(state.load)
        watcher = asyncio.create_task(watch_shadow(state.shadow)) if state.shadow is not None else None
        yield
        if watcher is not None:
            watcher.cancel()
        if state.shadow is not None:
            await run_in_threadpool(state.shadow.close)
        if state.inference_log is not None:
            state.inference_log.close()

    return lifespan


def create_app(settings: ServingSettings) -> Starlette:
    """The ASGI app for one model; the model loads at startup."""
    state = ServingState(settings)

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        try:
            response = await _score(request, request_id)
        except PayloadError as err:
            response = _error(err.status, err.message, request_id)
        except Exception as err:
            log.exception("request %s failed", request_id)
            response = _error(500, f"internal error: {type(err).__name__}", request_id)
        state.metrics.observe(response.status_code, started)
        return response

    async def _score(request: Request, request_id: str) -> Response:
        if settings.token and request.headers.get("authorization") != f"Bearer {settings.token}":
            raise PayloadError(401, "missing or wrong bearer token")
        if state.model is None:
            raise PayloadError(503, state.problem or "model not loaded")
        media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        body = bytearray()
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= settings.max_body_bytes:
                body.extend(chunk)
            elif size > DRAIN_LIMIT:
                break
        if size > settings.max_body_bytes:
            # Read (and drop) the rest first, so the client gets this answer instead of a reset.
            raise PayloadError(413, f"body of {size}+ bytes is over the limit of {settings.max_body_bytes} bytes")
        logged_at = _event_time(request) if settings.replay_clock else dt.datetime.now(dt.UTC)
        model = state.model
        asked = parse_request(
            bytes(body),
            model.columns,
            model.required,
            media,
            default_method=model.predict_method,
            methods=model.predict_methods,
        )
        labels, proba = await state.batcher(model).predict(asked.frame)
        state.record(model, request_id, logged_at, asked.frame, answer=(labels, proba))
        state.metrics.rows.inc(len(asked.frame))
        predictions = proba if asked.predict_method == "predict_proba" and proba is not None else labels
        return _json({"predictions": predictions.tolist()}, headers={"X-Request-ID": request_id})

    async def ping(_: Request) -> Response:
        return Response("\n", status_code=200 if state.model else 503, media_type="application/json")

    async def health(_: Request) -> Response:
        if state.model is None:
            return _json({"status": "unavailable", "reason": state.problem}, 503)
        return _json({"status": "ok", "model": state.model.info.as_dict()})

    async def version(_: Request) -> Response:
        if state.model is None:
            return _json({"status": "unavailable", "reason": state.problem}, 503)
        body: dict[str, Any] = state.model.info.as_dict()
        if state.shadow is not None:
            body["shadow"] = state.shadow.state()
        return _json(body)

    async def openapi(_: Request) -> Response:
        if state.model is None:
            return _json({"status": "unavailable", "reason": state.problem}, 503)
        return _json(openapi_document(state.model, token=bool(settings.token)))

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/ping", ping, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=_lifespan(state),
    )
    app.state.serving = state
    return app

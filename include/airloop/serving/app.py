"""The serving app: MLflow's scoring protocol plus health, version and Prometheus metrics.

`POST /invocations` answers `{"predictions": [...]}` like `mlflow models serve`; bad input gets
a 4xx that names the problem and never takes the server down. `GET /openapi.json` describes it
for the model served (`airloop.serving.openapi`). `GET /health` is ready only once
the model is loaded and a warm-up prediction on its input example has passed. With `follow` set,
the server serves the version a registry alias names and swaps in each new one behind the same
warm-up, keeping the one serving when it fails (`airloop.serving.follow`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airloop.serving import CHECK_REQUEST_PREFIX, SHADOW_LOG_DIR, SHADOW_SLOT_DIR
from airloop.serving.batching import MicroBatcher
from airloop.serving.follow import AliasFollower, AliasRef
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

    model_config = SettingsConfigDict(env_prefix="AIRLOOP_SERVING_", extra="ignore", populate_by_name=True)

    model_dir: Path = Field(
        description="MLflow model directory to serve (see `fetch_model`); with `follow`, where the versions "
        "the alias names are downloaded."
    )
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
    follow: str | None = Field(
        default=None,
        description="A registry alias to serve, e.g. models:/airloop-flights-delay@champion: each version it "
        "names is downloaded under model_dir and swapped in once it passes the warm-up; one that fails is "
        "rejected and the serving one keeps serving (see airloop.serving.follow). Default: serve model_dir as it is.",
    )
    follow_poll_seconds: float = Field(default=30, gt=0, description="How often the followed alias is read.")
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AIRLOOP_SERVING_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="The MLflow registry the followed alias is read from (default: MLFLOW_TRACKING_URI).",
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


@dataclass
class Served:
    """The model taking traffic, with its own inference log and batcher (swapped together)."""

    model: ServingModel
    log: InferenceLog | None
    batcher: MicroBatcher


def _retire(served: Served | None) -> None:
    # A request the old model is still answering appends after this: the log reopens its file.
    if served is not None and served.log is not None:
        served.log.close()


class ServingState:
    """What the app knows: the model serving (once one is loaded), or why none is."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.served: Served | None = None
        self.problem: str | None = "loading"
        self.shadow: ShadowScorer | None = None
        self.metrics = _Metrics()
        self.in_flight = 0  # scoring requests being answered now
        self._heard: dict[Any, float] = {}  # each connection's last scoring request (monotonic seconds)
        self._pruned = 0.0
        self.follower = (
            AliasFollower(AliasRef.parse(settings.follow), settings.model_dir, tracking_uri=settings.tracking_uri)
            if settings.follow
            else None
        )

    @property
    def model(self) -> ServingModel | None:
        return self.served.model if self.served else None

    def _shadow_slot(self, model: ServingModel) -> ShadowScorer | None:
        """Where a shadow challenger of this model is looked for and logged: beside the inference log."""
        logs = self.settings.inference_log_dir
        if not self.settings.shadow:
            return None
        slot = self.settings.shadow_model_dir or (logs / SHADOW_SLOT_DIR / model.info.name if logs else None)
        shadow_log = self.settings.shadow_log_dir or (logs / SHADOW_LOG_DIR if logs else None)
        return ShadowScorer(slot, shadow_log) if slot and shadow_log else None

    def alone(self, client: Any, now: float) -> bool:
        """Whether this request's connection is the only one heard from in the last second and no
        other request is being answered: then nothing can arrive to share its prediction."""
        self._heard[client] = now
        if now - self._pruned > 0.1:
            self._heard = {c: at for c, at in self._heard.items() if now - at < 1.0}
            self._pruned = now
        return self.in_flight == 1 and len(self._heard) == 1

    def record(
        self, served: Served, request_id: str, at: dt.datetime, frame: Any, *, answer: Any, sent: bytes | None = None
    ) -> None:
        """Log an answered request (`sent`: its strict JSON body), and hand a copy to the shadow; a
        deployment check is neither."""
        if request_id.startswith(CHECK_REQUEST_PREFIX):
            return
        if served.log is not None:
            labels, proba = answer
            served.log.append(request_id, at, frame, labels, served.model.score_of(labels, proba), sent=sent)
        if self.shadow is not None:
            try:
                self.shadow.submit(request_id, at, frame)
            except Exception:  # the champion's answer never depends on its shadow
                log.exception("request %s: no copy for the shadow", request_id)

    def load(self) -> None:
        """Load the model and predict its input example; record any failure as the problem."""
        if self.follower is not None:
            self.follow()
            return
        try:
            model = load_model_dir(self.settings.model_dir, image=self.settings.image)
            model.warm_up()
        except Exception as err:
            self.problem = f"model not ready: {type(err).__name__}: {err}"
            log.exception("the model at %s cannot serve", self.settings.model_dir)
            return
        self._serve(model)

    def follow(self) -> None:
        """Serve the version the followed alias names, if it is new and passes its warm-up. Never raises."""
        follower = self.follower
        assert follower is not None
        serving = self.model.info.version if self.model else None
        try:
            version = follower.named_version()
            if version == serving or version in follower.rejected:
                return
            path = follower.fetch(version)
        except Exception as err:  # noqa: BLE001 - no alias yet, or no registry: look again next poll
            if serving is None:
                problem = f"waiting for {follower.ref}: {type(err).__name__}: {err}"
                if problem != self.problem:  # said once, not at every poll
                    log.warning("%s (looking every %g s)", problem, self.settings.follow_poll_seconds)
                self.problem = problem
            else:
                log.warning(
                    "cannot read %s (%s: %s); still serving version %s", follower.ref, type(err).__name__, err, serving
                )
            return
        try:
            model = load_model_dir(path, image=self.settings.image)
            model.warm_up()
        except Exception as err:  # noqa: BLE001 - a version that cannot serve never takes the traffic
            follower.rejected[version] = f"{type(err).__name__}: {err}"
            follower.remove(version)
            kept = f"version {serving} keeps serving" if serving else "nothing serves"
            log.error("%s named version %s, which cannot serve (%s); %s", follower.ref, version, err, kept)
            if serving is None:
                self.problem = f"model not ready: {follower.ref} is version {version}: {type(err).__name__}: {err}"
            return
        if self._serve(model):
            follower.prune({version, serving} if serving else {version})

    def _serve(self, model: ServingModel) -> bool:
        """Put a warmed-up model in front of the traffic, with its own inference log.

        False if that log cannot be written (then the one serving, if any, keeps serving)."""
        inference_log = None
        if self.settings.inference_log_dir:
            inference_log = InferenceLog(
                self.settings.inference_log_dir, model_name=model.info.name, model_version=model.info.version
            )
            try:
                inference_log.check_writable(dt.datetime.now(dt.UTC))
            except OSError as err:
                message = f"inference log not writable: {err}"
                log.error("%s", message)
                if self.served is None:
                    self.problem = message
                return False
        if self.shadow is None:
            self.shadow = self._shadow_slot(model)
        previous, self.served = self.served, Served(model, inference_log, MicroBatcher(model.predict))
        self.problem = None
        _retire(previous)
        # What is loaded now lives as long as the model: out of the collector's sight, no full
        # collection walks it during a request (at concurrency 1 those were p99 stalls of ~68 ms here).
        # Unfrozen first, so what a replaced model held can still be collected once, not kept forever.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        replaced = f" (was version {previous.model.info.version})" if previous else ""
        log.info(
            "serving %s version %s%s (%d input columns)",
            model.info.name,
            model.info.version,
            replaced,
            len(model.columns),
        )
        return True

    def describe(self, model: ServingModel) -> dict[str, Any]:
        """`GET /version`: the model serving, and the shadow and followed alias if there are."""
        body: dict[str, Any] = model.info.as_dict()
        if self.shadow is not None:
            body["shadow"] = self.shadow.state()
        if self.follower is not None:
            body["follow"] = self.follower.state()
        return body

    def close(self) -> None:
        _retire(self.served)


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


async def _read_body(request: Request, limit: int) -> bytes:
    """The request's body; 413 past `limit` bytes, once the rest is read (and dropped), so the
    client gets that answer instead of a reset."""
    body = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            body.extend(chunk)
        elif size > DRAIN_LIMIT:
            break
    if size > limit:
        raise PayloadError(413, f"body of {size}+ bytes is over the limit of {limit} bytes")
    return bytes(body)


def _lifespan(state: ServingState) -> Any:
    """Load the model at startup (and watch the shadow folder, if there is one); close the logs at the end."""

    async def every(seconds: float, look: Callable[[], None]) -> None:
        # The first look waits an interval: a new endpoint's health and latency checks run without it.
        while True:
            await asyncio.sleep(seconds)
            await run_in_threadpool(look)  # never raises

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(state.load)
        watchers = []
        if state.follower is not None:
            watchers.append(asyncio.create_task(every(state.settings.follow_poll_seconds, state.follow)))
        if state.shadow is not None:
            watchers.append(asyncio.create_task(every(state.settings.shadow_poll_seconds, state.shadow.refresh)))
        yield
        for watcher in watchers:
            watcher.cancel()
        if state.shadow is not None:
            await run_in_threadpool(state.shadow.close)
        state.close()

    return lifespan


def create_app(settings: ServingSettings) -> Starlette:
    """The ASGI app for one model; the model loads at startup."""
    state = ServingState(settings)

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        state.in_flight += 1
        try:
            response = await _score(request, request_id)
        except PayloadError as err:
            response = _error(err.status, err.message, request_id)
        except Exception as err:
            log.exception("request %s failed", request_id)
            response = _error(500, f"internal error: {type(err).__name__}", request_id)
        finally:
            state.in_flight -= 1
        state.metrics.observe(response.status_code, started)
        return response

    async def _score(request: Request, request_id: str) -> Response:
        if settings.token and request.headers.get("authorization") != f"Bearer {settings.token}":
            raise PayloadError(401, "missing or wrong bearer token")
        if state.served is None:
            raise PayloadError(503, state.problem or "model not loaded")
        media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        body = await _read_body(request, settings.max_body_bytes)
        logged_at = _event_time(request) if settings.replay_clock else dt.datetime.now(dt.UTC)
        served = state.served
        model = served.model
        asked = parse_request(
            body,
            model.columns,
            model.required,
            media,
            default_method=model.predict_method,
            methods=model.predict_methods,
        )
        alone = state.alone(request.scope.get("client"), time.monotonic())
        labels, proba = await served.batcher.predict(asked.columns, inline=alone)
        state.record(served, request_id, logged_at, asked.columns, answer=(labels, proba), sent=asked.body)
        state.metrics.rows.inc(len(labels))
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
        return _json(state.describe(state.model))

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

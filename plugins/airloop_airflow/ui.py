"""The Airloop page in the Airflow UI: a FastAPI app under `/airloop` and the views that show it.

- `AIRLOOP_APP` is served by Airflow's API server under `URL_PREFIX` (the plugin's `fastapi_apps`).
- `NAV_VIEW` puts "Airloop" in the navigation bar: every pipeline's model health.
- `DAG_VIEW` adds a "Model health" tab to each DAG: the health of the DAG's pipeline.

Both views are `external_views` with a `url_route`, so the Airflow UI shows them inside its
own page (an iframe of the same origin, whose requests carry the UI's `_token` cookie).

Every Airflow component loads plugins, task processes included, so this module stays light:
the app (FastAPI, Airflow's API security, the core and MLflow) is built on its first request.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

URL_PREFIX = "/airloop"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyASGIApp:
    """An ASGI app imported from `module:factory` and built when the first request reaches it."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    def build(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        if self._app is None:
            module, _, name = self.factory.partition(":")
            self._app = getattr(importlib.import_module(module), name)()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.build()(scope, receive, send)

    def __repr__(self) -> str:
        return f"LazyASGIApp({self.factory!r})"


AIRLOOP_APP = {
    "app": LazyASGIApp("airloop_airflow.ui_app:create_app"),
    "url_prefix": URL_PREFIX,
    "name": "Airloop model health",
}

NAV_VIEW = {
    "name": "Airloop",
    "href": f"{URL_PREFIX}/",
    "url_route": "airloop",
    "destination": "nav",
    "nav_top_level": True,
}

DAG_VIEW = {
    "name": "Model health",
    "href": URL_PREFIX + "/dags/{DAG_ID}",
    "url_route": "airloop-model-health",
    "destination": "dag",
}

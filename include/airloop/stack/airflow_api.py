"""A small client for Airflow 3's REST API (`/api/v2`), authenticated as a user would be."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_STATES = {"success", "failed"}
#: The tag every Airloop DAG carries (see DESIGN.md): what `unpause_tagged` makes live.
AIRLOOP_TAG = "airloop"
#: The DAG file that builds no DAG and reports broken pipeline files as its import error.
PIPELINES_CHECK_FILE = "airloop_pipelines_check.py"
#: The one-slot pool of the tasks that change what serves (promote, deploy, reconcile).
SERVING_POOL = "airloop_serving"
SERVING_POOL_DESCRIPTION = "Airloop: one task at a time changes what serves (promote, deploy, reconcile)"
#: After this long queued, `follow` says what the run waits for.
WAIT_NOTICE_S = 15.0
#: The API's page size for lists (its maximum by default).
PAGE = 100


class AirflowApiError(RuntimeError):
    """Airflow answered with an error; the message carries its status and detail."""


class DagPausedError(AirflowApiError):
    """The DAG is paused: a run of it would wait in `queued` and never start."""

    def __init__(self, dag_id: str) -> None:
        self.dag_id = dag_id
        super().__init__(
            f"DAG {dag_id} is paused, so a run of it would stay queued and never start. Unpause it "
            f"(the toggle beside {dag_id} in the Airflow UI, `airflow dags unpause {dag_id}`, or "
            f'PATCH /api/v2/dags/{dag_id} {{"is_paused": false}}; `make up` unpauses every Airloop DAG) '
            "and trigger it again"
        )


class AirflowClient:
    """Token-authenticated calls to one Airflow API server."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        response = self._http.post("/auth/token", json={"username": username, "password": password})
        if response.status_code not in (200, 201):
            raise AirflowApiError(f"login as {username!r} failed: HTTP {response.status_code} {response.text}")
        self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the DAG is parsed (as :meth:`wait_for_dags`); returns it as the DAG list shows it."""
        return next(d for d in self.wait_for_dags([dag_id], timeout=timeout) if d["dag_id"] == dag_id)

    def wait_for_dags(
        self, dag_ids: Iterable[str], *, timeout: float = 120.0, reported: Iterable[str] = (PIPELINES_CHECK_FILE,)
    ) -> list[dict[str, Any]]:
        """Wait until each DAG of `dag_ids` is parsed; returns every DAG.

        An import error fails at once, with the error: a DAG file that does not import. The files
        named in `reported` are not waited on and their errors do not fail: the pipelines check
        reports broken pipeline files that way, and the other pipelines' DAGs go on. Fails after
        `timeout` naming the DAGs not parsed yet.
        """
        expected = set(dag_ids)
        tolerated = set(reported)
        deadline = time.monotonic() + timeout
        while True:
            errors = [
                e
                for e in self.request("GET", "/api/v2/importErrors")["import_errors"]
                if Path(e["filename"]).name not in tolerated
            ]
            if errors:
                details = "\n".join(f"{e['filename']}: {e['stack_trace']}" for e in errors)
                raise AirflowApiError(f"DAG files failed to import:\n{details}")
            dags = self.dags()
            missing = sorted(expected - {d["dag_id"] for d in dags})
            if not missing:
                return dags
            if time.monotonic() > deadline:
                raise AirflowApiError(
                    f"DAGs {', '.join(missing)} not parsed within {timeout:.0f}s; see the dag-processor's log"
                )
            time.sleep(1)

    def dag(self, dag_id: str) -> dict[str, Any]:
        """The DAG as the API shows it: `is_paused`, `timetable_summary`, `next_dagrun_run_after`..."""
        return self.request("GET", f"/api/v2/dags/{dag_id}")

    def dags(self, *, tag: str | None = None) -> list[dict[str, Any]]:
        """Every current DAG (stale ones left out), or those tagged `tag`, by dag_id."""
        params: dict[str, Any] = {"order_by": "dag_id", "limit": PAGE, "exclude_stale": True}
        if tag is not None:
            params["tags"] = tag
        found: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", "/api/v2/dags", params={**params, "offset": len(found)})
            found.extend(page["dags"])
            if not page["dags"] or len(found) >= page["total_entries"]:
                return found

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def unpause_tagged(self, tag: str = AIRLOOP_TAG) -> list[dict[str, Any]]:
        """Unpause every DAG tagged `tag` that is paused; returns all of them as they are now."""
        dags = self.dags(tag=tag)
        for dag in dags:
            if dag["is_paused"]:
                self.unpause(dag["dag_id"])
        return self.dags(tag=tag)

    def ensure_pool(self, name: str, slots: int, description: str) -> None:
        """Create the pool `name`, or set its slots and description if it exists."""
        path = f"/api/v2/pools/{quote(name, safe='')}"
        try:
            self.request("GET", path)
        except AirflowApiError as err:
            if "HTTP 404" not in str(err):
                raise
            self.request("POST", "/api/v2/pools", json={"name": name, "slots": slots, "description": description})
            return
        patch = {"pool": name, "slots": slots, "description": description, "include_deferred": False}
        self.request("PATCH", path, json=patch)

    def trigger(self, dag_id: str, *, logical_date: str | None, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a run; `logical_date` (ISO 8601) keys its data, None dates it by trigger time.

        Raises :class:`DagPausedError` instead of queueing a run that would never start.
        """
        if self.dag(dag_id)["is_paused"]:
            raise DagPausedError(dag_id)
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def dag_runs(self, dag_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first."""
        path = f"/api/v2/dags/{dag_id}/dagRuns"
        return self.request("GET", path, params={"order_by": "run_after", "limit": limit})["dag_runs"]

    def active_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs that are running or queued."""
        path = f"/api/v2/dags/{dag_id}/dagRuns"
        return self.request("GET", path, params={"state": ["running", "queued"], "limit": PAGE})["dag_runs"]

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        """The task's extra links (button name -> URL) as the UI shows them."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"
        return self.request("GET", path)["extra_links"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self.request("GET", path)["task_instances"]

    def clear(self, dag_id: str, run_id: str, task_ids: list[str], *, note: str | None = None) -> list[dict[str, Any]]:
        """Run the tasks again, and everything downstream of them, in an existing run (as the UI's Clear)."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
            "note": note,
        }
        return self.request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json=body)["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.request("GET", path)["value"]

    def approval(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """A human-in-the-loop task's question and answer (subject, body, options, chosen_options...)."""
        return self.request("GET", self._hitl_path(dag_id, run_id, task_id))

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str) -> dict[str, Any]:
        """Answer a human-in-the-loop task (e.g. `Approve` or `Reject`) as this client's user."""
        return self.request(
            "PATCH", self._hitl_path(dag_id, run_id, task_id), json={"chosen_options": [option], "params_input": {}}
        )

    @staticmethod
    def _hitl_path(dag_id: str, run_id: str, task_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/-1/hitlDetails"

    def task_log_events(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> list[Any]:
        """A try's log as Airflow keeps it: one structured event (`event`, `level`, `logger`...) a line."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
        return list(self.request("GET", path).get("content") or [])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A try's log as text, a line an event, as the Airflow UI shows it without the timestamps."""
        lines = []
        for event in self.task_log_events(dag_id, run_id, task_id, try_number):
            if not isinstance(event, dict):
                lines.append(str(event))
                continue
            lines.append(str(event.get("event", "")))
            lines.extend(f"{d.get('exc_type')}: {d.get('exc_value')}" for d in event.get("error_detail") or [])
        return "\n".join(lines)

    def follow(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout: float = 1800.0,
        poll: float = 2.0,
        on_task: Callable[[str, str], None] | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the run ends; `on_task(task_id, state)` is told of each task's new state.

        `on_wait(why)` is told, once, what a run still queued after `WAIT_NOTICE_S` waits for.
        """
        seen: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        notice = time.monotonic() + WAIT_NOTICE_S
        while True:
            run = self.dag_run(dag_id, run_id)
            if on_wait and run["state"] == "queued" and time.monotonic() > notice:
                on_wait(self.queued_because(dag_id, run_id))
                on_wait = None
            for ti in self.task_instances(dag_id, run_id):
                state = ti["state"]
                if state is not None and seen.get(ti["task_id"]) != state:  # None: not scheduled yet
                    seen[ti["task_id"]] = state
                    if on_task:
                        on_task(ti["task_id"], state)
            if run["state"] in TERMINAL_STATES:
                return run
            if run["state"] == "queued" and self.dag(dag_id)["is_paused"]:
                raise DagPausedError(dag_id)  # paused since it was triggered: it would never start
            if time.monotonic() > deadline:
                raise AirflowApiError(f"run {run_id} of {dag_id} still {run['state']} after {timeout:.0f}s")
            time.sleep(poll)

    def queued_because(self, dag_id: str, run_id: str) -> str:
        """What a queued run waits for: an earlier run (one at a time) or the scheduler."""
        dag = self.dag(dag_id)
        running = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"state": "running"})["dag_runs"]
        active = [r["dag_run_id"] for r in running if r["dag_run_id"] != run_id]
        if active and len(active) >= (dag.get("max_active_runs") or 1):
            return (
                f"run {active[0]} of {dag_id} is still running, and {dag_id} runs "
                f"{dag.get('max_active_runs') or 1} at a time: this run starts when it ends"
            )
        return "the scheduler has not started this run yet (it does within a minute on an idle machine)"

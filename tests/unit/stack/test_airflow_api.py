"""Airloop's REST client against a fake API server: listing, unpausing and refusing paused DAGs."""

from __future__ import annotations

import json

import httpx
import pytest

from airloop.stack.airflow_api import AirflowApiError, AirflowClient, DagPausedError


class FakeAirflow:
    """Just enough of /api/v2 to hold DAGs and runs, recording every call."""

    def __init__(self, dags: list[dict], *, page: int = 100) -> None:
        self.dags = {
            d["dag_id"]: {"is_paused": True, "relative_fileloc": f"{d['dag_id']}.py", "tags": [], **d} for d in dags
        }
        self.page = page
        self.calls: list[tuple[str, str]] = []
        self.runs: dict[str, list[dict]] = {}
        self.import_errors: list[dict] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if path == "/auth/token":
            return httpx.Response(201, json={"access_token": "token"})
        if path == "/api/v2/importErrors":
            return httpx.Response(200, json={"import_errors": self.import_errors})
        if path == "/api/v2/dags":
            return self._list(request)
        return self._one(request, path.removeprefix("/api/v2/dags/").split("/"))

    def _list(self, request: httpx.Request) -> httpx.Response:
        tags = request.url.params.get_list("tags")
        found = [d for _, d in sorted(self.dags.items()) if not tags or set(tags) & set(d["tags"])]
        offset = int(request.url.params.get("offset", 0))
        limit = min(int(request.url.params.get("limit", 100)), self.page)
        shown = [{**d, "tags": [{"name": t} for t in d["tags"]]} for d in found[offset : offset + limit]]
        return httpx.Response(200, json={"dags": shown, "total_entries": len(found)})

    def _one(self, request: httpx.Request, parts: list[str]) -> httpx.Response:
        dag_id, rest = parts[0], parts[1:]
        dag = self.dags.get(dag_id)
        if dag is None:
            return httpx.Response(404, json={"detail": f"The Dag with ID: `{dag_id}` was not found"})
        runs = self.runs.setdefault(dag_id, [])
        if not rest:
            if request.method == "PATCH":
                dag.update(json.loads(request.content))
            return httpx.Response(200, json=dag)
        if rest == ["dagRuns"] and request.method == "POST":
            runs.append({"dag_run_id": f"manual__{len(runs)}", "state": "queued"})
            return httpx.Response(200, json=runs[-1])
        if rest == ["dagRuns"]:  # GET, with the state filter the client uses
            states = request.url.params.get_list("state")
            return httpx.Response(200, json={"dag_runs": [r for r in runs if not states or r["state"] in states]})
        if rest[-1] == "taskInstances":
            return httpx.Response(200, json={"task_instances": []})
        return httpx.Response(200, json=next(r for r in runs if r["dag_run_id"] == rest[1]))


DAGS = [
    {"dag_id": "airloop_flights_deploy", "tags": ["airloop", "deployment"]},
    {"dag_id": "airloop_flights_monitoring", "tags": ["airloop", "monitoring"]},
    {"dag_id": "airloop_flights_retraining", "tags": ["airloop", "retraining"], "is_paused": False},
    {"dag_id": "airloop_flights_training", "tags": ["airloop", "training"]},
    {"dag_id": "someone_elses", "tags": ["finance"]},
]


def _client(fake: FakeAirflow) -> AirflowClient:
    return AirflowClient("http://airflow.test", "admin", "pw", transport=httpx.MockTransport(fake.handle))


def test_unpause_tagged_unpauses_every_airloop_dag_and_nothing_else():
    fake = FakeAirflow(DAGS, page=2)  # pages of two: the listing must follow the pages
    with _client(fake) as client:
        dags = client.unpause_tagged("airloop")
    assert [d["dag_id"] for d in dags] == [
        "airloop_flights_deploy",
        "airloop_flights_monitoring",
        "airloop_flights_retraining",
        "airloop_flights_training",
    ]
    assert not any(d["is_paused"] for d in dags)
    assert fake.dags["someone_elses"]["is_paused"] is True
    patched = sorted(path for method, path in fake.calls if method == "PATCH")
    # The one already unpaused is left alone.
    assert patched == [
        "/api/v2/dags/airloop_flights_deploy",
        "/api/v2/dags/airloop_flights_monitoring",
        "/api/v2/dags/airloop_flights_training",
    ]


def test_triggering_a_paused_dag_says_so_and_how_to_unpause_instead_of_queueing_a_run():
    fake = FakeAirflow(DAGS)
    with _client(fake) as client, pytest.raises(DagPausedError) as raised:
        client.trigger("airloop_flights_deploy", logical_date=None, conf={"version": "3"})
    message = str(raised.value)
    assert "DAG airloop_flights_deploy is paused" in message
    assert "airflow dags unpause airloop_flights_deploy" in message
    assert "make up" in message
    assert not any(fake.runs.values()), "no run is left queued behind a paused DAG"
    assert isinstance(raised.value, AirflowApiError)  # callers catching the client's errors see it too


def test_triggering_an_unpaused_dag_starts_a_run():
    fake = FakeAirflow(DAGS)
    with _client(fake) as client:
        run = client.trigger("airloop_flights_retraining", logical_date=None)
    assert run["dag_run_id"] == "manual__0"


def test_following_a_run_whose_dag_was_paused_meanwhile_stops_with_the_reason():
    fake = FakeAirflow(DAGS)
    with _client(fake) as client:
        run = client.trigger("airloop_flights_retraining", logical_date=None)
        fake.dags["airloop_flights_retraining"]["is_paused"] = True
        with pytest.raises(DagPausedError, match="airloop_flights_retraining is paused"):
            client.follow("airloop_flights_retraining", run["dag_run_id"], timeout=60, poll=0)


def test_following_a_queued_run_says_once_what_it_waits_for(monkeypatch):
    from airloop.stack import airflow_api

    monkeypatch.setattr(airflow_api, "WAIT_NOTICE_S", 0.0)
    fake = FakeAirflow([{**DAGS[3], "is_paused": False, "max_active_runs": 1}])
    told: list[str] = []
    with _client(fake) as client:
        earlier = client.trigger("airloop_flights_training", logical_date=None)
        fake.runs["airloop_flights_training"][0]["state"] = "running"
        queued = client.trigger("airloop_flights_training", logical_date=None)

        def wait(why: str) -> None:
            told.append(why)
            fake.runs["airloop_flights_training"][1]["state"] = "running"  # told once: later polls find it running

        with pytest.raises(AirflowApiError, match="still running after 0s"):
            client.follow("airloop_flights_training", queued["dag_run_id"], timeout=0.2, poll=0, on_wait=wait)
        for run in fake.runs["airloop_flights_training"]:
            run["state"] = "success"
        alone = client.trigger("airloop_flights_training", logical_date=None)
        why_alone = client.queued_because("airloop_flights_training", alone["dag_run_id"])
    assert len(told) == 1
    assert f"run {earlier['dag_run_id']} of airloop_flights_training is still running" in told[0]
    assert "1 at a time" in told[0]
    assert "the scheduler has not started this run yet" in why_alone


def test_triggering_an_unknown_dag_names_it():
    with _client(FakeAirflow(DAGS)) as client, pytest.raises(AirflowApiError, match="airloop_nope"):
        client.trigger("airloop_nope", logical_date=None)


def test_waiting_for_dags_returns_once_each_is_parsed():
    fake = FakeAirflow(DAGS)
    with _client(fake) as client:
        dags = client.wait_for_dags(["airloop_flights_training", "airloop_flights_deploy"], timeout=5)
    assert {d["dag_id"] for d in dags} >= {"airloop_flights_training", "airloop_flights_deploy"}


def test_waiting_for_dags_names_the_ones_never_parsed():
    with _client(FakeAirflow(DAGS)) as client, pytest.raises(AirflowApiError, match="DAGs airloop_churn_training not"):
        client.wait_for_dags(["airloop_flights_training", "airloop_churn_training"], timeout=0)


def test_waiting_for_dags_fails_at_once_on_an_import_error():
    fake = FakeAirflow([])
    fake.import_errors = [{"filename": "/dags/airloop_training.py", "stack_trace": "SyntaxError: invalid syntax"}]
    with _client(fake) as client, pytest.raises(AirflowApiError, match="SyntaxError"):
        client.wait_for_dags(["airloop_flights_training"], timeout=60)


def test_a_broken_pipeline_file_reported_by_the_check_file_does_not_stop_the_others():
    fake = FakeAirflow(DAGS)
    fake.import_errors = [
        {"filename": "/dags/airloop_pipelines_check.py", "stack_trace": "BrokenPipelineFiles: churn.yaml: ..."}
    ]
    with _client(fake) as client:
        dags = client.wait_for_dags(["airloop_flights_training"], timeout=5)
    assert "airloop_flights_training" in {d["dag_id"] for d in dags}

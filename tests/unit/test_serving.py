"""The serving app on a real trained model, through its HTTP interface (in process)."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import schemathesis
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from airloop import pipeline
from airloop.deploy.checks import ServingCheck
from airloop.lineage import Lineage
from airloop.serving.app import ServingSettings, create_app
from airloop.serving.inference_log import read_inference_log
from airloop.serving.model import fetch_model
from tests.conftest import flights


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, landing_home) -> Path:
    """The flights model, trained on a week, registered, promoted and fetched from the registry."""

    import mlflow

    from airloop.settings import AirloopSettings

    root = tmp_path_factory.mktemp("serving")
    home = root / "home"
    home.mkdir()
    (home / "landing").symlink_to(landing_home / "landing")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    settings = AirloopSettings(home=home, mlflow_tracking_uri=tracking)
    options = pipeline.RunOptions(window_days=7, model={"max_iter": 50})
    cwd = Path.cwd()
    try:
        import os

        os.chdir(root)  # the SQLite store keeps artifacts under the working directory
        decision = pipeline.run_in_process(
            settings, flights(settings), options, dt.date(2026, 3, 8), Lineage(run_id="serving")
        )
        dest = root / "model"
        info = fetch_model(f"models:/{decision.model_name}@champion", dest, tracking_uri=tracking)
        assert info.version == decision.version
        assert info.alias == "champion"
        mlflow.set_tracking_uri(tracking)
        # What MLflow itself predicts, to compare the server with.
        example = json.loads((dest / "serving_input_example.json").read_text())
        frame = pd.DataFrame(**example["dataframe_split"])
        expected = mlflow.pyfunc.load_model(str(dest)).predict(frame).tolist()
        (root / "expected.json").write_text(json.dumps(expected))
        proba = mlflow.sklearn.load_model(str(dest)).predict_proba(frame).tolist()
        (root / "expected_proba.json").write_text(json.dumps(proba))
    finally:
        os.chdir(cwd)
    return dest


@pytest.fixture
def client(model_dir, tmp_path):
    settings = ServingSettings(model_dir=model_dir, inference_log_dir=tmp_path / "inference", image="img:1")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def example(model_dir) -> dict:
    return json.loads((model_dir / "serving_input_example.json").read_text())["dataframe_split"]


@pytest.fixture(scope="module")
def expected(model_dir) -> list:
    return json.loads((model_dir.parent / "expected.json").read_text())


@pytest.fixture(scope="module")
def expected_proba(model_dir) -> list:
    return json.loads((model_dir.parent / "expected_proba.json").read_text())


def _records(example: dict) -> list[dict]:
    return [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]


def _post(client: TestClient, body, **kwargs):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return client.post("/invocations", content=content, headers=headers, **kwargs)


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(lambda ex: {"dataframe_split": ex}, id="dataframe_split"),
        pytest.param(lambda ex: {"dataframe_records": _records(ex)}, id="dataframe_records"),
        pytest.param(lambda ex: {"instances": _records(ex)}, id="instances"),
        pytest.param(
            lambda ex: {"inputs": {c: [r[i] for r in ex["data"]] for i, c in enumerate(ex["columns"])}},
            id="inputs-columns",
        ),
        pytest.param(
            lambda ex: {
                "dataframe_split": {**ex, "columns": ex["columns"][::-1], "data": [r[::-1] for r in ex["data"]]}
            },
            id="any-column-order",
        ),
    ],
)
def test_scoring_protocol_predicts_what_mlflow_predicts(client, example, expected, make_body):
    response = _post(client, make_body(example))
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}
    assert response.headers["X-Request-ID"]


def test_the_loaded_model_scores_the_positive_class(model_dir, example, expected_proba):
    from airloop.serving.model import load_model_dir

    scores = load_model_dir(model_dir).scores(pd.DataFrame(**example))
    assert scores.shape == (len(example["data"]),)  # one score a row, as monitoring reads it
    np.testing.assert_allclose(scores, [p[1] for p in expected_proba], rtol=1e-9)


def test_predict_proba_answers_what_the_model_itself_answers(client, example, expected_proba):
    body = {"dataframe_split": example, "params": {"predict_method": "predict_proba"}}
    response = _post(client, body)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["predictions"], expected_proba, rtol=1e-9)
    assert (
        _post(client, {**body, "params": {"predict_method": "predict"}}).json()["predictions"]
        != (response.json()["predictions"])
    )


def test_the_pipelines_default_method_travels_with_the_model(model_dir, example, expected, expected_proba, tmp_path):
    """`serving.predict_method` is written into the MLmodel file at training; a model that says
    `predict_proba` answers probabilities to a request that names no method, labels to one that does."""

    import yaml

    from airloop.config import load_config
    from airloop.serving.model import PREDICT_METHOD_KEY, TASK_KEY, model_metadata

    from ..conftest import FLIGHTS_CONFIG

    trained = yaml.safe_load((model_dir / "MLmodel").read_text())
    flights = load_config(FLIGHTS_CONFIG)
    assert trained["metadata"] == {PREDICT_METHOD_KEY: flights.serving.predict_method, TASK_KEY: "binary"}

    proba_dir = tmp_path / "model"
    shutil.copytree(model_dir, proba_dir)
    mlmodel = {**trained, "metadata": model_metadata("predict_proba", "binary")}
    (proba_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with TestClient(create_app(ServingSettings(model_dir=proba_dir, inference_log_dir=tmp_path / "log"))) as client:
        unnamed = _post(client, {"dataframe_split": example})
        np.testing.assert_allclose(unnamed.json()["predictions"], expected_proba, rtol=1e-9)
        csv = client.post("/invocations", content=_csv(example), headers={"Content-Type": "text/csv"})
        np.testing.assert_allclose(csv.json()["predictions"], expected_proba, rtol=1e-9)
        named = _post(client, {"dataframe_split": example, "params": {"predict_method": "predict"}})
        assert named.json()["predictions"] == expected

    mlmodel["metadata"] = {PREDICT_METHOD_KEY: "predict_log_proba"}
    (proba_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with TestClient(create_app(ServingSettings(model_dir=proba_dir, inference_log_dir=tmp_path / "log2"))) as client:
        assert client.get("/health").status_code == 503
        assert "predict_log_proba" in client.get("/health").json()["reason"]


def test_a_pipeline_names_only_a_method_serving_knows():
    from pydantic import ValidationError

    from airloop.config import load_config

    from ..conftest import FLIGHTS_CONFIG

    assert load_config(FLIGHTS_CONFIG, {"serving": {"predict_method": "predict_proba"}}).serving.predict_method == (
        "predict_proba"
    )
    with pytest.raises(ValidationError, match="predict_method"):
        load_config(FLIGHTS_CONFIG, {"serving": {"predict_method": "decision_function"}})


def _csv(example: dict) -> bytes:
    return pd.DataFrame(example["data"], columns=example["columns"]).to_csv(index=False).encode()


def test_a_csv_body_predicts_what_json_predicts(client, example, expected):
    response = client.post("/invocations", content=_csv(example), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        pytest.param(b"", 422, "no header row", id="empty"),
        pytest.param(b"gate,dest\nB12,JFK\n", 422, "unknown column(s): ['gate']", id="unknown-column"),
        pytest.param(b'distance\n"\n', 400, "malformed CSV", id="open-quote"),
    ],
)
def test_a_bad_csv_body_gets_a_4xx_that_names_the_problem(client, body, status, fragment):
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]


def test_an_optional_column_may_be_left_out(client, example):
    records = [{k: v for k, v in r.items() if k != "wind_gust"} for r in _records(example)]
    assert _post(client, {"dataframe_records": records}).status_code == 200


def _drop(column: str):
    return lambda ex: {"dataframe_records": [{k: v for k, v in r.items() if k != column} for r in _records(ex)]}


def _set(column: str, value):
    return lambda ex: {"dataframe_records": [{**r, column: value} for r in _records(ex)]}


@pytest.mark.parametrize(
    ("make_body", "status", "fragment"),
    [
        pytest.param(_drop("dest"), 422, "missing column(s): ['dest']", id="missing-column"),
        pytest.param(_set("gate", "B12"), 422, "unknown column(s): ['gate']", id="unknown-column"),
        pytest.param(_set("distance", "far"), 422, "column 'distance' expects numbers", id="string-for-number"),
        pytest.param(_set("distance", True), 422, "column 'distance' expects numbers", id="bool-for-number"),
        pytest.param(_set("carrier", 7), 422, "column 'carrier' expects strings", id="number-for-string"),
        pytest.param(_set("carrier", {"a": 1}), 422, "column 'carrier' expects strings", id="object-for-string"),
        pytest.param(lambda ex: {"dataframe_records": []}, 422, "no rows", id="no-rows"),
        pytest.param(
            lambda ex: {"dataframe_split": {"columns": ex["columns"], "data": [[1]]}}, 422, "values for", id="short-row"
        ),
        pytest.param(
            lambda ex: {"dataframe_split": {"data": []}}, 400, "needs 'columns' and 'data'", id="split-without-columns"
        ),
        pytest.param(lambda ex: {"records": []}, 400, "expected exactly one of the keys", id="unknown-format"),
        pytest.param(lambda ex: [1, 2], 400, "expected a JSON object", id="not-an-object"),
        pytest.param(lambda ex: {"instances": [1, 2]}, 400, "list of objects", id="instances-of-scalars"),
        pytest.param(lambda ex: b'{"dataframe_split": ', 400, "malformed JSON", id="truncated-json"),
        pytest.param(lambda ex: b"\xff\xfe", 400, "malformed JSON", id="not-utf8"),
        pytest.param(
            lambda ex: {"dataframe_split": ex, "params": {"predict_method": "predict_log_proba"}},
            422,
            "params.predict_method 'predict_log_proba' is not one of",
            id="unknown-predict-method",
        ),
        pytest.param(
            lambda ex: {"dataframe_split": ex, "params": {"predict_methd": "predict_proba"}},
            422,
            "unknown param(s) ['predict_methd']",
            id="misspelt-param",
        ),
        pytest.param(
            lambda ex: {"dataframe_split": ex, "params": []}, 400, "'params' must be an object", id="params-list"
        ),
    ],
)
def test_bad_input_gets_a_4xx_that_names_the_problem(client, example, make_body, status, fragment):
    response = _post(client, make_body(example))
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    assert _post(client, {"dataframe_split": example}).status_code == 200  # and it keeps serving


def test_oversized_body_gets_413_and_other_media_types_415(model_dir, example):
    settings = ServingSettings(model_dir=model_dir, max_body_bytes=2048)
    with TestClient(create_app(settings)) as small:
        big = {"dataframe_records": _records(example) * 20}
        assert _post(small, big).status_code == 413
        assert small.post("/invocations", content=b"a,b", headers={"Content-Type": "text/plain"}).status_code == 415
        assert _post(small, {"dataframe_split": example}).status_code == 200


def test_health_version_ping_and_metrics(client, model_dir, example):
    assert client.get("/ping").status_code == 200
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    version = client.get("/version").json()
    assert version["name"] == "airloop-flights-delay"
    assert version["alias"] == "champion"
    assert version["version"]
    assert version["run_id"]
    assert version["image"] == "img:1"

    _post(client, {"dataframe_split": example})
    _post(client, {"dataframe_records": []})
    metrics = client.get("/metrics").text
    assert 'airloop_serving_requests_total{status="200"} 1.0' in metrics
    assert 'airloop_serving_requests_total{status="422"} 1.0' in metrics
    assert 'airloop_serving_request_seconds_bucket{le="0.01",status="200"}' in metrics
    assert f"airloop_serving_predictions_total {float(len(example['data']))}" in metrics


def test_every_prediction_but_the_checks_is_in_the_inference_log(client, example, tmp_path):

    ids = []
    for _ in range(3):
        response = _post(client, {"dataframe_split": example})
        ids.append(response.headers["X-Request-ID"])
    chosen = _post(client, {"dataframe_split": example}, headers={"X-Request-ID": "my-request-1"})
    assert chosen.headers["X-Request-ID"] == "my-request-1"
    _post(client, {"dataframe_records": []})  # refused: not logged
    check = _post(client, {"dataframe_split": example}, headers=ServingCheck().headers())
    assert check.status_code == 200  # a deployment check is answered, but it is not traffic: not logged

    today = dt.datetime.now(dt.UTC).date()
    records = list(read_inference_log(tmp_path / "inference", today, today + dt.timedelta(days=1)))
    assert len(records) == 4 * len(example["data"])
    assert {r["request_id"] for r in records} == {*ids, "my-request-1"}
    first = records[0]
    assert set(first["features"]) == set(example["columns"])
    assert first["model_name"] == "airloop-flights-delay"
    assert first["prediction"] in (0, 1)
    assert 0.0 <= first["score"] <= 1.0


def test_a_model_that_cannot_load_is_not_healthy_but_the_server_answers(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {}\n")
    with TestClient(create_app(ServingSettings(model_dir=broken))) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert "only scikit-learn models" in health.json()["reason"]
        assert client.get("/ping").status_code == 503
        response = _post(client, {"dataframe_records": [{"a": 1}]})
        assert response.status_code == 503
        assert "model not ready" in response.json()["message"]


def test_token_auth_when_configured(model_dir, example):
    with TestClient(create_app(ServingSettings(model_dir=model_dir, token="s3cret"))) as client:
        assert _post(client, {"dataframe_split": example}).status_code == 401
        wrong = _post(client, {"dataframe_split": example}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = _post(client, {"dataframe_split": example}, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert client.get("/health").status_code == 200  # probes need no token


def test_nan_from_python_clients_is_accepted(client, example):
    body = json.dumps(
        {
            "dataframe_split": {
                **example,
                "data": [
                    [math.nan if c == "temp" else v for c, v in zip(example["columns"], r, strict=True)]
                    for r in example["data"]
                ],
            }
        }
    )
    assert "NaN" in body
    assert _post(client, body.encode()).status_code == 200


def test_an_unwritable_inference_log_keeps_the_server_unready(model_dir, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log folder should be")
    with TestClient(create_app(ServingSettings(model_dir=model_dir, inference_log_dir=blocked))) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert "inference log not writable" in health.json()["reason"]


@pytest.mark.parametrize(
    ("replay_clock", "header", "logged_day"),
    [
        pytest.param(True, "2026-07-04T18:00:00+00:00", dt.date(2026, 7, 4), id="replay-uses-the-event-time"),
        pytest.param(True, None, None, id="replay-without-header-uses-now"),
        pytest.param(False, "2026-07-04T18:00:00+00:00", None, id="production-ignores-the-header"),
    ],
)
def test_the_replay_clock_logs_a_request_at_its_event_time(  # noqa: PLR0917 - pytest parameters
    model_dir, tmp_path, example, replay_clock, header, logged_day
):
    settings = ServingSettings(model_dir=model_dir, inference_log_dir=tmp_path / "inference", replay_clock=replay_clock)
    headers = {"X-Airloop-Event-Time": header} if header else {}
    with TestClient(create_app(settings)) as client:
        assert _post(client, {"dataframe_split": example}, headers=headers).status_code == 200
    day = logged_day or dt.datetime.now(dt.UTC).date()
    records = list(read_inference_log(tmp_path / "inference", day, day + dt.timedelta(days=1)))
    assert len(records) == len(example["data"])
    if logged_day:
        assert records[0]["timestamp"] == header


def test_a_bad_event_time_is_a_400_naming_the_header(model_dir, tmp_path, example):
    settings = ServingSettings(model_dir=model_dir, inference_log_dir=tmp_path / "inference", replay_clock=True)
    with TestClient(create_app(settings)) as client:
        answer = _post(client, {"dataframe_split": example}, headers={"X-Airloop-Event-Time": "yesterday"})
    assert answer.status_code == 400
    assert "X-Airloop-Event-Time" in answer.json()["message"]


def _as_version(model_dir: Path, dest: Path, version: str) -> Path:
    """A copy of the model registered as another version (what a challenger's folder holds)."""

    from airloop.serving.model import MODEL_INFO_FILE

    shutil.copytree(model_dir, dest)
    info = json.loads((dest / MODEL_INFO_FILE).read_text())
    (dest / MODEL_INFO_FILE).write_text(json.dumps({**info, "version": version, "alias": "challenger"}))
    return dest


def test_a_shadow_challenger_scores_a_copy_of_each_request_under_its_id(model_dir, example, tmp_path):
    slot = tmp_path / "shadow-slot"
    settings = ServingSettings(
        model_dir=model_dir,
        inference_log_dir=tmp_path / "inference",
        shadow_model_dir=slot,
        shadow_log_dir=tmp_path / "shadow-log",
        shadow_poll_seconds=0.05,
    )
    today = dt.datetime.now(dt.UTC).date()
    with TestClient(create_app(settings)) as client:
        state = client.app.state.serving
        _post(client, {"dataframe_split": example}, headers={"X-Request-ID": "before-the-shadow"})
        assert client.get("/version").json()["shadow"]["model"] is None

        _as_version(model_dir, tmp_path / "staged", "7").rename(slot)  # placed whole, as a deployer would
        _wait(lambda: state.shadow.version == "7")
        answers = {}
        for n in range(3):
            response = _post(client, {"dataframe_split": example}, headers={"X-Request-ID": f"live-{n}"})
            answers[f"live-{n}"] = response.json()["predictions"]
        _post(client, {"dataframe_split": example}, headers=ServingCheck().headers())  # a check: not copied
        state.shadow.drain()
        shadow = client.get("/version").json()["shadow"]
        assert (shadow["model"]["version"], shadow["scored"], shadow["dropped"], shadow["failed"]) == ("7", 3, 0, 0)
        assert client.get("/version").json()["version"] != "7"  # the client is answered by the champion

    served = list(read_inference_log(tmp_path / "inference", today, today + dt.timedelta(days=1)))
    copied = list(read_inference_log(tmp_path / "shadow-log", today, today + dt.timedelta(days=1)))
    assert {r["request_id"] for r in copied} == {"live-0", "live-1", "live-2"}
    assert {r["model_version"] for r in copied} == {"7"}
    by_key = {(r["request_id"], r["row"]): r for r in served}
    for record in copied:  # the same rows, and (the same pipeline here) the same answers
        champion = by_key[(record["request_id"], record["row"])]
        assert record["features"] == champion["features"]
        assert record["score"] == pytest.approx(champion["score"])
        assert record["prediction"] == answers[record["request_id"]][record["row"]]


def test_a_shadow_that_cannot_load_or_keep_up_never_touches_the_champion(model_dir, example, tmp_path):

    from airloop.serving.shadow import ShadowScorer

    broken = _as_version(model_dir, tmp_path / "broken", "8")
    (broken / "MLmodel").write_text("flavors: {}\n")
    scorer = ShadowScorer(broken, tmp_path / "log", max_pending=0)
    scorer.refresh()
    assert scorer.model is None
    assert "shadow airloop-flights-delay v8 not loaded: ModelLoadError" in (scorer.problem or "")
    frame = pd.DataFrame(**example)
    assert not scorer.submit("r1", dt.datetime.now(dt.UTC), frame)  # nothing to shadow with

    good = ShadowScorer(_as_version(model_dir, tmp_path / "good", "9"), tmp_path / "log", max_pending=0)
    good.refresh()
    assert good.version == "9"
    assert not good.submit("r2", dt.datetime.now(dt.UTC), frame)  # the worker is "behind": dropped, counted
    assert good.state()["dropped"] == 1
    shutil.rmtree(tmp_path / "good")
    good.refresh()  # the slot emptied: shadowing stops
    assert (good.version, good.problem) == (None, None)
    good.close()
    scorer.close()

    torn = _as_version(model_dir, tmp_path / "torn", "10")  # caught mid-copy: its info file half-written
    (torn / "airloop-model.json").write_text('{"name": "airloop-fl')
    caught = ShadowScorer(torn, tmp_path / "log")
    caught.refresh()  # never raises: the endpoint's watcher looks again next poll
    assert caught.model is None
    assert "unreadable: JSONDecodeError" in (caught.problem or "")
    caught.close()


def _wait(predicate, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@contextmanager
def _live(model_dir: Path, log_dir: Path) -> Iterator[str]:
    """The app under uvicorn on a loopback port (a real HTTP server), with the token on."""
    import threading
    import time

    import uvicorn

    from ..conftest import free_port

    settings = ServingSettings(model_dir=model_dir, inference_log_dir=log_dir, token="fuzz-token")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def live_endpoint(model_dir, tmp_path_factory):
    with _live(model_dir, tmp_path_factory.mktemp("fuzz") / "inference") as url:
        yield url


def _train_task(task: str, tmp_path_factory: pytest.TempPathFactory, landing_home: Path) -> Path:
    """The flights data as another task, trained for a week and fetched from the registry: the shipped
    `arrival_delay.yaml` (regression) or the multiclass `origin` pipeline of the tests."""
    import os

    import yaml

    from airloop.settings import AirloopSettings

    from ..conftest import PIPELINES, origin_pipeline

    root = tmp_path_factory.mktemp(task)
    (root / "home").mkdir()
    (root / "home" / "landing").symlink_to(landing_home / "landing")
    (root / "pipelines").mkdir()
    if task == "regression":
        shutil.copy(PIPELINES / "arrival_delay.yaml", root / "pipelines")
    else:
        (root / "pipelines" / "origin.yaml").write_text(yaml.safe_dump(origin_pipeline(8003)))
    settings = AirloopSettings(
        home=root / "home", pipelines=root / "pipelines", mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}"
    )
    found = settings.load_pipelines()
    cwd = Path.cwd()
    os.chdir(root)  # the SQLite store keeps artifacts under the working directory
    try:
        options = pipeline.RunOptions(window_days=7, model={"max_iter": 30})
        decision = pipeline.run_in_process(settings, found.choose(None), options, dt.date(2026, 3, 8))
        fetch_model(f"models:/{decision.model_name}@champion", root / "model", tracking_uri=settings.tracking_uri)
    finally:
        os.chdir(cwd)
    return root / "model"


@pytest.fixture(scope="module", params=["binary", "regression", "multiclass"])
def served_openapi(request, model_dir, tmp_path_factory, landing_home):
    """The OpenAPI document of a live endpoint serving a model of each task."""
    served = model_dir if request.param == "binary" else _train_task(request.param, tmp_path_factory, landing_home)
    with _live(served, tmp_path_factory.mktemp("fuzz") / "inference") as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_the_openapi_document_describes_the_models_signature(model_dir, live_endpoint):
    import httpx

    from airloop.serving.model import load_model_dir

    document = httpx.get(f"{live_endpoint}/openapi.json", timeout=10).json()
    schemathesis.openapi.from_dict(document).validate()  # a valid OpenAPI 3.0 document
    model = load_model_dir(model_dir)
    row = document["components"]["schemas"]["Row"]
    assert list(row["properties"]) == list(model.columns)
    assert set(row["required"]) == model.required
    json_types = {"double": "number", "float": "number", "long": "number", "integer": "number", "string": "string"}
    assert {name: p["type"] for name, p in row["properties"].items()} == {
        name: json_types[kind] for name, kind in model.columns.items()
    }
    assert row["properties"]["carrier"]["type"] == "string"
    invocations = document["paths"]["/invocations"]["post"]
    assert set(invocations["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert {"200", "400", "401", "413", "415", "422", "503"} <= set(invocations["responses"])
    assert invocations["security"] == [{"bearer": []}]
    assert document["info"]["version"] == model.info.version


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzed_requests_never_get_a_server_error(served_openapi, mode):
    """Requests generated from the document, fitting it (positive) and breaking it (negative), JSON
    and CSV, to every operation: never a 5xx, and every answer is one the document lists, in the
    shape it gives. (Requests without the token: test_token_auth_when_configured.)"""
    from hypothesis import given
    from hypothesis import strategies as st

    generation = schemathesis.GenerationMode(mode)
    operations = [found.ok() for found in served_openapi.get_all_operations()]
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    scored: list[int] = []  # the statuses /invocations answered

    @hypothesis_settings(max_examples=300, deadline=None, database=None)
    @given(case=st.one_of([operation.as_strategy(generation) for operation in operations]))
    def fuzz(case) -> None:
        response = case.call_and_validate(headers={"Authorization": "Bearer fuzz-token"}, checks=checks)
        if case.operation.label == "POST /invocations":
            scored.append(response.status_code)

    fuzz()
    # Both kinds reached the model's side: some rows were scored, and some refused with a 4xx.
    assert 200 in scored if mode == "positive" else any(400 <= s < 500 for s in scored), sorted(set(scored))


def test_the_array_path_predicts_exactly_what_the_pipeline_predicts(model_dir, landing_home):
    """Serving encodes on arrays (airloop.serving.arrays) only where that gives the pipeline's numbers."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from airloop.serving.arrays import array_predictor
    from airloop.serving.model import load_model_dir

    model = load_model_dir(model_dir)
    assert model.raw_predict != model.pipeline.predict_proba  # the array path is in use
    landed = pd.read_parquet(next((landing_home / "landing" / "flights").glob("date=*/*.parquet")))
    frame = landed[list(model.columns)].head(500).copy()
    frame.loc[frame.index[::7], "carrier"] = "ZZ"  # a carrier never seen in training
    frame.loc[frame.index[::11], "dest"] = None  # missing
    frame.loc[frame.index[::13], "temp"] = np.nan
    assert np.array_equal(model.raw_predict(frame), model.pipeline.predict_proba(frame))
    # Another shape of pipeline keeps its own predict_proba.
    other = make_pipeline(StandardScaler(), model.pipeline.steps[-1][1])
    assert array_predictor(other, model.example) is None
    assert array_predictor(model.pipeline, None) is None  # nothing to prove it on: not used

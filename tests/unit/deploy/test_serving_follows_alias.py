"""A server that follows `champion` (the compose `serving` service): promotions reach it without a
restart, and a version that cannot serve never takes the traffic.

Real MLflow registry (SQLite), real models: versions 1 and 2 are the same good model, 3 was
never fitted (it loads, and its warm-up prediction fails).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from airloop.registry.versions import ModelRegistry
from airloop.serving.app import ServingSettings, create_app
from airloop.serving.follow import AliasRef
from airloop.serving.inference_log import read_inference_log

TOKEN = "follow-test-token"


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def _predict(client: TestClient, body: bytes) -> int:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    return client.post("/invocations", content=body, headers=headers).status_code


def test_serving_follows_champion_and_refuses_a_version_that_cannot_serve(store, tmp_path):
    registry = ModelRegistry(store.model_name, tracking_uri=store.tracking_uri)
    registry.move_champion("1")
    versions = tmp_path / "versions"
    settings = ServingSettings(
        model_dir=versions,
        follow=f"models:/{store.model_name}@champion",
        follow_poll_seconds=0.1,
        tracking_uri=store.tracking_uri,
        inference_log_dir=tmp_path / "inference",
        token=TOKEN,
    )
    body = (store.model_dirs["1"] / "serving_input_example.json").read_bytes()
    rows = len(json.loads(body)["dataframe_split"]["data"])

    with TestClient(create_app(settings)) as client:

        def serving() -> str:
            return str(client.get("/version").json()["version"])

        assert client.get("/health").status_code == 200
        assert serving() == "1"
        assert client.get("/version").json()["alias"] == "champion"
        assert _predict(client, body) == 200

        registry.move_champion("2")  # a promotion, as the pipeline's promote step makes it
        _wait(lambda: serving() == "2", "version 2 serving after the alias moved to it")
        assert _predict(client, body) == 200
        assert sorted(p.name for p in versions.glob("v*")) == ["v1", "v2"]  # the one before stays, for a rollback

        registry.move_champion("3")  # a version that fails its warm-up
        _wait(lambda: "3" in client.get("/version").json()["follow"]["rejected"], "version 3 refused")
        follow = client.get("/version").json()["follow"]
        assert "fitted" in follow["rejected"]["3"]  # scikit-learn's NotFittedError, named
        assert serving() == "2"
        assert client.get("/health").status_code == 200
        assert _predict(client, body) == 200
        assert not (versions / "v3").exists()

        registry.move_champion("1")  # back to one it served before: from disk, no download needed
        _wait(lambda: serving() == "1", "version 1 serving again")
        assert sorted(p.name for p in versions.glob("v*")) == ["v1", "v2"]

    # Each answer was logged under the version that gave it.
    logged: dict[str, int] = {}
    today = dt.datetime.now(dt.UTC).date()
    for record in read_inference_log(
        tmp_path / "inference", today - dt.timedelta(days=1), today + dt.timedelta(days=1)
    ):
        logged[record["model_version"]] = logged.get(record["model_version"], 0) + 1
    assert logged == {"1": rows, "2": 2 * rows}


def test_serving_waits_for_an_alias_that_names_nothing_yet(store, tmp_path):
    settings = ServingSettings(
        model_dir=tmp_path / "versions",
        follow=f"models:/{store.model_name}@not-yet",
        follow_poll_seconds=0.1,
        tracking_uri=store.tracking_uri,
    )
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert f"waiting for models:/{store.model_name}@not-yet" in health.json()["reason"]
        ModelRegistry(store.model_name, tracking_uri=store.tracking_uri).client.set_registered_model_alias(
            store.model_name, "not-yet", "2"
        )
        _wait(lambda: client.get("/health").status_code == 200, "the alias's version serving once it names one")
        assert client.get("/version").json()["version"] == "2"


@pytest.mark.parametrize("uri", ["models:/flights", "models:/flights/3", "flights@champion", "models:/@champion"])
def test_only_an_alias_uri_can_be_followed(uri):
    with pytest.raises(ValueError, match="registry alias URI"):
        AliasRef.parse(uri)


def test_an_alias_uri_names_model_and_alias():
    ref = AliasRef.parse("models:/airloop-flights-delay@champion")
    assert (ref.name, ref.alias, str(ref)) == (
        "airloop-flights-delay",
        "champion",
        "models:/airloop-flights-delay@champion",
    )


def test_following_needs_no_download_of_a_version_already_there(tmp_path: Path, store):
    from airloop.serving.follow import AliasFollower

    follower = AliasFollower(AliasRef(store.model_name, "champion"), tmp_path, tracking_uri="http://127.0.0.1:9")
    dest = tmp_path / "v1"
    import shutil

    shutil.copytree(store.model_dirs["1"], dest)
    assert follower.fetch("1") == dest  # the unreachable registry is never asked

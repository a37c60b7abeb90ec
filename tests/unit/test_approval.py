"""What a reviewer is asked before a promotion, and what their answer leaves on the version."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from airloop.config import load_config
from airloop.data.snapshot import SnapshotManifest
from airloop.registry.approval import ApprovalAnswer, approval_request, needs_approval, record_answer
from airloop.registry.promotion import CandidateVersion, Evaluation
from airloop.registry.versions import ModelRegistry
from airloop.training.train import TrainResult
from tests.conftest import FLIGHTS_CONFIG

AT = dt.datetime(2026, 4, 15, 9, 30, tzinfo=dt.UTC)


def _config(approval: str = "required"):
    return load_config(FLIGHTS_CONFIG, {"promotion": {"approval": approval, "approval_timeout_hours": 12}})


def _evaluation(**changes) -> Evaluation:
    fields = dict(
        model_name="m",
        version="1",
        promote=True,
        reason="beats champion by >= 0.001: roc_auc 0.7012 vs champion v6 0.6900",
        metric="roc_auc",
        challenger_score=0.7012,
        champion_version="6",
        champion_score=0.69,
        rows=1234,
    )
    return Evaluation(**{**fields, **changes})


def _candidate() -> CandidateVersion:
    snapshot = SnapshotManifest(
        dataset="flights",
        snapshot_id="2026-04-08_2026-04-15",
        window_start=dt.date(2026, 4, 8),
        window_end=dt.date(2026, 4, 15),
        source="landing/flights",
        rows=6543,
        columns={},
        content_hash="abc",
        path=Path("/lake/snapshots/flights/2026-04-08_2026-04-15"),
    )
    train = TrainResult(mlflow_run_id="r1", model_uri="runs:/r1/model", metrics={"roc_auc": 0.7}, snapshot=snapshot)
    return CandidateVersion(model_name="m", version="1", train=train)


@pytest.mark.parametrize(
    ("approval", "evaluation", "asked"),
    [
        pytest.param("required", _evaluation(), True, id="a-winner-is-asked-about"),
        pytest.param("required", _evaluation(champion_version=None, champion_score=None), True, id="a-first-model"),
        pytest.param("required", _evaluation(promote=False), False, id="a-loser-changes-nothing-to-ask-about"),
        pytest.param("required", _evaluation(champion_version="1"), False, id="already-the-champion"),
        pytest.param("none", _evaluation(), False, id="not-wanted"),
    ],
)
def test_needs_approval(approval, evaluation, asked):
    assert needs_approval(_config(approval), evaluation) is asked


def test_the_question_shows_both_scores_on_the_same_rows_the_window_and_the_links():
    links = {"challenger v1: MLflow run": "http://mlflow/#/experiments/1/runs/r1"}
    request = approval_request(_config(), _evaluation(), _candidate(), run_reason="retraining (stale)", links=links)
    assert request.subject == "Promote m v1 to champion?"
    assert "roc_auc on the same 1,234 held-out rows: challenger v1 **0.7012**, champion v6 **0.6900** (+0.0112)." in (
        request.body
    )
    assert "Trained on 2026-04-08 to 2026-04-15 (end exclusive): 6,543 rows" in request.body
    assert "Why this run: retraining (stale)." in request.body
    assert "- [challenger v1: MLflow run](http://mlflow/#/experiments/1/runs/r1)" in request.body
    assert "no answer within 12 h: the champion keeps serving" in request.body
    assert request.timeout == dt.timedelta(hours=12)


def test_a_smaller_error_is_said_to_be_better():
    evaluation = _evaluation(metric="rmse", challenger_score=46.5, champion_score=47.7)
    request = approval_request(_config(), evaluation, _candidate(), run_reason=None, links={})
    assert "champion v6 **47.7000** (-1.2000; a smaller rmse is better)." in request.body


def test_a_first_model_is_asked_about_without_a_champion_score():
    first = _evaluation(champion_version=None, champion_score=None, rows=None)
    request = approval_request(_config(), first, _candidate(), run_reason=None, links={})
    assert "There is no champion yet: v1 scored roc_auc **0.7012**" in request.body
    assert "Why this run: not given." in request.body


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("m")
    client.create_model_version("m", source=str(tmp_path / "model"))
    return ModelRegistry("m", tracking_uri=uri)


@pytest.mark.parametrize(
    ("approved", "by", "verdict", "promote"),
    [
        pytest.param(True, "ana", "approved", True, id="approved"),
        pytest.param(False, "ana", "rejected", False, id="rejected"),
        pytest.param(False, None, "timed out", False, id="nobody-answered-in-time"),
    ],
)
def test_the_answer_and_who_gave_it_are_tagged_on_the_version(registry, approved, by, verdict, promote):
    after = record_answer(registry, _evaluation(), ApprovalAnswer(approved=approved, by=by, at=AT))
    tags = registry.tags("1")
    assert (tags["approval"], tags["approval.by"], tags["approval.at"]) == (verdict, by or "nobody", AT.isoformat())
    assert after.promote is promote
    if not promote:
        assert tags["promotion.decision"] == "rejected"
        assert tags["promotion.reason"].startswith(f"{verdict} in review")
        assert after.reason == tags["promotion.reason"]
    else:
        assert "promotion.decision" not in tags  # decided once it proved servable

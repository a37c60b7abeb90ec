"""A person's approval before a winning challenger takes traffic (`promotion.approval: required`).

What the request says (both scores on the same rows, the data window, why the run started, links
to the MLflow runs) and what the answer leaves on the version. Who asks and how the answer comes
back (Airflow's human-in-the-loop step) is the plugin's business.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pydantic import BaseModel

from airloop.config import PipelineConfig
from airloop.registry.promotion import CandidateVersion, Evaluation

if TYPE_CHECKING:
    from airloop.registry.versions import ModelRegistry

APPROVE = "Approve"  # the options of Airflow's ApprovalOperator
REJECT = "Reject"


class ApprovalRequest(BaseModel):
    """What a reviewer is asked, and how long the question stays open."""

    subject: str
    body: str  # Markdown, as Airflow's Required Actions view renders it
    timeout: dt.timedelta


class ApprovalAnswer(BaseModel):
    approved: bool
    by: str | None  # None: nobody answered in time
    at: dt.datetime

    @property
    def verdict(self) -> str:
        if self.approved:
            return "approved"
        return "rejected" if self.by else "timed out"


def why_not_asked(config: PipelineConfig, evaluation: Evaluation) -> str | None:
    """Why no one is asked about this evaluation, or None when someone must approve it."""
    if not evaluation.promote:
        return "the challenger does not replace the champion"
    if evaluation.champion_version == evaluation.version:
        return "it is already the champion"
    if config.promotion.approval != "required":
        return "promotion.approval is none"
    return None


def needs_approval(config: PipelineConfig, evaluation: Evaluation) -> bool:
    """Only a challenger about to replace the champion is asked about, and only when the pipeline wants it."""
    return why_not_asked(config, evaluation) is None


def approval_request(
    config: PipelineConfig,
    evaluation: Evaluation,
    candidate: CandidateVersion,
    *,
    run_reason: str | None,
    links: dict[str, str],
) -> ApprovalRequest:
    """The question put to a reviewer, with what they need to answer it."""
    from airloop.tasks import greater_is_better

    name, metric = evaluation.model_name, evaluation.metric
    snapshot = candidate.train.snapshot
    hours = config.promotion.approval_timeout_hours
    if evaluation.champion_version is None or evaluation.champion_score is None:
        scores = (
            f"There is no champion yet: v{evaluation.version} scored {metric} "
            f"**{evaluation.challenger_score:.4f}** on its held-out rows."
        )
    else:
        margin = evaluation.challenger_score - evaluation.champion_score
        rows = f"the same {evaluation.rows:,} held-out rows" if evaluation.rows else "the same held-out rows"
        scores = (
            f"{metric} on {rows}: challenger v{evaluation.version} **{evaluation.challenger_score:.4f}**, "
            f"champion v{evaluation.champion_version} **{evaluation.champion_score:.4f}** ({margin:+.4f}"
            + ("" if greater_is_better(metric) else f"; a smaller {metric} is better")
            + ")."
        )
    paragraphs = [
        scores,
        f"Evaluation: {evaluation.reason}.",
        f"Trained on {snapshot.window_start} to {snapshot.window_end} (end exclusive): "
        f"{snapshot.rows:,} rows, snapshot `{snapshot.snapshot_id}`.",
        f"Why this run: {run_reason or 'not given'}.",
    ]
    if links:
        paragraphs.append("\n".join(f"- [{label}]({url})" for label, url in links.items()))
    paragraphs.append(
        f"**{APPROVE}**: v{evaluation.version} is deployed to the candidate slot and checked, then takes "
        f"traffic and `champion`. **{REJECT}**, or no answer within {hours:g} h: the champion keeps serving."
    )
    return ApprovalRequest(
        subject=f"Promote {name} v{evaluation.version} to champion?",
        body="\n\n".join(paragraphs),
        timeout=dt.timedelta(hours=hours),
    )


def record_answer(registry: ModelRegistry, evaluation: Evaluation, answer: ApprovalAnswer) -> Evaluation:
    """Tag the answer and who gave it on the version; a rejection is the promotion's decision."""
    registry.record_approval(evaluation.version, answer.verdict, answer.by, answer.at)
    if answer.approved:
        return evaluation
    reason = f"{answer.verdict} in review ({answer.by or 'no answer in time'}); {evaluation.reason}"
    evaluation.decided("rejected", registry, reason=reason)
    return evaluation.model_copy(update={"promote": False, "reason": reason})

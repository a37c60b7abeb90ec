"""Operators for the closed loop, in the provider style.

`TriggerTrainingOperator` lives apart, in :mod:`airloop_airflow.trigger_training`: its base class
costs a quarter of a second to import, which only the retraining DAG's parse should pay.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


class ApprovePromotionOperator(ApprovalOperator):
    """A person approves a winning challenger before it takes traffic, when the pipeline asks for it.

    Airflow's `ApprovalOperator`, asked only when the `evaluate` task's challenger would replace the
    champion and `promotion.approval` is `required` (or the run's Param `require_approval`): the
    question (both scores on the same rows, the data window, the run's reason, MLflow links) is
    built at run time, waits in Required Actions without a worker slot, and times out to Reject.
    The answer and who gave it are tagged on the version; Reject skips `deploy_and_promote`, so
    alias and traffic stay on the champion. Otherwise it succeeds at once and says why.
    """

    def __init__(self, **kwargs: Any) -> None:
        # The wait is bounded by `promotion.approval_timeout_hours` (the response timeout), not by
        # the DAG's execution timeout, which HITLOperator would otherwise take for it, with a warning.
        kwargs["execution_timeout"] = None
        kwargs.setdefault("response_timeout", dt.timedelta(hours=24))  # the config's default; set per run
        super().__init__(
            subject="Promote the challenger to champion?",  # replaced by the run's own question
            defaults=ApprovalOperator.REJECT,  # what a timeout answers
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        from airloop_airflow import stages

        request = stages.approval_request(context)
        if request is None:
            return {"approval": "not asked"}
        self.subject, self.body, self.response_timeout = request.subject, request.body, request.timeout
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from airloop_airflow import stages

        if "error" not in event:
            user = event.get("responded_by_user") or {}  # {"id", "name"}; None when nobody answered in time
            by = (user.get("name") or user.get("id")) if isinstance(user, dict) else getattr(user, "name", None)
            stages.record_approval(context, event["chosen_options"][0], by, event["responded_at"])
        return super().execute_complete(context, event)

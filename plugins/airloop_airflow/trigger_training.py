"""The retraining DAG's trigger of a training run."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator


class TriggerTrainingOperator(TriggerDagRunOperator):
    """`TriggerDagRunOperator` whose run note is templated too, so the reason a run was started
    (known only at run time) is what the UI shows on it."""

    template_fields: Sequence[str] = (*TriggerDagRunOperator.template_fields, "note")

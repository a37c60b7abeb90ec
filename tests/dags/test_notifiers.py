"""AirloopNotifier: a failure alert says what failed and why, as a DAG's callback and a task's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airloop.monitoring.alerts import read_alerts
from airloop_airflow import notifiers
from airloop_airflow.notifiers import FAILURE_KEY, AirloopNotifier, fail_with_reason, record_failure

RUN = SimpleNamespace(dag_id="airloop_flights_training", run_id="manual__1")
LOG_URL = "http://airflow.test/dags/airloop_flights_training/runs/manual__1/tasks/validate?try_number=1"


class FakeTaskInstance:
    """A task instance's XComs in memory; `broken` makes reading them fail."""

    def __init__(self, task_id: str = "validate", *, broken: bool = False) -> None:
        self.task_id = task_id
        self.log_url = LOG_URL
        self.xcoms: dict[tuple[str, str], object] = {}
        self.broken = broken

    def xcom_push(self, key: str, value: object) -> None:
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str) -> object:
        if self.broken:
            raise ConnectionError("the supervisor did not answer")
        return self.xcoms.get((task_ids, key))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRLOOP_HOME", str(tmp_path))
    return tmp_path


def _dag_callback_context(ti: FakeTaskInstance) -> dict:
    # What the dag-processor hands a DAG's on_failure_callback: the failed task, no exception.
    return {"dag_run": RUN, "run_id": RUN.run_id, "ti": ti, "reason": "task_failure"}


def test_a_dag_alert_carries_the_reason_its_failed_task_recorded(home, monkeypatch):
    ti = FakeTaskInstance()
    monkeypatch.setattr(notifiers, "get_current_context", lambda: {"ti": ti})
    reason = "data validation failed: expect_column_values_to_not_be_null(carrier): 25 of 7000 rows"
    with pytest.raises(AirflowFailException, match="expect_column_values_to_not_be_null"):
        fail_with_reason("flights batch 2026-03-15_2026-03-22 quarantined", ValueError(reason))
    assert ti.xcoms[("validate", FAILURE_KEY)]["detail"] == reason

    AirloopNotifier().notify(_dag_callback_context(ti))
    (alert,) = read_alerts(home)
    assert alert.title == "flights batch 2026-03-15_2026-03-22 quarantined"
    assert alert.detail == reason
    assert alert.context == {"dag_id": "airloop_flights_training", "run_id": "manual__1", "task_id": "validate"}


def test_a_retried_failure_is_recorded_and_raised_as_it_was(monkeypatch):
    ti = FakeTaskInstance("deploy")
    monkeypatch.setattr(notifiers, "get_current_context", lambda: {"ti": ti})
    record_failure("deploy of the champion failed", RuntimeError("smoke test: HTTP 500"))
    assert ti.xcoms[("deploy", FAILURE_KEY)] == {
        "title": "deploy of the champion failed",
        "detail": "smoke test: HTTP 500",
    }


@pytest.mark.parametrize(
    ("context", "ti", "title", "detail"),
    [
        pytest.param(
            {"reason": "task_failure"},
            FakeTaskInstance(),
            "airloop_flights_training.validate failed",
            f"task_failure: see the log of task validate at {LOG_URL}",
            id="dag-callback-nothing-recorded",
        ),
        pytest.param(
            {"reason": "task_failure"},
            FakeTaskInstance(broken=True),
            "airloop_flights_training.validate failed",
            f"task_failure: see the log of task validate at {LOG_URL}",
            id="dag-callback-xcom-unreadable",
        ),
        pytest.param(
            {"exception": TimeoutError("train took longer than 1:00:00")},
            FakeTaskInstance("train"),
            "airloop_flights_training.train failed",
            "train took longer than 1:00:00",
            id="task-callback-exception",
        ),
        pytest.param(
            {"reason": "timed_out"},
            None,
            "airloop_flights_training run failed",
            "timed_out; see the run in the Airflow UI",
            id="dag-callback-no-task",
        ),
    ],
)
def test_without_a_recorded_reason_the_alert_says_where_to_look(home, context, ti, title, detail):
    AirloopNotifier().notify({"dag_run": RUN, "ti": ti, **context})
    (alert,) = read_alerts(home)
    assert (alert.title, alert.detail) == (title, detail)


def test_an_explicit_title_and_detail_win(home):
    ti = FakeTaskInstance(broken=True)  # not even read
    AirloopNotifier(title="model degraded", detail="ROC AUC 0.58 < 0.61").notify({"dag_run": RUN, "ti": ti})
    (alert,) = read_alerts(home)
    assert (alert.title, alert.detail) == ("model degraded", "ROC AUC 0.58 < 0.61")

"""The floods quiet_library_noise stops, and the warnings and log lines it must leave alone."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator

import pytest
from sklearn.exceptions import UndefinedMetricWarning

from airloop.quiet_logs import (
    CHATTY_LOGGERS,
    LIBRARY_DEFAULTS,
    MLFLOW_LOGGERS,
    ToRootHandlers,
    WarningsAndAbove,
    mlflow_logs_at_their_level,
    printed_as_log,
    quiet_library_noise,
)

SHIM_WARNING = "The `airflow.utils.timezone.xlogy` attribute is deprecated. Please use `'airflow.sdk.timezone.xlogy'`."


@pytest.fixture
def undone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever quiet_library_noise() does in the test is undone after it."""
    for key in LIBRARY_DEFAULTS:
        monkeypatch.setenv(key, "unset")  # recorded, so the teardown restores the real state
        monkeypatch.delenv(key)
    with warnings.catch_warnings():
        yield
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, WarningsAndAbove)]:
            logger.removeFilter(f)


@pytest.fixture
def quiet(undone: None) -> None:
    quiet_library_noise()


def _shown(message: str, category: type[Warning], module: str) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_noise()  # its filters go in front of "always", as in a task they go in front of Airflow's
        warnings.warn_explicit(message, category, f"/site-packages/{module.replace('.', '/')}.py", 70, module=module)
    return bool(caught)


@pytest.mark.parametrize(
    ("message", "category", "module", "shown"),
    [
        pytest.param(SHIM_WARNING, FutureWarning, "skops.io._utils", False, id="skops-probes-a-shim"),
        pytest.param(
            "The `airflow.utils.entry_points.xlogy` is deprecated and will be removed in a future version.",
            FutureWarning,
            "skops.io._utils",
            False,
            id="skops-probes-a-shim-other-wording",
        ),
        pytest.param(SHIM_WARNING, FutureWarning, "airloop.monitoring.monitor", True, id="our-own-use-of-a-shim"),
        pytest.param(SHIM_WARNING, FutureWarning, "skops.io._utils_extra", True, id="another-module-of-that-name"),
        pytest.param("numpy.core is deprecated", FutureWarning, "skops.io._utils", True, id="skops-other-warning"),
        pytest.param(
            "The specified dataset source can be interpreted in multiple ways: LocalArtifactDatasetSource, "
            "LocalArtifactDatasetSource. MLflow will assume that this is a LocalArtifactDatasetSource source.",
            UserWarning,
            "mlflow.data.pandas_dataset",
            False,
            id="mlflow-local-source-twice",
        ),
        pytest.param(
            "The specified dataset source can be interpreted in multiple ways: LocalArtifactDatasetSource, "
            "HTTPDatasetSource. MLflow will assume that this is a HTTPDatasetSource source.",
            UserWarning,
            "mlflow.data.pandas_dataset",
            True,
            id="mlflow-truly-ambiguous-source",
        ),
        pytest.param(
            "Hint: Inferred schema contains integer column(s). Integer columns in Python cannot represent "
            "missing values.",
            UserWarning,
            "mlflow.types.utils",
            False,
            id="mlflow-integer-hint-on-logged-data",
        ),
        pytest.param(
            "Hint: Inferred schema contains integer column(s).",
            UserWarning,
            "airloop.training.train",
            True,
            id="the-same-words-from-elsewhere",
        ),
    ],
)
def test_only_the_named_floods_are_dropped(undone, message, category, module, shown):
    assert _shown(message, category, module) is shown


def test_skops_probing_every_module_for_a_ufunc_no_longer_warns_through_airflow_shims(undone):
    pytest.importorskip("airflow")
    import airflow.utils  # noqa: F401 - registers the shim modules (airflow.utils.timezone, ...)
    import numpy as np

    with warnings.catch_warnings():
        quiet_library_noise()  # importing skops probes every module for each of scipy's ufuncs
        from skops.io._utils import whichmodule

    # A ufunc has no __module__: skops asks every loaded module for its name. This one is nowhere,
    # so every module is asked, Airflow's shims too, whatever order this process imported them in.
    ufunc = np.frompyfunc(lambda x: x, 1, 1)

    def probe(*, quieted: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if quieted:
                quiet_library_noise()
            assert whichmodule(ufunc, "airloop_probe") == "__main__"
        return [str(w.message) for w in caught if "airflow" in str(w.message)]

    assert any("airflow.utils.timezone.airloop_probe` attribute is deprecated" in m for m in probe(quieted=False))
    assert probe(quieted=True) == []


def test_a_chatty_logger_keeps_its_warnings_and_loses_its_info(quiet, caplog):
    caplog.set_level(logging.INFO)
    gx = logging.getLogger("great_expectations._docs_decorators")
    gx.setLevel(logging.INFO)  # GX sets some of its levels itself on import: a filter still holds
    gx.info("Skipping registering function f.<locals>.g because it is a closure")
    gx.warning("a real warning")
    logging.getLogger("airloop.training.train").info("fitting on 100 rows")
    assert [r.getMessage() for r in caplog.records] == ["a real warning", "fitting on 100 rows"]


def test_progress_bars_are_off_unless_chosen(quiet):
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"


def test_calling_it_again_adds_nothing(quiet):
    filters = list(warnings.filters)
    quiet_library_noise()
    assert warnings.filters == filters
    for name in CHATTY_LOGGERS:
        assert sum(isinstance(f, WarningsAndAbove) for f in logging.getLogger(name).filters) == 1


def test_library_defaults_leave_a_choice_already_made(undone, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    quiet_library_noise()
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"


@pytest.mark.parametrize(
    ("message", "category", "module", "shown"),
    [
        pytest.param(
            "invalid value encountered in scalar divide", RuntimeWarning, "evidently.core.datasets", False, id="0/0"
        ),
        pytest.param(
            "invalid value encountered in scalar divide", RuntimeWarning, "airloop.tasks", True, id="0/0-of-ours"
        ),
        pytest.param(
            "invalid value encountered in divide",
            RuntimeWarning,
            "numpy.lib._function_base_impl",
            False,
            id="correlation-of-a-constant-column",
        ),
        pytest.param(
            "R^2 score is not well-defined with less than two samples.",
            UndefinedMetricWarning,
            "sklearn.metrics._regression",
            False,
            id="r2-of-a-one-row-bin",
        ),
        pytest.param("Evidently is deprecated", FutureWarning, "evidently.core.datasets", True, id="anything-else"),
    ],
)
def test_evidently_s_arithmetic_is_quiet_only_while_a_report_is_computed(undone, message, category, module, shown):
    from airloop.quiet_logs import quiet_evidently

    def warn() -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_evidently():
                warnings.warn_explicit(message, category, f"/{module.replace('.', '/')}.py", 1, module=module)
        return bool(caught)

    assert warn() is shown
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        warnings.warn_explicit(message, category, f"/{module.replace('.', '/')}.py", 1, module=module)
    assert outside  # the filters end with the report


@pytest.fixture
def mlflow_loggers() -> Iterator[None]:
    """MLflow's loggers as its import left them, put back after the test."""
    import mlflow  # noqa: F401  (configures its loggers on import)

    saved = {name: list(logging.getLogger(name).handlers) for name in MLFLOW_LOGGERS}
    yield
    for name, handlers in saved.items():
        logging.getLogger(name).handlers = handlers


def test_mlflow_s_info_is_logged_at_info_not_printed_to_stderr(mlflow_loggers, tmp_path, capsys, caplog):
    """A task logs its stderr at error level, where MLflow's own handler wrote its INFO lines."""
    import mlflow

    caplog.set_level(logging.INFO)
    mlflow_logs_at_their_level()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    capsys.readouterr()
    mlflow.set_experiment("airloop-new")
    assert "does not exist" not in capsys.readouterr().err
    said = [(r.name, r.levelno) for r in caplog.records if "Experiment with name 'airloop-new'" in r.getMessage()]
    assert said == [("mlflow.tracking.fluent", logging.INFO)]


def test_mlflow_s_levels_stay_as_mlflow_set_them(mlflow_loggers, caplog):
    caplog.set_level(logging.DEBUG)
    mlflow_logs_at_their_level()
    mlflow_logs_at_their_level()  # again: nothing more
    engine = logging.getLogger("sqlalchemy.engine")
    engine.info("SELECT 1")  # not logged: MLflow keeps SQLAlchemy's statements below WARNING
    engine.warning("a real warning")
    assert [r.getMessage() for r in caplog.records if r.name == "sqlalchemy.engine"] == ["a real warning"]
    for name in MLFLOW_LOGGERS:
        assert [type(h) for h in logging.getLogger(name).handlers] == [ToRootHandlers]


def test_what_a_block_prints_to_stderr_is_logged_line_by_line(capsys, caplog):
    import sys

    caplog.set_level(logging.INFO)
    logger = logging.getLogger("airloop.registry.promotion")

    def register() -> None:
        print("Registered model 'm' already exists. Creating a new version of this model...", file=sys.stderr)
        print("Created version '3' of model 'm'.\n", file=sys.stderr)
        raise RuntimeError("registration failed after printing")

    with pytest.raises(RuntimeError), printed_as_log(logger):
        register()
    assert capsys.readouterr().err == ""
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "Registered model 'm' already exists. Creating a new version of this model..."),
        (logging.INFO, "Created version '3' of model 'm'."),
    ]

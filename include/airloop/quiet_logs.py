"""Task logs a person can read: stop the libraries' known floods, and nothing else.

Each entry below names one flood, what causes it and the narrowest filter that stops it. Any
other warning, and whatever the named loggers say at WARNING or above, stays in the log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from typing import NamedTuple


class IgnoredWarning(NamedTuple):
    """A `warnings` filter: `message` and `module` are regular expressions matched from the start."""

    message: str
    category: type[Warning]
    module: str = ""


IGNORED_WARNINGS = (
    # skops (MLflow's scikit-learn format) lists scipy's ufuncs when it is imported, finding each
    # one's module by `getattr` on every loaded module. Airflow's compatibility shims
    # (`airflow.utils.timezone` and four more) answer any name with a DeprecatedImportWarning (a
    # FutureWarning, which skops does not silence): 232 ufuncs x 5 shims, about 1,160 lines in
    # each task that saves or loads a model. Only warnings raised from skops's probe are dropped.
    IgnoredWarning(r"The `airflow\.[\w.]+` (attribute )?is deprecated", FutureWarning, r"skops\.io\._utils\Z"),
    # MLflow registers its local artifact source twice (for "" and "file:"), so every local path
    # is "ambiguous" between a class and itself. Two different candidates still warn.
    IgnoredWarning(
        r"The specified dataset source can be interpreted in multiple ways: "
        r"LocalArtifactDatasetSource, LocalArtifactDatasetSource\.",
        UserWarning,
    ),
    # Training logs its training and held-out rows as `mlflow.data` inputs, whose schema MLflow
    # infers from the raw snapshot (flights' `year`, `month`... are integers) and then advises
    # against integer columns, once per input of every train task. That schema only describes
    # the logged data; the model's signature, which serving enforces, is inferred from the
    # features as trained (`feature_frame` makes numeric features float64), never integers.
    IgnoredWarning(r"\s*Hint: Inferred schema contains integer column\(s\)", UserWarning, r"mlflow\.types\.utils\Z"),
)

#: Loggers that talk about the library itself at INFO; only their WARNING and above is kept.
CHATTY_LOGGERS = (
    "great_expectations._docs_decorators",  # "Skipping registering function ... closure", ~200 on import
    "great_expectations.expectations.registry",  # "Multiple declarations of metric ..." on import
    "great_expectations.data_context.types.base",  # "Created temporary directory ... docs site"
    "great_expectations.datasource.fluent.config",  # "Loading 'datasources' -> []"
    "mlflow.store.model_registry.abstract_store",  # "Waiting up to 300 seconds for model version ..."
)

#: Library switches set unless the environment already chose: a progress bar redrawn with
#: carriage returns is one unreadable line in a log file.
LIBRARY_DEFAULTS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


class WarningsAndAbove(logging.Filter):
    """Passes records at WARNING or above. A filter, not a level: GX sets some levels on import."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_library_noise() -> None:
    """Stop the floods named in this module in this process; calling it again changes nothing."""
    for ignored in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", ignored.message, ignored.category, ignored.module)
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, WarningsAndAbove) for f in logger.filters):
            logger.addFilter(WarningsAndAbove())
    for key, value in LIBRARY_DEFAULTS.items():
        os.environ.setdefault(key, value)


#: The loggers MLflow configures on import: the level it sets stays, its stderr handler goes.
MLFLOW_LOGGERS = ("mlflow", "sqlalchemy.engine", "alembic", "huey")


class ToRootHandlers(logging.Handler):
    """Hands each record to the root logger's handlers, filtered as the handlers it stands in for."""

    def __init__(self, replaced: list[logging.Handler]) -> None:
        super().__init__()
        self.filters = [f for handler in replaced for f in handler.filters]  # MLflow's silences its telemetry

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


def mlflow_logs_at_their_level() -> None:
    """Log MLflow's records through this process's root handlers, each at its own level.

    On import MLflow gives its loggers (and SQLAlchemy's engine, Alembic's) a handler of its own
    that writes to stderr, and stops them propagating. An Airflow task logs its process's stderr
    at error level, so MLflow's INFO ("Experiment with name ... does not exist. Creating a new
    experiment") showed as an error in a task that succeeded. The levels MLflow chose stay:
    `MLFLOW_CONFIGURE_LOGGING=false` would drop them too, and SQLAlchemy would log every
    statement at INFO. Imports MLflow when this process has not yet (a task started cold), so
    that a later import cannot put its handler back. Calling it again changes nothing.
    """
    import mlflow  # noqa: F401  (configures its loggers on import)

    for name in MLFLOW_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers and [type(h) for h in logger.handlers] != [ToRootHandlers]:
            logger.handlers = [ToRootHandlers(logger.handlers)]


@contextlib.contextmanager
def printed_as_log(logger: logging.Logger, level: int = logging.INFO) -> Iterator[None]:
    """Log, one record a line at `level`, what the block prints to stderr.

    For MLflow's notices printed with `eprint` ("Created version '3' of model ..."), which an
    Airflow task would log at error level. Whatever the block printed is logged even if it raises.
    """
    with contextlib.redirect_stderr(io.StringIO()) as printed:
        try:
            yield
        finally:
            for line in printed.getvalue().splitlines():
                if line.strip():
                    logger.log(level, "%s", line.strip())


#: What Evidently's own reports warn about that says nothing to a reader of the task log, only
#: while a report is computed (`quiet_evidently`):
EVIDENTLY_WARNINGS = (
    # The share of infinite values of a column with no value at all (wind_gust on a calm day):
    # 0 / 0, in the data summary's statistics of every window that has such a column.
    IgnoredWarning(r"invalid value encountered in scalar divide", RuntimeWarning, r"evidently\."),
    # The drift preset's correlation matrix of the numeric columns (numpy's corrcoef), which the
    # report shows and no test reads: a column with a single value in a quiet window of a few rows
    # has a standard deviation of 0, and each such window logged pairs of these.
    IgnoredWarning(r"invalid value encountered in divide", RuntimeWarning, r"numpy\.lib\._function_base_impl\Z"),
    # RegressionPreset's error by target bin computes R² in each bin; a bin of a heavy-tailed
    # label (a few flights hours late) may hold one row. Airloop's own R² is computed apart.
    IgnoredWarning(r"R\^2 score is not well-defined with less than two samples", UserWarning),
)


@contextlib.contextmanager
def quiet_evidently() -> Iterator[None]:
    """Compute Evidently reports without `EVIDENTLY_WARNINGS`; any other warning still shows."""
    with warnings.catch_warnings():
        for ignored in EVIDENTLY_WARNINGS:
            warnings.filterwarnings("ignore", ignored.message, ignored.category, ignored.module)
        yield

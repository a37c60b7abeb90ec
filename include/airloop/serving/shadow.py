"""A shadow challenger served beside the champion: a copy of each live request, scored off the request path.

The server watches a folder for a model (an MLflow model directory, put there whole by a rename);
while one is there, every request the champion answered is handed to one background thread that
scores it with the shadow model and logs its predictions under the same request id in the
shadow's own inference log. The client never sees them, and the champion's answer never waits
for them: when the thread falls `max_pending` requests behind, copies are dropped and counted.
A shadow model that fails to load or to predict is logged and counted; the champion keeps serving.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from airloop.serving.inference_log import InferenceLog
from airloop.serving.model import ServingModel, load_model_dir, read_model_info
from airloop.serving.rows import Rows

log = logging.getLogger(__name__)


class ShadowScorer:
    """The shadow slot of one server: its model (if any), its inference log and its one worker thread."""

    def __init__(self, model_dir: Path, log_dir: Path, *, max_pending: int = 64) -> None:
        self.model_dir = Path(model_dir)
        self.log_dir = Path(log_dir)
        self.max_pending = max_pending
        self.model: ServingModel | None = None
        self.problem: str | None = None  # why the folder's model is not shadowing, if one is there
        self.scored = 0  # requests scored and logged
        self.dropped = 0  # copies dropped because the worker was behind
        self.failed = 0  # copies the shadow model could not score
        self._log: InferenceLog | None = None
        self._loaded_from: tuple[str, str, float] | None = None  # (name, version, MLmodel mtime)
        self._pending = 0
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airloop-shadow")

    @property
    def version(self) -> str | None:
        return self.model.info.version if self.model else None

    def refresh(self) -> None:
        """Load the folder's model if it is new, or stop shadowing when the folder is empty. Never raises."""
        try:
            self._refresh()
        except Exception as err:  # noqa: BLE001 - a slot caught mid-swap is looked at again next poll
            self.problem = f"shadow slot {self.model_dir} unreadable: {type(err).__name__}: {err}"
            log.warning("%s", self.problem)

    def _refresh(self) -> None:
        mlmodel = self.model_dir / "MLmodel"
        info = read_model_info(self.model_dir) if mlmodel.is_file() else None
        if info is None:
            if self.model is not None:
                log.info("shadow v%s removed: no shadow model now", self.model.info.version)
            self._swap(None, None, None)
            self.problem = None
            return
        identity = (info.name, info.version, mlmodel.stat().st_mtime)
        if identity == self._loaded_from:
            return
        try:
            model = load_model_dir(self.model_dir)
            if model.example is not None:
                model.predict(model.example)  # the same warm-up the champion passes
        except Exception as err:  # noqa: BLE001 - a bad shadow never touches the champion
            self.problem = f"shadow {info.name} v{info.version} not loaded: {type(err).__name__}: {err}"
            log.warning("%s", self.problem)
            self._swap(None, None, identity)
            return
        shadow_log = InferenceLog(self.log_dir, model_name=model.info.name, model_version=model.info.version)
        self._swap(model, shadow_log, identity)
        self.problem = None
        log.info("shadowing with %s v%s: a copy of each request is scored and logged", info.name, info.version)

    def submit(self, request_id: str, at: dt.datetime, rows: Rows) -> bool:
        """Hand a copy of an answered request to the worker; False if there is no shadow or it is behind."""
        with self._lock:  # held while queueing, so a swap's close of the old log queues after this copy
            model, shadow_log = self.model, self._log
            if model is None or shadow_log is None:
                return False
            if self._pending >= self.max_pending:
                self.dropped += 1
                return False
            self._pending += 1
            self._worker.submit(self._score, model, shadow_log, request_id, at, rows)
        return True

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until the copies handed over so far are scored (a test, or a clean shutdown)."""
        self._worker.submit(lambda: None).result(timeout=timeout)

    def state(self) -> dict[str, object]:
        """What `GET /version` says about the shadow slot."""
        info = self.model.info.as_dict() if self.model else None
        counts = {"scored": self.scored, "dropped": self.dropped, "failed": self.failed}
        return {"model": info, "problem": self.problem, **counts}

    def close(self) -> None:
        self._swap(None, None, None)
        self._worker.shutdown(wait=True)

    def _score(
        self, model: ServingModel, shadow_log: InferenceLog, request_id: str, at: dt.datetime, rows: Rows
    ) -> None:
        try:
            labels, proba = model.predict(rows)
            shadow_log.append(request_id, at, rows, labels, model.score_of(labels, proba))
            outcome = "scored"
        except Exception:
            log.exception("shadow v%s could not score request %s", model.info.version, request_id)
            outcome = "failed"
        with self._lock:
            self._pending -= 1
            if outcome == "scored":
                self.scored += 1
            else:
                self.failed += 1

    def _swap(
        self, model: ServingModel | None, shadow_log: InferenceLog | None, identity: tuple[str, str, float] | None
    ) -> None:
        with self._lock:
            old = self._log
            self.model, self._log, self._loaded_from = model, shadow_log, identity
            if old is not None and old is not shadow_log:
                self._worker.submit(old.close)  # after the copies already queued for it

"""Where monitoring keeps its state under the state folder, per pipeline (on `airloop.state.StateLayout`)."""

from __future__ import annotations

from pathlib import Path

from airloop.config import PipelineConfig
from airloop.monitoring.window import MonitoringWindow
from airloop.serving import SHADOW_LOG_DIR, SHADOW_SLOT_DIR
from airloop.settings import AirloopSettings


class MonitoringPaths:
    """Monitoring's folders and files for one pipeline (windows, signals, ledger, model caches, scrapes)."""

    def __init__(self, settings: AirloopSettings, config: PipelineConfig) -> None:
        root = settings.state.monitoring
        self.windows = root / "windows" / config.model_name
        # Each pipeline's own: one pipeline's signal never retrains another, nor counts against its guards.
        self.signals = root / "signals" / config.model_name
        self.alerted = self.signals / "alerted"  # one marker per (served version, reason) already alerted
        self.ledger = root / "retraining" / f"{config.model_name}.jsonl"
        self.models = root / "models" / config.model_name
        self.serving = root / "serving" / config.model_name  # the endpoint's health per window, and its scrapes
        self.serving_scrapes = self.serving / "scrapes.jsonl"
        self.inference = settings.state.inference
        # A shadowing challenger's model (what serving watches) and its log, beside the inference log.
        self.shadow_slot = self.inference / SHADOW_SLOT_DIR / config.model_name
        self.shadow_inference = self.inference / SHADOW_LOG_DIR
        labels = config.monitoring.labels_path
        self.labels = settings.state.resolve(labels)
        self.workspace = settings.state.evidently_workspace
        self.workspace_lock = settings.state.evidently_lock

    def model_dir(self, version: str) -> Path:
        """Where version `version`'s model is fetched once (see airloop.serving.model.cached_model)."""
        return self.models / f"v{version}"

    def window_dir(self, window: MonitoringWindow) -> Path:
        return self.windows / window.id

    def report(self, window: MonitoringWindow, name: str) -> Path:
        """Evidently's report `name` (drift, performance) of the window, as HTML; its JSON beside it."""
        return self.window_dir(window) / f"{name}.html"

    def serving_health(self, window: MonitoringWindow) -> Path:
        """The endpoint's health in the window (kept apart from the window's folder, which a recompute replaces)."""
        return self.serving / f"{window.id}.json"

"""Serving that follows a registry alias (`models:/name@champion`): a promotion reaches it without a restart.

Every poll the alias is read from the MLflow registry. When it names a version other than the
one serving, that version is downloaded beside it (`<root>/v<version>`); the server then loads it
and runs the same warm-up prediction a starting server must pass (its health gate) before it
takes the traffic. A version that fails stays rejected, with the reason on `GET /version`, and
the one serving keeps serving. Only the serving version and the one before it stay on disk.

MLflow is imported here only when a follower is configured (the compose `serving` service); the
serving image of the Docker and Kubernetes targets carries one fixed version and no MLflow.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from airloop.serving.model import fetch_model, read_model_info

log = logging.getLogger(__name__)

INCOMING = ".incoming"  # a download in progress; renamed to v<version> once complete


@dataclass(frozen=True)
class AliasRef:
    """A registered model's alias, as in `models:/name@alias`."""

    name: str
    alias: str

    @classmethod
    def parse(cls, uri: str) -> AliasRef:
        name, at, alias = uri.removeprefix("models:/").partition("@")
        if not uri.startswith("models:/") or not at or not name or not alias or "/" in name + alias:
            raise ValueError(f"{uri!r} is not a registry alias URI like models:/<name>@champion")
        return cls(name, alias)

    def __str__(self) -> str:
        return f"models:/{self.name}@{self.alias}"


@dataclass
class AliasFollower:
    """Where the alias points, and the download of each version it names into `root`."""

    ref: AliasRef
    root: Path
    tracking_uri: str | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # version -> why it cannot serve

    def named_version(self) -> str:
        """The version the alias names now (raises while there is none, or the registry is unreachable)."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        return str(client.get_model_version_by_alias(self.ref.name, self.ref.alias).version)

    def fetch(self, version: str) -> Path:
        """`<root>/v<version>`, downloaded unless a complete copy is there already."""
        dest = self.root / f"v{version}"
        if read_model_info(dest) is not None:
            return dest
        incoming = self.root / INCOMING
        shutil.rmtree(incoming, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        # By number, not by alias: the alias may move again while this downloads.
        uri = f"models:/{self.ref.name}/{version}"
        fetch_model(uri, incoming, tracking_uri=self.tracking_uri, alias=self.ref.alias)
        shutil.rmtree(dest, ignore_errors=True)
        incoming.rename(dest)
        log.info("downloaded %s version %s into %s", self.ref.name, version, dest)
        return dest

    def remove(self, version: str) -> None:
        """Remove a downloaded version (one that cannot serve)."""
        shutil.rmtree(self.root / f"v{version}", ignore_errors=True)

    def prune(self, keep: set[str]) -> None:
        """Remove the downloaded versions not in `keep`."""
        for path in self.root.glob("v*"):
            if path.is_dir() and path.name[1:] not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def state(self) -> dict[str, object]:
        """What `GET /version` says about the follower."""
        return {"follows": str(self.ref), "rejected": dict(self.rejected)}

"""Deployment: put a registered model version behind the stable serving endpoint.

Targets: `docker` (blue/green behind an nginx router), `kubernetes` (a candidate Deployment
beside the serving one, then a rolling update undone on failure) and `local` (a uvicorn
process, for the embedded demo without a Docker engine). Each implements :class:`Deployer`;
`airloop.deploy.gate` decides the order of its steps and `airloop.deploy.service` chooses one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from pathlib import Path

    from airloop.serving.model import ModelInfo


#: Serving settings the deploying process hands on to the serving it starts, on every target, when
#: they are set in its environment (the local target's process inherits the whole environment).
FORWARDED_SERVING_SETTINGS = (
    "AIRLOOP_SERVING_REPLAY_CLOCK",
    "AIRLOOP_SERVING_SHADOW",
    "AIRLOOP_SERVING_SHADOW_POLL_SECONDS",
)


def forwarded_serving_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The :data:`FORWARDED_SERVING_SETTINGS` set in `environ` (the serving token travels apart, as a secret)."""
    return {key: environ[key] for key in FORWARDED_SERVING_SETTINGS if environ.get(key)}


class DeploymentError(RuntimeError):
    """The new version was not put in service; what served before still serves."""


class NotServableError(DeploymentError):
    """The version failed its checks in the candidate slot: it never took traffic, and never will as it is."""

    def __init__(self, message: str, *, version: str | None = None) -> None:
        super().__init__(message)
        self.version = version  #: the registered version that failed, once the gate knows it


class Deployment(BaseModel):
    """What serves now, and where."""

    target: str
    model_name: str
    version: str
    endpoint: str
    image: str | None = None
    image_id: str | None = None
    instance: str | None = None
    previous_version: str | None = None
    unchanged: bool = False


@dataclass(frozen=True)
class Candidate:
    """A version up and healthy in a target's candidate slot, taking no traffic yet."""

    info: ModelInfo
    url: str
    instance: str
    image: str | None = None
    image_id: str | None = None


class Deployer(Protocol):
    """A serving target: one stable endpoint, a candidate slot beside it, and a switch between the two.

    Implementations do each step and clean up after their own failures; which steps run, in
    which order, and what a failure undoes is decided once, in :mod:`airloop.deploy.gate`.
    """

    target: str

    def endpoint(self, model_name: str) -> str:
        """The stable URL clients of `model_name` call."""
        ...

    def serving_version(self, model_name: str) -> str | None:
        """The version of `model_name` the stable endpoint serves now, or None."""
        ...

    def start_candidate(self, model_dir: Path, info: ModelInfo) -> Candidate:
        """Start `info`'s version in the candidate slot and wait until it is healthy.

        Raises :class:`NotServableError` (with nothing left running) if it never is.
        """
        ...

    def discard(self, candidate: Candidate) -> None:
        """Remove a candidate that will not take traffic."""
        ...

    def switch(self, candidate: Candidate) -> None:
        """Send the stable endpoint's traffic to `candidate`; what served before stays up until retired."""
        ...

    def switch_back(self) -> None:
        """Send the stable endpoint's traffic back to what served before the last `switch`."""
        ...

    def retire_previous(self) -> None:
        """Remove what served before the last `switch` (the switch is final)."""
        ...

"""Deployment: put a registered model version behind the stable serving endpoint.

Targets: `docker` (blue/green behind an nginx router, health-gated, automatic rollback),
`kubernetes` (Deployment, Service, HorizontalPodAutoscaler; rollout undone on failure) and
`local` (a uvicorn process, for the embedded demo without a Docker engine).
"""

from __future__ import annotations

from pydantic import BaseModel


class DeploymentError(RuntimeError):
    """The new version was not put in service; what served before still serves."""


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

"""Reconcile what serves with the registry: the stable endpoint serves the version `champion` names.

`champion` is the source of truth. When a target's endpoint serves another version, or nothing (a
container died, someone moved the alias in the MLflow UI to roll back), the champion is deployed
through the same servability gate as any promotion (:mod:`airloop.deploy.gate`), without moving the
alias. A champion that fails the gate is tagged not servable and what serves keeps serving; one
already tagged so is reported and not tried again, until the alias moves or the tag is removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from airloop.deploy import Deployment, NotServableError
from airloop.registry.versions import NOT_SERVABLE_REASON, SERVABLE

if TYPE_CHECKING:
    from airloop.deploy.checks import ServingCheck
    from airloop.lineage import Lineage
    from airloop.settings import AirloopSettings

log = logging.getLogger(__name__)

#: in_sync: the champion serves. repaired: it serves now. not_servable: it cannot, what served stays.
#: drifted: they differ, and `repair` was off. no_champion, unmanaged (target none): nothing to compare.
Outcome = Literal["in_sync", "repaired", "not_servable", "drifted", "no_champion", "unmanaged"]


class Reconciliation(BaseModel):
    """What served, what `champion` names, and what reconciling did about it."""

    model_name: str
    target: str
    champion: str | None
    served: str | None  #: the version the endpoint served before reconciling (None: nothing)
    outcome: Outcome
    message: str
    attempted: bool = False  #: the champion went through the gate in this call
    deployment: Deployment | None = None

    @property
    def served_phrase(self) -> str:
        """What served before reconciling, in words: `version N`, or `nothing`."""
        return f"version {self.served}" if self.served else "nothing"

    @property
    def needs_attention(self) -> bool:
        """The endpoint does not serve the champion, and reconciling could not change that."""
        return self.outcome in ("not_servable", "drifted")


def reconcile_serving(
    settings: AirloopSettings,
    model_name: str,
    *,
    target: str | None = None,
    docker_api: Any = None,
    kubernetes_api: Callable[[], Any] | None = None,
    lineage: Lineage | None = None,
    check: ServingCheck | None = None,
    repair: bool = True,
) -> Reconciliation:
    """Compare the version the target serves with `champion`; with `repair`, serve the champion through the gate."""
    from airloop.deploy.service import deploy_version, resolve_target

    found = _compare(settings, model_name, resolve_target(settings, target, docker_api), docker_api, kubernetes_api)
    if found.outcome == "drifted" and repair:
        log.info("%s: serving the champion through the gate", found.message)
        try:
            deployment = deploy_version(
                settings,
                model_name,
                str(found.champion),
                target=found.target,
                docker_api=docker_api,
                kubernetes_api=kubernetes_api,
                lineage=lineage,
                make_champion=False,
                check=check,
            )
        except NotServableError as err:
            found = found.model_copy(
                update={"outcome": "not_servable", "message": f"{found.message}, and it cannot serve: {err}"}
            )
        else:
            message = (
                f"{model_name} champion version {found.champion} serves at {deployment.endpoint} "
                f"(was {found.served_phrase})"
            )
            found = found.model_copy(update={"outcome": "repaired", "message": message, "deployment": deployment})
        found.attempted = True
    elif found.outcome == "drifted":
        found.message += "; airloop_reconcile serves the champion on its next run"
    (log.warning if found.needs_attention else log.info)("%s", found.message)
    return found


def _compare(
    settings: AirloopSettings, model_name: str, target: str, docker_api: Any, kubernetes_api: Callable[[], Any] | None
) -> Reconciliation:
    """What serves against what `champion` names; `drifted` when the champion should be deployed."""
    from airloop.deploy.service import build_deployer, serving_port_of, serving_token
    from airloop.registry.versions import ModelRegistry

    registry = ModelRegistry(model_name, tracking_uri=settings.tracking_uri)
    champion = registry.champion()
    found = Reconciliation(
        model_name=model_name, target=target, champion=champion, served=None, outcome="unmanaged", message=""
    )
    if target == "none":
        found.message = f"deploy target is none: nothing here serves {model_name}, nothing to reconcile"
        return found
    deployer = build_deployer(
        settings,
        target,
        port=serving_port_of(settings, model_name),
        docker_api=docker_api,
        kubernetes_api=kubernetes_api,
        token=serving_token(),
    )
    found.served = deployer.serving_version(model_name)
    serving = found.served_phrase
    where = f"{deployer.endpoint(model_name)} ({target})"
    if champion is None:
        found.outcome, found.message = "no_champion", f"{model_name} has no champion yet; {serving} serves at {where}"
    elif found.served == champion:
        found.outcome, found.message = "in_sync", f"{model_name} champion version {champion} serves at {where}"
    else:
        found.outcome = "drifted"
        found.message = f"{model_name} champion is version {champion}, but {serving} serves at {where}"
        tags = registry.tags(champion)
        if tags.get(SERVABLE) == "false":
            found.outcome = "not_servable"
            found.message += (
                f": version {champion} is tagged not servable ({tags.get(NOT_SERVABLE_REASON, 'no reason given')}), "
                f"so {serving} keeps serving. Move champion to a servable version, or delete the tag "
                f"airloop.{SERVABLE} on version {champion} to try it again"
            )
    return found

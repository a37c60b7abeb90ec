"""The servability gate: a version takes traffic, and the `champion` alias, only after it proved servable.

One order for every target (a :class:`~airloop.deploy.Deployer`):

1. the version starts in the candidate slot and must be healthy, then pass the contract test
   (:func:`~airloop.deploy.checks.check_servable`); a failure removes the candidate, tags the
   version not servable and raises :class:`~airloop.deploy.NotServableError`;
2. traffic switches to it;
3. `champion` moves to it (when asked to); if that fails, traffic switches back;
4. what served before is retired.

So after any failure the alias and the traffic are both where they were.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from airloop.deploy import Candidate, Deployer, Deployment, DeploymentError, NotServableError
from airloop.deploy.checks import ServingCheck, check_servable

if TYPE_CHECKING:
    from airloop.registry.versions import ModelRegistry
    from airloop.serving.model import ModelInfo

log = logging.getLogger(__name__)


def promote_when_servable(
    deployer: Deployer,
    registry: ModelRegistry,
    model_dir: Path,
    info: ModelInfo,
    *,
    check: ServingCheck,
    make_champion: bool,
) -> Deployment:
    """Serve `info`'s version on `deployer`'s target and, with `make_champion`, make it `champion`, as one step."""
    previous = deployer.serving_version(info.name)
    if previous == info.version:
        log.info("%s version %s already serves at %s", info.name, info.version, deployer.endpoint(info.name))
        if make_champion:
            registry.move_champion(info.version)
        return _deployment(deployer, info, previous, unchanged=True)
    endpoint = deployer.endpoint(info.name)
    keeps = f"{'version ' + previous if previous else 'nothing'} keeps serving at {endpoint}"
    champion = registry.champion()
    stays = f"champion stays {'version ' + champion if champion else 'unset'}"

    candidate = _start_and_check(deployer, registry, model_dir, info, check=check, left=f"{keeps}; {stays}")
    try:
        deployer.switch(candidate)
    except Exception as err:
        raise DeploymentError(
            f"{info.name} version {info.version} passed its checks, but switching traffic to it failed: {err}. "
            f"{_switch_back(deployer, candidate, previous)}; {stays}"
        ) from err
    if make_champion:
        try:
            registry.move_champion(info.version)
        except Exception as err:
            raise DeploymentError(
                f"{info.name} version {info.version} served, but the champion alias could not be moved to it: "
                f"{err}. {_switch_back(deployer, candidate, previous)}; {stays}"
            ) from err
    try:
        deployer.retire_previous()
    except Exception:  # the promotion is complete; an instance left over costs resources, not correctness
        log.exception("could not retire what served before %s version %s; remove it by hand", info.name, info.version)
    registry.mark_servable(info.version)
    # The candidate slot's instance may have made way for the stable one (local, Kubernetes): say which it was.
    log.info(
        "%s version %s serves at %s (checked in the candidate slot as %s)",
        info.name,
        info.version,
        endpoint,
        candidate.instance,
    )
    return _deployment(deployer, info, previous, candidate=candidate)


def _start_and_check(
    deployer: Deployer, registry: ModelRegistry, model_dir: Path, info: ModelInfo, *, check: ServingCheck, left: str
) -> Candidate:
    """The candidate, healthy and through the contract test; else it is gone and the version tagged."""
    try:
        candidate = deployer.start_candidate(model_dir, info)
    except NotServableError as err:
        _not_servable(registry, deployer, info, err, left)
    try:
        check_servable(candidate.url, model_dir, check)
    except NotServableError as err:
        deployer.discard(candidate)
        _not_servable(registry, deployer, info, err, left)
    except Exception:
        deployer.discard(candidate)
        raise
    return candidate


def _not_servable(
    registry: ModelRegistry, deployer: Deployer, info: ModelInfo, err: NotServableError, left: str
) -> NoReturn:
    reason = f"{info.name} version {info.version} is not servable on {deployer.target}: {err}"
    registry.mark_not_servable(info.version, reason)
    raise NotServableError(f"{reason}. It took no traffic: {left}.", version=info.version) from err


def _switch_back(deployer: Deployer, candidate: Candidate, previous: str | None) -> str:
    """Put traffic back where it was; says what happened, for the error being raised."""
    try:
        deployer.switch_back()
    except Exception as err:  # reported in the error raised: the operator must act
        log.exception("switching traffic back failed")
        return f"Switching traffic back to {'version ' + previous if previous else 'nothing'} ALSO FAILED ({err})"
    deployer.discard(candidate)
    where = deployer.endpoint(candidate.info.name)
    return f"Traffic switched back: {'version ' + previous if previous else 'nothing'} serves at {where}"


def _deployment(
    deployer: Deployer,
    info: ModelInfo,
    previous: str | None,
    *,
    candidate: Candidate | None = None,
    unchanged: bool = False,
) -> Deployment:
    return Deployment(
        target=deployer.target,
        model_name=info.name,
        version=info.version,
        endpoint=deployer.endpoint(info.name),
        image=candidate.image if candidate else None,
        image_id=candidate.image_id if candidate else None,
        instance=candidate.instance if candidate else None,
        previous_version=previous,
        unchanged=unchanged,
    )

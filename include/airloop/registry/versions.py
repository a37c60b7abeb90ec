"""One registered model in MLflow: its `champion` alias and what is tagged on its versions."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airloop.lineage import TAG_PREFIX
from airloop.registry import CHAMPION

log = logging.getLogger(__name__)

# The version tags Airloop writes (`airloop.<key>`), all through this class's methods.
SERVABLE = "servable"
NOT_SERVABLE_REASON = "not_servable_reason"
PROMOTION = "promotion"  # promotion.decision, .reason, .metric, .challenger_score, .champion_version, ...
DECISION = f"{PROMOTION}.decision"  # promoted | rejected | not_servable (absent: undecided)
SHADOW = f"{PROMOTION}.shadow"  # shadowing | won | lost | superseded
SHADOW_CHAMPION = f"{SHADOW}_champion"  # the champion a shadowing version is judged against
APPROVAL = "approval"  # approved | rejected, with approval.by and approval.at
DEPLOY_ENDPOINT = "deploy.endpoint"  # with deploy.target, .image, .image_id, .instance, .airflow_run_id
MAX_TAG_VALUE = 5000  # MLflow refuses longer model-version tag values


class ModelRegistry:
    """The registry side of a promotion, through an explicit `MlflowClient` (no global tracking URI)."""

    def __init__(self, model_name: str, *, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.model_name = model_name
        self.client: Any = MlflowClient(tracking_uri=tracking_uri)

    def champion(self) -> str | None:
        """The version `champion` names, or None when there is none yet."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.model_name, CHAMPION).version)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(err).lower():
                raise
            return None

    def resolve(self, version: str) -> str:
        """A version number as given, or the number the alias `version` names."""
        if version.isdigit():
            return version
        return str(self.client.get_model_version_by_alias(self.model_name, version).version)

    def move_champion(self, version: str) -> None:
        """Point `champion` at `version` (the registry then says it serves)."""
        self.client.set_registered_model_alias(self.model_name, CHAMPION, version)
        log.info("champion of %s -> version %s", self.model_name, version)

    def tag(self, version: str, tags: Mapping[str, str]) -> None:
        """Set `airloop.<key>` tags on `version`."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, version, TAG_PREFIX + key, value[:MAX_TAG_VALUE])

    def untag(self, version: str, keys: Iterable[str]) -> None:
        """Remove `airloop.<key>` tags from `version`, if present."""
        present = self.client.get_model_version(self.model_name, version).tags
        for key in keys:
            if TAG_PREFIX + key in present:
                self.client.delete_model_version_tag(self.model_name, version, TAG_PREFIX + key)

    def tags(self, version: str) -> dict[str, str]:
        """The `airloop.` tags on `version`, without the prefix."""
        found = self.client.get_model_version(self.model_name, version).tags
        return {k.removeprefix(TAG_PREFIX): v for k, v in found.items() if k.startswith(TAG_PREFIX)}

    def tagged(self, key: str, value: str) -> list[str]:
        """The versions whose `airloop.<key>` tag is `value`, newest first."""
        found = self.client.search_model_versions(f"name = '{self.model_name}'")
        return sorted((str(v.version) for v in found if v.tags.get(TAG_PREFIX + key) == value), key=int, reverse=True)

    def fitted_through(self, version: str) -> dt.datetime | None:
        """When the latest row `version`'s pipeline was fitted on is from (its training run's parameters).

        Runs before the parameter existed: the end of the data window (exclusive), or None.
        """
        from airloop.training.train import FITTED_THROUGH_PARAM

        run_id = self.client.get_model_version(self.model_name, version).run_id
        if not run_id:
            return None
        params = self.client.get_run(run_id).data.params
        if FITTED_THROUGH_PARAM in params:
            return dt.datetime.fromisoformat(params[FITTED_THROUGH_PARAM])
        if "window_end" in params:
            end = dt.datetime.fromisoformat(params["window_end"])
            return end.replace(tzinfo=end.tzinfo or dt.UTC) - dt.timedelta(microseconds=1)
        return None

    # -- what a promotion found and decided, on the challenger's version ------------------------

    def record_evaluation(
        self,
        version: str,
        *,
        reason: str,
        metric: str,
        challenger_score: float,
        champion_version: str | None,
        champion_score: float | None,
    ) -> None:
        """The challenger against the champion on held-out rows; an earlier run's decision no longer holds."""
        self.tag(
            version,
            {
                f"{PROMOTION}.reason": reason,
                f"{PROMOTION}.metric": metric,
                f"{PROMOTION}.challenger_score": f"{challenger_score:.6f}",
                f"{PROMOTION}.champion_version": champion_version or "none",
                f"{PROMOTION}.champion_score": "none" if champion_score is None else f"{champion_score:.6f}",
            },
        )
        self.untag(version, [DECISION])

    def record_decision(self, version: str, decision: str | None, reason: str) -> None:
        """What became of the version (`promoted`, `rejected`, `not_servable`), or only why (None: undecided)."""
        self.tag(version, {**({DECISION: decision} if decision else {}), f"{PROMOTION}.reason": reason})

    def record_approval(self, version: str, verdict: str, by: str | None, at: dt.datetime) -> None:
        """A person's answer to promoting `version` (or `nobody`, when none came in time)."""
        self.tag(version, {APPROVAL: verdict, f"{APPROVAL}.by": by or "nobody", f"{APPROVAL}.at": at.isoformat()})

    def record_shadow(self, version: str, state: str, **details: str) -> None:
        """Where `version` stands as a shadow (`shadowing`, `won`, ...), with `promotion.shadow_<detail>` tags."""
        self.tag(version, {SHADOW: state, **{f"{SHADOW}_{key}": value for key, value in details.items()}})

    def record_deployment(self, version: str, **deploy: str) -> None:
        """Where `version` was deployed: `deploy.<key>` tags (target, endpoint, image, ...)."""
        self.tag(version, {f"deploy.{key}": value for key, value in deploy.items()})

    def mark_not_servable(self, version: str, reason: str) -> None:
        """Tag why `version` did not pass its checks on the target (it took no traffic)."""
        self.tag(version, {SERVABLE: "false", NOT_SERVABLE_REASON: reason})

    def mark_servable(self, version: str) -> None:
        """Tag that `version` passed its checks and serves; an older not-servable reason goes."""
        self.tag(version, {SERVABLE: "true"})
        self.untag(version, [NOT_SERVABLE_REASON])

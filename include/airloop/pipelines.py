"""The pipelines a deployment runs: every YAML file of the pipelines folder, and their DAG ids.

A pipeline is one file, `<folder>/<name>.yaml` (`AIRLOOP_PIPELINES`, `include/pipelines/` by
default). Its name is the file's stem, and its DAGs are named by one convention::

    airloop_<name>_<stage>        e.g. airloop_flights_training, airloop_flights_monitoring

for each of :data:`STAGES`. Each pipeline has its own registered model and serving port (the
config's `serving.port`, else `AIRLOOP_SERVING_PORT`) and dataset name, and with them its own
endpoint, inference log records, snapshots and quarantine, monitoring state, signals and storm guards.

A file that cannot be a pipeline (invalid YAML, a field the config refuses, a name, a model, a
dataset name or a port another pipeline has) is :class:`BrokenPipeline`: it is reported with the file and the
reason, and the other pipelines load as if it were not there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airloop.config import PipelineConfig, load_config

#: Each pipeline's DAGs, by stage (DESIGN.md: DAG ids are part of the public interface).
STAGES = ("training", "deploy", "monitoring", "retraining", "reconcile", "readmit")
#: A pipeline's name (its file's stem): it is part of DAG ids, tags and URLs.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SUFFIXES = (".yaml", ".yml")


def dag_id(pipeline: str, stage: str) -> str:
    """The DAG id of one stage of a pipeline: `airloop_<pipeline>_<stage>`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    return f"airloop_{pipeline}_{stage}"


@dataclass(frozen=True)
class Pipeline:
    """A pipeline: its name, its file, its config and its serving port."""

    name: str
    path: Path
    config: PipelineConfig
    serving_port: int

    @property
    def dags(self) -> dict[str, str]:
        """Stage -> DAG id."""
        return {stage: dag_id(self.name, stage) for stage in STAGES}

    @property
    def dag_ids(self) -> list[str]:
        return list(self.dags.values())

    def dag_id(self, stage: str) -> str:
        return dag_id(self.name, stage)

    def with_overrides(self, overrides: Mapping[str, Any]) -> PipelineConfig:
        """The config file with a run's choices laid over it."""
        return load_config(self.path, dict(overrides))


@dataclass(frozen=True)
class BrokenPipeline:
    """A file of the pipelines folder that is not a pipeline, and why."""

    path: Path
    error: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.error}"


@dataclass(frozen=True)
class Pipelines:
    """Every pipeline of the folder, and the files that are broken."""

    folder: Path
    found: list[Pipeline] = field(default_factory=list)
    broken: list[BrokenPipeline] = field(default_factory=list)

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(self.found)

    def __len__(self) -> int:
        return len(self.found)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.found]

    def get(self, name: str) -> Pipeline:
        """The pipeline `name`; a LookupError that says which ones there are (and why a file is broken)."""
        for pipeline in self.found:
            if pipeline.name == name:
                return pipeline
        why = next((f" ({b})" for b in self.broken if b.path.stem == name), "")
        raise LookupError(f"no pipeline {name!r} in {self.folder}{why}; pipelines: {', '.join(self.names) or 'none'}")

    def of_model(self, model_name: str) -> Pipeline | None:
        """The pipeline whose registered model is `model_name`, or None."""
        return next((p for p in self.found if p.config.model_name == model_name), None)

    def of_dag(self, dag_id: str) -> Pipeline | None:
        """The pipeline `dag_id` belongs to, or None for a DAG that is not Airloop's."""
        return next((p for p in self.found if dag_id in p.dag_ids), None)

    def by_dag(self, dag_id: str) -> Pipeline:
        """The pipeline of a running Airloop DAG; an error naming the folder if its file went away or broke."""
        found = self.of_dag(dag_id)
        if found is None:
            broken = "; ".join(str(b) for b in self.broken)
            raise LookupError(
                f"DAG {dag_id} belongs to no pipeline of {self.folder}" + (f" (broken: {broken})" if broken else "")
            )
        return found

    def choose(self, name: str | None) -> Pipeline:
        """The pipeline `name`, or the only one when `name` is None (a CLI's `--pipeline`)."""
        if name is not None:
            return self.get(name)
        if len(self.found) == 1:
            return self.found[0]
        if not self.found:
            broken = "; ".join(str(b) for b in self.broken)
            raise LookupError(f"no pipeline in {self.folder}" + (f" (broken: {broken})" if broken else ""))
        raise LookupError(f"{len(self.found)} pipelines in {self.folder}: name one of {', '.join(self.names)}")


def load_pipelines(folder: Path, *, default_port: int) -> Pipelines:
    """Every `*.yaml` (or `*.yml`) file of `folder`, in name order; a broken file never hides the others.

    Two files may not share a pipeline name, a registered model, a dataset name (the lake's key) or
    a serving port: the first in name order keeps it, the later one is broken.
    """
    found: list[Pipeline] = []
    broken: list[BrokenPipeline] = []
    files = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()) if folder.is_dir() else []
    for path in files:
        try:
            pipeline = _load_one(path, default_port)
            _check_unshared(pipeline, found)
        except Exception as err:  # noqa: BLE001 - every reason a file is broken is reported, none stops the others
            broken.append(BrokenPipeline(path, _reason(err)))
            continue
        found.append(pipeline)
    return Pipelines(folder, found, broken)


def serving_port(config: PipelineConfig, default: int) -> int:
    """The pipeline's stable serving port: its config's `serving.port`, else `default` (AIRLOOP_SERVING_PORT)."""
    return config.serving.port or default


def _load_one(path: Path, default_port: int) -> Pipeline:
    if not NAME.match(path.stem):
        raise ValueError(
            f"the file name {path.stem!r} is the pipeline's name and must be lower-case letters, digits and "
            "underscores, starting with a letter (it is part of DAG ids)"
        )
    config = load_config(path)
    return Pipeline(path.stem, path, config, serving_port(config, default_port))


def _check_unshared(pipeline: Pipeline, found: list[Pipeline]) -> None:
    for other in found:
        if other.name == pipeline.name:
            raise ValueError(f"pipeline name {pipeline.name!r} is {other.path.name}'s")
        if other.config.model_name == pipeline.config.model_name:
            raise ValueError(f"model_name {pipeline.config.model_name!r} is pipeline {other.name}'s")
        if other.config.dataset.name == pipeline.config.dataset.name:
            raise ValueError(
                f"dataset.name {pipeline.config.dataset.name!r} is pipeline {other.name}'s: it names the pipeline's "
                "snapshots and quarantine in the lake (the same source may be read under another name)"
            )
        if other.serving_port == pipeline.serving_port:
            raise ValueError(
                f"serving.port {pipeline.serving_port} is pipeline {other.name}'s: give each pipeline its own port"
            )


def _reason(err: Exception) -> str:
    """One readable line per problem: pydantic's field paths, YAML's line and column."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()
        )
    return " ".join(str(err).split()) or type(err).__name__

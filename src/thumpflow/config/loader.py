"""Load a configuration file into a validated `Config`, or fail with located errors.

Every problem is reported as `FILE:LINE:COLUMN: WHERE: WHAT`, where WHERE
names the channel and destination by id and then the field by its YAML path.
All problems of a file are reported together as one `ConfigError`, never as
a traceback; the common mistakes are told in words (`config._messages`).
Relative local paths in a file read by `load_config` are resolved against
the file's folder (`connectors.fields.LocalPath`), so the engine reads the
same files whatever directory it is started from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor

from thumpflow.config._messages import explain
from thumpflow.config.model import Config
from thumpflow.core.errors import ConfigError

Location = tuple[int, int]
PathKey = tuple[str | int, ...]


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.marks: dict[PathKey, Location] = {}
        self.problems: list[str] = []
        self._scalars = SafeConstructor()

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalars.construct_object(key_node)
                if not isinstance(key, str | int):
                    key = str(key)
                if key in result:
                    self.problems.append(
                        f"{self.source}:{key_node.start_mark.line + 1}:"
                        f"{key_node.start_mark.column + 1}: key {key!r} appears twice"
                    )
                result[key] = self.build(value_node, (*path, key))
                self.marks[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalars.construct_object(node, deep=True)

    def locate(self, data: Any, loc: tuple[int | str, ...]) -> tuple[str, Location]:
        """Translate a pydantic error location into (WHERE text, file location)."""
        names: list[str] = []
        path: PathKey = ()
        node = data
        for part in loc:
            found, child = _child(node, part)
            if found:
                node = child
            elif isinstance(node, dict) and part == node.get("type"):
                continue
            else:
                names.append(str(part))
                node = None
                continue
            path = (*path, part)
            if isinstance(part, int) and len(path) >= 2 and isinstance(node, dict):
                kind = {"channels": "channel", "jobs": "job", "destinations": "destination"}.get(
                    str(path[-2])
                )
                if kind is not None and isinstance(node.get("id"), str):
                    names[-1] = f"{kind} {node['id']!r}"
                    continue
            names.append(f"[{part}]" if isinstance(part, int) else str(part))
        where = " > ".join(names).replace(" > [", "[")
        for length in range(len(path), -1, -1):
            mark = self.marks.get(path[:length])
            if mark is not None:
                return where, mark
        return where, (1, 1)


def _child(node: Any, part: int | str) -> tuple[bool, Any]:
    if isinstance(node, list):
        if isinstance(part, int) and 0 <= part < len(node):
            return True, node[part]
        return False, None
    if isinstance(node, dict) and part in node:
        return True, node[part]
    return False, None


@dataclass(frozen=True, slots=True)
class Located:
    """A validated configuration with the file positions of its keys."""

    config: Config
    reader: _Reader
    data: Any

    def where(self, loc: tuple[int | str, ...]) -> str:
        """`FILE:LINE:COLUMN: channel 'adt' > destination 'out' > field` for a location."""
        where, (line, column) = self.reader.locate(self.data, loc)
        return f"{self.reader.source}:{line}:{column}: {where or 'top level'}"


def load_config(path: str | Path) -> Config:
    """Read, parse and validate a configuration file; raise `ConfigError` with every problem."""
    return load_located(path).config


def load_located(path: str | Path) -> Located:
    """`load_config`, keeping where each key is (for checks made after validation)."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"{source}: cannot read: {err.strerror or err}"]) from None
    except UnicodeDecodeError as err:
        raise ConfigError([f"{source}: not UTF-8 text (byte {err.start})"]) from None
    return _parse(text, source, file.resolve().parent)


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Parse and validate configuration text; `source` names it in error messages.

    With `base_dir`, relative local paths are resolved against it; without,
    they stay as written.
    """
    return _parse(text, source, base_dir).config


def _parse(text: str, source: str, base_dir: Path | None) -> Located:
    reader = _Reader(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError([f"{where}: not valid YAML: {err.problem}"]) from None
    if node is None:
        raise ConfigError([f"{source}:1:1: the file is empty; it needs at least `channels:`"])
    data = reader.build(node, ())
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1:1: the file must be a mapping with `channels:`"])
    problems = list(reader.problems)
    config: Config | None = None
    try:
        context = {"base_dir": base_dir} if base_dir is not None else None
        config = Config.model_validate(data, context=context)
    except ValidationError as err:
        for error in err.errors(include_url=False):
            where, (line, column) = reader.locate(data, error["loc"])
            message = explain(error, data, Config)
            problems.append(f"{source}:{line}:{column}: {where or 'top level'}: {message}")
    if config is not None:
        problems.extend(_duplicate_ids(config, reader, data))
        problems.extend(_cluster_problems(config, reader, data))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return Located(config, reader, data)


def _cluster_problems(config: Config, reader: _Reader, data: Any) -> list[str]:
    """File destinations in a cluster: their journal (what was written, what is pending)
    lives on one host's disk, so no other node could take their partitions over. Jobs'
    local folders outside `cluster.shared_folders`: the job runs on the node holding the
    scheduler duty, which moves."""
    if config.store.type != "postgresql" or not config.cluster.enabled:
        return []
    problems = _local_job_paths(config, reader, data)
    for index, channel in enumerate(config.channels):
        for number, destination in enumerate(channel.destinations):
            if destination.type != "file":
                continue
            loc = ("channels", index, "destinations", number, "type")
            _, (line, column) = reader.locate(data, loc)
            problems.append(
                f"{reader.source}:{line}:{column}: channel {channel.id!r} > destination "
                f"{destination.id!r}: a file destination cannot run in a cluster (store type "
                "postgresql): its journal is on one host's disk, so another node could not "
                "take its partitions over; deliver over http, mllp or fhir, or set "
                "`cluster: {enabled: false}` to run this engine alone on its database"
            )
    return problems


# The job settings naming a folder or file that holds a job's data (not a secret or key:
# those are each node's own configuration).
_JOB_DATA_PATHS = frozenset({"directory", "report_dir", "database"})


def _local_job_paths(config: Config, reader: _Reader, data: Any) -> list[str]:
    shared = [Path(os.path.normpath(folder)) for folder in config.cluster.shared_folders]
    problems: list[str] = []
    for index, job in enumerate(config.jobs):
        for loc, value in _data_paths(job, ("jobs", index)):
            if any(Path(os.path.normpath(value)).is_relative_to(f) for f in shared):
                continue
            where, (line, column) = reader.locate(data, loc)
            problems.append(
                f"{reader.source}:{line}:{column}: {where}: a local path "
                "in a cluster (store type postgresql) must be inside `cluster.shared_folders`: "
                "the job runs on whichever node holds the scheduler duty, which moves when a "
                "node stops; put it on storage every node mounts at the same path and list "
                "that folder there, or set `cluster: {enabled: false}`"
            )
    return problems


def _data_paths(
    model: BaseModel, loc: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, path) of every job data path set in `model` and the models inside it."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*loc, info.alias or name)
        if isinstance(value, BaseModel):
            found.extend(_data_paths(value, here))
        elif isinstance(value, list):
            for number, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found.extend(_data_paths(item, (*here, number)))
        elif name in _JOB_DATA_PATHS and isinstance(value, str):
            found.append((here, value))
    return found


def _duplicate_ids(config: Config, reader: _Reader, data: Any) -> list[str]:
    problems: list[str] = []
    channels: dict[str, int] = {}
    jobs: dict[str, int] = {}
    destinations: dict[str, str] = {}
    for index, channel in enumerate(config.channels):
        if channel.id in channels:
            _, (line, column) = reader.locate(data, ("channels", index, "id"))
            problems.append(
                f"{reader.source}:{line}:{column}: channel {channel.id!r}: id is already used by "
                f"channel number {channels[channel.id] + 1}"
            )
        channels.setdefault(channel.id, index)
        for number, destination in enumerate(channel.destinations):
            owner = destinations.get(destination.id)
            if owner is not None:
                loc = ("channels", index, "destinations", number, "id")
                _, (line, column) = reader.locate(data, loc)
                problems.append(
                    f"{reader.source}:{line}:{column}: channel {channel.id!r} > destination "
                    f"{destination.id!r}: id is already used in {owner}"
                )
            destinations.setdefault(destination.id, f"channel {channel.id!r}")
    for index, job in enumerate(config.jobs):
        _, (line, column) = reader.locate(data, ("jobs", index, "id"))
        if job.id in channels:
            problems.append(
                f"{reader.source}:{line}:{column}: job {job.id!r}: id is already used by "
                f"channel number {channels[job.id] + 1}"
            )
        elif job.id in jobs:
            problems.append(
                f"{reader.source}:{line}:{column}: job {job.id!r}: id is already used by "
                f"job number {jobs[job.id] + 1}"
            )
        jobs.setdefault(job.id, index)
        for number, batch_destination in enumerate(job.destinations):
            owner = destinations.get(batch_destination.id)
            if owner is not None and owner == f"channel {job.reconciles!r}":
                # The reconciled channel's destination, reached in batch: shared once.
                destinations[batch_destination.id] = f"job {job.id!r}"
                continue
            if owner is not None:
                loc = ("jobs", index, "destinations", number, "id")
                _, (line, column) = reader.locate(data, loc)
                problems.append(
                    f"{reader.source}:{line}:{column}: job {job.id!r} > destination "
                    f"{batch_destination.id!r}: id is already used in {owner}"
                )
            destinations.setdefault(batch_destination.id, f"job {job.id!r}")
    return problems

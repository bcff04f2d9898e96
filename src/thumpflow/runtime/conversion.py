"""The configuration's naming systems, applied to FHIR conversion.

`configure_conversion` adds the top-level `naming_systems` (its inline
entries over those of its file) to the conversion's process-wide table, and
sets the base for namespaces not listed. `channel_naming` makes a channel's
own table (`channels: - naming_systems:`), whose entries and base come
before the process-wide ones, and `in_channel_naming` runs a channel's (or
its destination's) transform with it, so a channel converts with its table
and no other channel sees it. A file that cannot be read, lists a namespace
twice or a URI that is not absolute raises `ConfigError` naming it (file
and line); nothing is changed then.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

from thumpflow.config.model import Channel
from thumpflow.config.naming import NamingSystems
from thumpflow.core.errors import ConfigError
from thumpflow.mapping import (
    NamingTable,
    configure_naming_systems,
    naming_table,
    read_naming_systems,
    using_naming_systems,
)

P = ParamSpec("P")
R = TypeVar("R")


def _entries(spec: NamingSystems) -> dict[str, str]:
    table: dict[str, str] = {}
    if spec.file is not None:
        table.update(read_naming_systems(Path(spec.file)))
    table.update(spec.systems)
    return table


def configure_conversion(spec: NamingSystems) -> None:
    """Apply `spec` to every conversion of this process (see the module docstring)."""
    try:
        configure_naming_systems(_entries(spec), base=spec.base, where="naming_systems")
    except ValueError as err:
        raise ConfigError([f"naming_systems: {err}"]) from None


def channel_naming(channel: Channel) -> NamingTable | None:
    """The channel's own table (None when it has none); reads its file now."""
    spec = channel.naming_systems
    if spec is None:
        return None
    where = f"channel {channel.id!r} > naming_systems"
    try:
        return naming_table(_entries(spec), base=spec.base, where=where)
    except ValueError as err:
        raise ConfigError([f"{where}: {err}"]) from None


def in_channel_naming(function: Callable[P, R], table: NamingTable | None) -> Callable[P, R]:
    """`function`, converting with `table` while it runs (itself when `table` is None)."""
    if table is None:
        return function

    @wraps(function)
    def scoped(*args: P.args, **kwargs: P.kwargs) -> R:
        with using_naming_systems(table):
            return function(*args, **kwargs)

    return scoped

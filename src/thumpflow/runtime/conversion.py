"""The configuration's naming systems, applied to FHIR conversion.

`configure_conversion` adds the top-level `naming_systems` (its inline entries
over those of its file) to the conversion's process-wide table, and sets the
base for namespaces not listed. `channel_naming` makes a channel's own table
(`channels: - naming_systems:`), whose entries and base come before the
process-wide ones, and `in_channel` runs a channel's (or its destination's)
transform with it and the channel's `timezone`, so a channel converts with its
table and zone and no other channel sees them, telling a listener (the
channel's warning counter, `ConversionMetrics`) each conversion warning. A
file that cannot be read, lists a namespace twice or a URI that is not
absolute raises `ConfigError` naming it (file and line); nothing is changed
then.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

from thumpflow.config.model import Channel
from thumpflow.config.naming import NamingSystems
from thumpflow.core.errors import ConfigError
from thumpflow.core.metrics import Registry
from thumpflow.mapping import (
    WARNING_CODES,
    ConversionWarning,
    NamingTable,
    WarningListener,
    configure_naming_systems,
    naming_table,
    read_naming_systems,
    reporting_warnings,
    using_naming_systems,
    using_timezone,
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


def in_channel(
    function: Callable[P, R],
    table: NamingTable | None,
    on_warning: WarningListener | None,
    zone: str = "UTC",
) -> Callable[P, R]:
    """`function`, converting with `table`, reading HL7 times without an offset
    in the channel's time `zone` (when MSH-7 states none either), and telling
    `on_warning` each warning while it runs (`function` itself when there
    is nothing to apply)."""
    if table is None and on_warning is None and zone == "UTC":
        return function

    @wraps(function)
    def scoped(*args: P.args, **kwargs: P.kwargs) -> R:
        with using_naming_systems(table), using_timezone(zone), reporting_warnings(on_warning):
            return function(*args, **kwargs)

    return scoped


class ConversionMetrics:
    """`thumpflow_conversion_warnings_total{channel, code}`: messages a channel's
    transforms converted to FHIR only in part, by warning code (`WARNING_CODES`:
    a fixed word, never a value from the message)."""

    def __init__(self, registry: Registry) -> None:
        self.warnings = registry.counter(
            "thumpflow_conversion_warnings_total",
            "Warnings of a channel's HL7 v2 to FHIR conversion (converted in part), by code "
            "(no_message_map, missing_segment, no_reference_target, no_message_time, "
            "charset_fallback, group_not_converted, repeated_identifier,"
            " segment_not_converted).",
            ("channel", "code"),
        )

    def listener(self, channel_id: str) -> WarningListener:
        """What counts the channel's warnings; every code's count is shown from 0."""
        counters = {code: self.warnings.labels(channel_id, code) for code in WARNING_CODES}

        def count(warning: ConversionWarning) -> None:
            counters[warning.code].inc()

        return count

    def counts(self, channel_id: str) -> dict[str, int]:
        """The channel's warning counts by code (0 for a code never seen)."""
        return {code: int(self.warnings.labels(channel_id, code).value) for code in WARNING_CODES}

"""Importing the transform functions a configuration names, and importing them again.

Channels, destinations and jobs name a `transform: module:function`; it is
looked for in `transforms_path` first (`add_transforms_path`), then among
installed packages, and one that cannot be imported or is not callable is a
`ConfigError` naming where it is configured.

A reload applies a new configuration; a transform's *code* may change too
(the same `transform: module:function`, a fixed function). The engine
records each transform module's file modification time when it imports it
(`remember`); at a reload, `refresh_changed` imports again every named
module whose file changed since, so the channels using it restart with the
new code, while channels whose configuration and code are unchanged keep
running untouched. A module that no longer compiles or imports refuses the
reload (`ConfigError` naming the module and the error's type and place),
and the module keeps its previous code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from thumpflow.config.model import Channel, DeliveryOptions
from thumpflow.core.errors import ConfigError
from thumpflow.core.ports import Destination
from thumpflow.flow.destination_transform import DestinationTransform, TransformingDestination
from thumpflow.flow.pipeline import Transform
from thumpflow.mapping import WarningListener
from thumpflow.runtime.conversion import channel_naming, in_channel
from thumpflow.thump.runner import RecordTransform

_SEEN: dict[str, int] = {}


def _stamp(module: ModuleType) -> int | None:
    file = getattr(module, "__file__", None)
    try:
        return Path(file).stat().st_mtime_ns if file else None
    except OSError:
        return None


def remember(module: ModuleType) -> None:
    """Record the file time of a transform module when first imported."""
    stamp = _stamp(module)
    if stamp is not None:
        _SEEN.setdefault(module.__name__, stamp)


def refresh_changed(names: Iterable[str]) -> set[str]:
    """Import again the named modules whose file changed since `remember`; their names."""
    changed: set[str] = set()
    for name in sorted(set(names)):
        module = sys.modules.get(name)
        if module is None or name not in _SEEN:
            continue
        stamp = _stamp(module)
        if stamp is None or stamp == _SEEN[name]:
            continue
        try:
            importlib.reload(module)
        except Exception as err:  # a user's module may raise anything while importing
            line = getattr(err, "lineno", None)
            where = f" (line {line})" if line else ""
            raise ConfigError(
                [f"transform module {name!r} cannot be imported again: {type(err).__name__}{where}"]
            ) from None
        _SEEN[name] = stamp
        changed.add(name)
    return changed


def add_transforms_path(folders: Sequence[str]) -> None:
    """Look for transform modules in these folders first (`transforms_path`), then as usual."""
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def import_callable(reference: str, where: str) -> Any:
    """Import `package.module:function`; a missing one is a located config error."""
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
        remember(module)
        function = getattr(module, function_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError([f"{where} > transform: cannot load {reference!r}: {err}"]) from None
    if not callable(function):
        raise ConfigError([f"{where} > transform: {reference!r} is not callable"])
    return function


@dataclass(frozen=True, slots=True)
class ChannelTransforms:
    """A channel's transform (None without one) and its destinations', by destination id."""

    transform: Transform | None
    by_destination: dict[str, DestinationTransform]

    def wrap(self, destination: Destination, spec: DeliveryOptions) -> Destination:
        """`destination`, running its transform on each delivery when it has one."""
        found = self.by_destination.get(spec.id)
        return destination if found is None else TransformingDestination(destination, found)


def channel_transforms(
    channel: Channel, on_warning: WarningListener | None = None
) -> ChannelTransforms:
    """Import the channel's transform and its destinations' (see `import_callable`),
    each converting to FHIR with the channel's naming-system table when it has one
    and its `timezone` for times without an offset, and telling `on_warning` each
    conversion warning (`runtime.conversion`); a missing one or a bad table
    is a located `ConfigError`."""
    naming = channel_naming(channel)
    zone = channel.timezone
    transform = load_transform(channel.transform, channel.id) if channel.transform else None
    return ChannelTransforms(
        None if transform is None else in_channel(transform, naming, on_warning, zone),
        {
            spec.id: in_channel(
                load_destination_transform(spec, channel.id), naming, on_warning, zone
            )
            for spec in channel.destinations
            if spec.transform
        },
    )


def load_destination_transform(spec: DeliveryOptions, channel_id: str) -> DestinationTransform:
    """A destination's transform function (see `import_callable`)."""
    where = f"channel {channel_id!r} > destination {spec.id!r}"
    return cast(DestinationTransform, import_callable(spec.transform or "", where))


def load_transform(reference: str, channel_id: str) -> Transform:
    """A channel's transform function (see `import_callable`)."""
    return cast(Transform, import_callable(reference, f"channel {channel_id!r}"))


def load_record_transform(reference: str, job_id: str) -> RecordTransform:
    """A job's record transform function (see `import_callable`)."""
    return cast(RecordTransform, import_callable(reference, f"job {job_id!r}"))

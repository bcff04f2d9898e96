"""What a configuration reload changes, decided before anything is touched. Pure: no I/O.

`plan_reload(running, new)` compares the running configuration with a
newly validated one, channel by channel (enabled channels only):

- unchanged channels keep running, connections and queues untouched;
- changed channels, and channels whose transform module changed on disk
  (`runtime/transform_modules.py`), are drained and restarted;
- removed (or now disabled) channels stop after their in-flight messages;
- added (or now enabled) channels start.

The store, the API, the alerts, the jobs and the operating modes are not
changed by a reload (they hold the open store file, the listening API
socket, the scheduler's durable state, the rules' hysteresis): a new
configuration that changes any of them is refused whole, with the parts
named, and the running configuration stays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from thumpflow.config.model import Channel, Config

RESTART_ONLY = ("store", "api", "alerts", "jobs", "modes", "naming_systems")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """Channel ids by what a reload does to them, each sorted."""

    unchanged: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    added: tuple[str, ...]

    def summary(self) -> str:
        """`changed adt; added lab` or `nothing changed`."""
        words = [
            f"{what} {', '.join(ids)}"
            for what, ids in (
                ("changed", self.changed),
                ("removed", self.removed),
                ("added", self.added),
            )
            if ids
        ]
        return "; ".join(words) or "nothing changed"


def enabled_channels(config: Config) -> dict[str, Channel]:
    return {channel.id: channel for channel in config.channels if channel.enabled}


def restart_only_changes(running: Config, new: Config) -> list[str]:
    """The parts that differ and need a restart (empty when a reload may apply `new`)."""
    return [part for part in RESTART_ONLY if getattr(running, part) != getattr(new, part)]


def transform_modules(channels: dict[str, Channel]) -> dict[str, set[str]]:
    """Module name -> ids of the channels whose (or whose destinations') transform is in it."""
    found: dict[str, set[str]] = {}
    for channel in channels.values():
        references = [channel.transform, *(spec.transform for spec in channel.destinations)]
        for reference in references:
            if reference:
                found.setdefault(reference.partition(":")[0], set()).add(channel.id)
    return found


def plan_reload(running: Config, new: Config, code_changed: Iterable[str] = ()) -> ReloadPlan:
    """What a reload to `new` does to each enabled channel (see the module).

    `code_changed` names channels whose transform code changed on disk: they
    restart even when their configuration is the same.
    """
    before = enabled_channels(running)
    after = enabled_channels(new)
    both = before.keys() & after.keys()
    recode = set(code_changed)

    def same(key: str) -> bool:
        return before[key] == after[key] and key not in recode

    return ReloadPlan(
        unchanged=tuple(sorted(key for key in both if same(key))),
        changed=tuple(sorted(key for key in both if not same(key))),
        removed=tuple(sorted(before.keys() - after.keys())),
        added=tuple(sorted(after.keys() - before.keys())),
    )

"""Configuration changes in the audit trail.

Configuration lives in git, not in the store; what the store proves is which
configuration the engine ran. At every start the engine fingerprints the
validated configuration (SHA-256 of each part's canonical JSON: the store,
API and alert settings, each channel, each job) and compares it with the
fingerprint of the last `config.loaded` or `config.changed` entry: the
first start records `config.loaded`, a start (or a reload, see
`runtime/reload.py`) with a different configuration records
`config.changed` naming the parts added, removed and changed, an unchanged
one records nothing. The detail holds ids and 12-hex-digit digests only:
secrets are references in the configuration and never appear here.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from thumpflow.config.model import Config
from thumpflow.core.clock import Clock
from thumpflow.core.event import AuditEntry
from thumpflow.core.ports import AccessStore, Store

SUBJECT = "config"
ACTOR = "thumpflow"
_DIGITS = 12
# The entries that record a configuration (beside them: `config.reload`, the act
# asking for one, and `config.reload_refused`).
_RECORDS = frozenset({"config.loaded", "config.changed"})


def _digest(json_text: str) -> str:
    return hashlib.sha256(json_text.encode("utf-8")).hexdigest()[:_DIGITS]


def fingerprint(config: Config) -> dict[str, str]:
    """Part name (`store`, `api`, `alerts`, `channel:ID`, `job:ID`) to its digest."""
    parts = {
        "store": _digest(config.store.model_dump_json()),
        "api": _digest(config.api.model_dump_json()),
        "alerts": _digest(config.alerts.model_dump_json()),
    }
    parts |= {f"channel:{c.id}": _digest(c.model_dump_json()) for c in config.channels}
    parts |= {f"job:{j.id}": _digest(j.model_dump_json()) for j in config.jobs}
    return parts


def describe(parts: dict[str, str]) -> str:
    return " ".join(f"{name}={digest}" for name, digest in sorted(parts.items()))


def parse(detail: str) -> dict[str, str]:
    """The parts of a detail written by `describe` (after the summary, if any)."""
    _, _, listed = detail.rpartition(": ")
    pairs = (item.partition("=") for item in listed.split())
    return {name: digest for name, sep, digest in pairs if sep}


def changes(before: dict[str, str], after: dict[str, str]) -> str:
    """`added a, b; removed c; changed d` (empty when nothing differs)."""
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(k for k in after.keys() & before.keys() if after[k] != before[k])
    words = [
        f"{what} {', '.join(names)}"
        for what, names in (("added", added), ("removed", removed), ("changed", changed))
        if names
    ]
    return "; ".join(words)


class _AuditStore(Store, AccessStore, Protocol):
    """The store methods this module uses."""


async def record_config(store: _AuditStore, config: Config, clock: Clock) -> str | None:
    """Audit the configuration the engine starts with, if it differs; the action written."""
    parts = fingerprint(config)
    previous = [e for e in await store.audit(SUBJECT, limit=50) if e.action in _RECORDS]
    if not previous:
        action = "config.loaded"
        summary = f"{len(config.channels)} channel(s), {len(config.jobs)} job(s)"
    else:
        summary = changes(parse(previous[0].detail), parts)
        if not summary:
            return None
        action = "config.changed"
    await store.append_audit(
        AuditEntry(clock.now(), ACTOR, action, SUBJECT, f"{summary}: {describe(parts)}")
    )
    return action

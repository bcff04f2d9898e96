"""The engine's upkeep loops: the audit anchor, the Subscription heartbeat watch, retention.

Each loop runs on this engine alone, or in a cluster as a singleton duty on
the node holding its lease (`Engine._upkeep_loop`). None loses work when it
is stopped: an anchor is a log line, a heartbeat check reads the saved
state again next time, and a purge batch is one transaction (an interrupted
purge goes on at the next interval).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from thumpflow.config.model import Config
from thumpflow.core.clock import Clock
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.ports import StateStore
from thumpflow.flow.subscription import SubscriptionReceiver
from thumpflow.runtime.build import retention_policy

log = logging.getLogger("thumpflow.runtime")


async def log_anchor(store: StateStore) -> None:
    """Log the audit trail's head as an `audit.anchor` line (entry id and hash only).

    Kept outside the machine (log shipping), these lines let `thumpflow
    audit verify --expect ID:HASH` prove that no entry up to that one was
    deleted or rewritten since. A store that cannot answer is logged by its
    error type, and nothing else happens.
    """
    try:
        head = await store.audit_head()
    except ThumpflowError as err:
        log.warning("audit.anchor unavailable: %s", type(err).__name__)
        return
    if head is not None:
        log.info(
            "audit.anchor %s",
            head,
            extra={"audit_anchor": str(head), "audit_entry": head.entry_id},
        )


async def anchor_loop(store: StateStore, clock: Clock, interval: float) -> None:
    """An anchor line every `interval` seconds."""
    while True:
        await clock.sleep(interval)
        await log_anchor(store)


async def heartbeat_loop(subscriptions: Mapping[str, SubscriptionReceiver], clock: Clock) -> None:
    """Watch every Subscription channel's heartbeats (the saved state's time carries the
    notifications any node handled); `subscriptions` is the live map, so channels
    started or stopped by a reload are followed."""
    while True:
        receivers = list(subscriptions.values())
        intervals = [r.watch_interval for r in receivers if r.watch_interval is not None]
        await clock.sleep(min(intervals, default=1.0))
        for receiver in receivers:
            if receiver.watch_interval is not None:
                await receiver.check_heartbeat()


async def purge(store: StateStore, config: Config) -> None:
    """Purge what the configured retention lets go, now (see `StoreUpkeep.purge`)."""
    counts = await store.purge(retention_policy(config))
    log.info("retention purge: %s", counts.summary())


async def purge_loop(store: StateStore, config: Config, clock: Clock) -> None:
    """A purge every `store.retention.interval`; a failed one is logged and tried next time."""
    spec = config.store.retention
    assert spec is not None
    while True:
        try:
            await purge(store, config)
        except ThumpflowError as err:
            log.warning("retention purge failed: %s", err)
        await clock.sleep(spec.interval)

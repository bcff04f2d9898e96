"""Recording delivery outcomes: the writer operation every backend runs the same way.

`record_outcomes` runs inside the backend writer's transaction (see
`thumpflow.store.ops`) with the current state of the deliveries concerned,
read by the backend (PostgreSQL locks those rows). Outcomes apply only to
pending deliveries, so recording the same outcomes twice is harmless; each
writes its audit entry in the same transaction, and `Delivered` raises the
applied entity version and sets the delivery ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from thumpflow.core.outcome import Delivered, Died, Outcome, Retrying
from thumpflow.store.chain import AuditRow
from thumpflow.store.crypt import ATTEMPT_DETAIL, DELIVERY_ERROR, DELIVERY_REASON, Codec
from thumpflow.store.group import (
    DEAD,
    DELIVERED,
    LAST_DELIVERED,
    PENDING,
    SUPERSEDED,
    Deltas,
    latest,
)
from thumpflow.store.ops import WriteContext
from thumpflow.store.ops.runs import UPSERT_LEDGER
from thumpflow.store.rows import DEAD as DEAD_STATUS
from thumpflow.store.rows import DELIVERED as DELIVERED_STATUS
from thumpflow.store.rows import PENDING as PENDING_STATUS
from thumpflow.store.rows import SUPERSEDED as SUPERSEDED_STATUS

_log = logging.getLogger("thumpflow.store")

# The columns of a delivery's state `record_outcomes` needs, after its id.
STATE_COLUMNS = (
    "delivery_id, status, channel_id, destination_id, business_key, content_hash, ledger_version"
)
INSERT_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, attempt, at, outcome, detail) VALUES (?, ?, ?, ?, ?)"
)
_UPDATE_RETRYING = (
    "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ?,"
    " first_failed_at = ? WHERE delivery_id = ?"
)
_UPDATE_DELIVERED = (
    "UPDATE deliveries SET status = 1, attempts = ?, delivered_at = ? WHERE delivery_id = ?"
)
_UPDATE_DIED = (
    "UPDATE deliveries SET status = 2, attempts = ?, reason = ?, died_at = ? WHERE delivery_id = ?"
)
_UPDATE_SUPERSEDED = "UPDATE deliveries SET status = 3, reason = ? WHERE delivery_id = ?"


def states_of(rows: Sequence[Sequence[Any]]) -> dict[int, list[Any]]:
    """delivery_id -> [status, channel, destination, business key, hash, version]."""
    return {row[0]: list(row[1:]) for row in rows}


def told(codec: Codec, reason: str) -> str:
    """An outcome reason as the audit trail keeps it.

    With encryption the reason itself is sealed in the delivery row, and
    the audit trail (plain, never purged) keeps only its leading part, the
    classification before the first `: ` (e.g. `HTTP 422`), so text a
    receiver echoed from the message never lands there in the clear.
    """
    if not codec.encrypts:
        return reason
    return reason.split(": ", 1)[0][:80]


def record_outcomes(
    context: WriteContext,
    calls: list[Sequence[Outcome]],
    deltas: Deltas,
    states: dict[int, list[Any]],
    upsert_version: str,
) -> None:
    """Apply outcomes to the pending deliveries among `states` (see the module docstring).

    `upsert_version` is the backend's statement raising the applied version
    of (destination, ordering key, version), never lowering it.
    """
    retrying: list[tuple[Any, ...]] = []
    delivered: list[tuple[Any, ...]] = []
    died: list[tuple[Any, ...]] = []
    superseded: list[tuple[Any, ...]] = []
    versions: list[tuple[Any, ...]] = []
    ledger: list[tuple[Any, ...]] = []
    audit_rows: list[AuditRow] = []
    codec, pay = context.codec, context.payload
    attempt_rows: list[tuple[Any, ...]] = []
    ignored = 0
    for outcomes in calls:
        for outcome in outcomes:
            state = states.get(outcome.delivery_id)
            if state is None or state[0] != PENDING_STATUS:
                ignored += 1
                continue
            subject = f"delivery:{outcome.delivery_id}"
            if isinstance(outcome, Retrying):
                retrying.append(
                    (
                        outcome.attempts,
                        outcome.next_attempt_at,
                        pay(codec.seal_text(outcome.reason, DELIVERY_ERROR)),
                        outcome.first_failed_at,
                        outcome.delivery_id,
                    )
                )
                audit_rows.append(
                    (outcome.at, "flow", "retry_scheduled", subject, told(codec, outcome.reason))
                )
                attempt_rows.append(
                    (
                        outcome.delivery_id,
                        outcome.attempts,
                        outcome.at,
                        "failed",
                        pay(codec.seal_text(outcome.reason, ATTEMPT_DETAIL)),
                    )
                )
                continue
            counters = deltas.outbox(state[2], state[1])
            counters[PENDING] -= 1
            if isinstance(outcome, Delivered):
                state[0] = DELIVERED_STATUS
                counters[DELIVERED] += 1
                counters[LAST_DELIVERED] = latest(counters[LAST_DELIVERED], outcome.at)
                delivered.append((outcome.attempts, outcome.at, outcome.delivery_id))
                if outcome.sequence is not None:
                    versions.append(
                        (outcome.destination_id, outcome.ordering_key, outcome.sequence)
                    )
                if state[3] is not None:
                    ledger.append((state[2], state[3], state[4], outcome.at, state[5]))
                # No attempts row: the success is the delivery row's `delivered_at`
                # and `attempts` plus this audit entry; the timeline shows it from those.
                audit_rows.append((outcome.at, "flow", "delivered", subject, outcome.detail))
            elif isinstance(outcome, Died):
                state[0] = DEAD_STATUS
                counters[DEAD] += 1
                died.append(
                    (
                        outcome.attempts,
                        pay(codec.seal_text(outcome.reason, DELIVERY_REASON)),
                        outcome.at,
                        outcome.delivery_id,
                    )
                )
                audit_rows.append(
                    (outcome.at, "flow", "dead_lettered", subject, told(codec, outcome.reason))
                )
                attempt_rows.append(
                    (
                        outcome.delivery_id,
                        outcome.attempts,
                        outcome.at,
                        "dead",
                        pay(codec.seal_text(outcome.reason, ATTEMPT_DETAIL)),
                    )
                )
            else:
                state[0] = SUPERSEDED_STATUS
                counters[SUPERSEDED] += 1
                superseded.append(
                    (pay(codec.seal_text(outcome.reason, DELIVERY_REASON)), outcome.delivery_id)
                )
                audit_rows.append(
                    (outcome.at, "flow", "superseded", subject, told(codec, outcome.reason))
                )
    if retrying:
        context.conn.executemany(_UPDATE_RETRYING, retrying)
    if delivered:
        context.conn.executemany(_UPDATE_DELIVERED, delivered)
    if died:
        context.conn.executemany(_UPDATE_DIED, died)
    if superseded:
        context.conn.executemany(_UPDATE_SUPERSEDED, superseded)
    if versions:
        context.conn.executemany(upsert_version, versions)
    if ledger:
        context.conn.executemany(UPSERT_LEDGER, ledger)
    context.audit.append(audit_rows)
    if attempt_rows:
        context.conn.executemany(INSERT_ATTEMPT, attempt_rows)
    if ignored:
        _log.warning("ignored %d outcomes for deliveries that are not pending", ignored)

"""Flow writes every backend runs the same way: rejected input, replays, and screening admissions.

Each function runs inside the backend writer's transaction (see
`thumpflow.store.ops`) and writes its audit entries in that transaction.
What differs between backends is passed in: the dead-letter filter's SQL,
the row lock a replay takes (PostgreSQL: `FOR UPDATE OF d`) and the query
that finds a newer delivered delivery of a dead one's ordering key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from thumpflow.core.errors import StoreError
from thumpflow.core.event import (
    CONVERTED_IN_PART,
    Admission,
    Admitted,
    DeadLetterFilter,
    Delivery,
    Duplicate,
    Event,
    NewDelivery,
    OrderConflict,
    Reject,
    ReplayResult,
    control_id_reused,
    reused_key,
)
from thumpflow.store.chain import AuditRow
from thumpflow.store.crypt import DELIVERY_REASON, REJECT_RAW, Codec
from thumpflow.store.group import (
    DEAD,
    DUPLICATES,
    LAST_RECEIVED,
    PENDING,
    RECEIVED,
    REJECTED,
    Deltas,
    Replay,
    latest,
)
from thumpflow.store.ops import WriteContext
from thumpflow.store.rows import DELIVERY_COLUMNS, delivery_from_row, event_row, reason_matches

DeadFilter = Callable[[DeadLetterFilter, Codec], tuple[str, list[Any]]]

_UPDATE_REPLAYED = (
    "UPDATE deliveries SET status = 0, attempts = 0, next_attempt_at = 0.0,"
    " first_failed_at = NULL, last_error = NULL, died_at = NULL, reason = NULL"
    " WHERE delivery_id = ?"
)


# The conversion warnings one `converted_in_part` audit entry lists; more are counted.
SHOWN_WARNINGS = 20


def in_part_detail(warnings: tuple[str, ...]) -> str:
    """The `converted_in_part` audit detail: the first `SHOWN_WARNINGS` warnings,
    joined by `; `, then how many more there were."""
    shown = "; ".join(warnings[:SHOWN_WARNINGS])
    more = len(warnings) - SHOWN_WARNINGS
    return shown if more <= 0 else f"{shown}; and {more} more"


def known_keys(admissions: list[Admission]) -> list[str]:
    """The idempotency keys to look up before screening: each received key and, for a
    message with a content digest, the key it would take as a reused control id."""
    keys = [admission.received.idempotency_key for admission in admissions]
    return keys + [reused_key(a) for a in admissions if a.content_digest is not None]


def screen_admissions(
    admissions: list[Admission],
    known: dict[str, tuple[str, str, str | None]],
    deltas: Deltas,
    audit_rows: list[AuditRow],
) -> tuple[list[Any], list[tuple[int, Admission, str | None]]]:
    """Answer duplicates and inconsistent admissions; return (answers, the ones to write).

    `known` maps idempotency keys committed before (and those of this batch,
    as they are accepted) to (event id, ACK code, content digest). A duplicate
    is answered `Duplicate` with a `duplicate` audit entry; a committed key
    with another digest is a reused control id (`core.event.Admission`): the
    admission goes on under `reused_key`, with a `control_id_reused` audit
    entry, and the event it reused is returned beside it. An admission
    repeating an event id, or with a delivery of an event it does not hold,
    is answered `StoreError`. Each accepted one gets its `received` audit
    entry (then `converted_in_part` when it has conversion warnings) and
    counters, and a placeholder answer at its index for the caller to fill.
    """
    answers: list[Any] = []
    accepted: list[tuple[int, Admission, str | None]] = []
    for given in admissions:
        admission = given
        received = admission.received
        actor = "source:" + received.channel_id
        original = known.get(received.idempotency_key)
        reused_of: str | None = None
        if original is not None and control_id_reused(admission, original[2]):
            reused_of = original[0]
            received = replace(received, idempotency_key=reused_key(admission))
            admission = replace(admission, received=received)
            original = known.get(received.idempotency_key)
        if original is not None:
            answers.append(Duplicate(original[0], original[1]))
            audit_rows.append(
                (
                    received.received_at,
                    actor,
                    "duplicate",
                    original[0],
                    "resent as " + received.event_id,
                )
            )
            deltas.channel(received.channel_id)[DUPLICATES] += 1
            continue
        event_ids = {event.event_id for event in (received, *admission.derived)}
        if len(event_ids) != 1 + len(admission.derived):
            answers.append(StoreError("admission repeats an event_id"))
            continue
        if any(new.event_id not in event_ids for new in admission.deliveries):
            answers.append(StoreError("admission has a delivery for an event it does not contain"))
            continue
        known[received.idempotency_key] = (
            received.event_id,
            admission.ack_code,
            admission.content_digest,
        )
        accepted.append((len(answers), admission, reused_of))
        answers.append(None)
        if reused_of is not None:
            audit_rows.append(
                (
                    received.received_at,
                    actor,
                    "control_id_reused",
                    received.event_id,
                    f"MSH-10 was first used by event {reused_of} for different content; "
                    "admitted as a new event",
                )
            )
        audit_rows.append(
            (
                received.received_at,
                actor,
                "received",
                received.event_id,
                admission.audit_detail or "",
            )
        )
        if admission.conversion_warnings:
            audit_rows.append(
                (
                    received.received_at,
                    actor,
                    CONVERTED_IN_PART,
                    received.event_id,
                    in_part_detail(admission.conversion_warnings),
                )
            )
        counters = deltas.channel(received.channel_id)
        counters[RECEIVED] += 1
        counters[LAST_RECEIVED] = latest(counters[LAST_RECEIVED], received.received_at)
    return answers, accepted


@dataclass(slots=True)
class AdmissionRows:
    """The rows of accepted admissions: events (`event_seq` first, then `EVENT_FIELDS`),
    deliveries (id, event_seq, destination, channel, ordering key, [key_seq,] lane,
    sequence, created_at, business key, content hash, ledger version) and idempotency
    keys (key, event id, ACK code, received_at, digest)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[tuple[Any, ...]] = field(default_factory=list)


def admission_rows(
    accepted: list[tuple[int, Admission, str | None]],
    answers: list[Any],
    deltas: Deltas,
    codec: Codec,
    ids: tuple[Iterator[int], Iterator[int]],
    *,
    key_seqs: Iterator[int] | None = None,
) -> AdmissionRows:
    """Rows for the admissions `screen_admissions` accepted, each answered `Admitted`.

    `ids` hand out event seqs and delivery ids in order; `key_seqs`, when the
    backend keeps them, each delivery's place in its (destination, ordering key).
    """
    event_seqs, delivery_ids = ids
    rows = AdmissionRows()
    for index, admission, reused_of in accepted:
        received = admission.received
        events: dict[str, tuple[int, Event]] = {}
        for event in (received, *admission.derived):
            seq = next(event_seqs)
            events[event.event_id] = (seq, event)
            rows.events.append((seq, *event_row(event, codec)))
        created_at = received.received_at
        deliveries: list[Delivery] = []
        for new in admission.deliveries:
            event_seq, event = events[new.event_id]
            delivery_id = next(delivery_ids)
            place = () if key_seqs is None else (next(key_seqs),)
            rows.deliveries.append(
                (
                    delivery_id,
                    event_seq,
                    new.destination_id,
                    event.channel_id,
                    new.ordering_key,
                    *place,
                    int(new.lane),
                    new.sequence,
                    created_at,
                    new.business_key,
                    new.content_hash,
                    new.ledger_version,
                )
            )
            deliveries.append(new_delivery(delivery_id, new, event, created_at))
            deltas.outbox(new.destination_id, event.channel_id)[PENDING] += 1
        rows.keys.append(
            (
                received.idempotency_key,
                received.event_id,
                admission.ack_code,
                created_at,
                admission.content_digest,
            )
        )
        answers[index] = Admitted(received.event_id, tuple(deliveries), reused_of)
    return rows


def new_delivery(delivery_id: int, new: NewDelivery, event: Event, created_at: float) -> Delivery:
    """The pending delivery an admission hands back (and the outbox schedules)."""
    return Delivery(
        delivery_id=delivery_id,
        event_id=new.event_id,
        destination_id=new.destination_id,
        channel_id=event.channel_id,
        ordering_key=new.ordering_key,
        lane=new.lane,
        sequence=new.sequence,
        created_at=created_at,
        body=event.body,
        content_type=event.content_type,
        event_type=event.event_type,
        business_key=new.business_key,
        content_hash=new.content_hash,
    )


def reject_inputs(context: WriteContext, rejects: list[Reject], deltas: Deltas) -> list[Any]:
    """Keep rejected input (raw bytes sealed when encrypting), audited; answer the reject ids."""
    answers: list[Any] = []
    for reject in rejects:
        row = context.conn.execute(
            "INSERT INTO rejects (channel_id, received_at, peer, reason, raw)"
            " VALUES (?, ?, ?, ?, ?) RETURNING reject_id",
            (
                reject.channel_id,
                reject.received_at,
                reject.peer,
                reject.reason,
                context.codec.seal(reject.raw, REJECT_RAW),
            ),
        ).fetchone()
        reject_id = int(row[0])
        context.audit.append(
            [
                (
                    reject.received_at,
                    "source:" + reject.channel_id,
                    "rejected",
                    f"reject:{reject_id}",
                    reject.reason,
                )
            ]
        )
        deltas.channel(reject.channel_id)[REJECTED] += 1
        answers.append(reject_id)
    return answers


_BUMP_SIGNAL = (
    "INSERT INTO signals (name, generation) VALUES (?, 1)"
    " ON CONFLICT (name) DO UPDATE SET generation = signals.generation + 1"
)


def replay_dead(
    context: WriteContext,
    replays: list[Replay],
    deltas: Deltas,
    *,
    dead_filter: DeadFilter,
    lock: str,
    newer_delivered: str,
    at: float,
) -> list[Any]:
    """Dead deliveries back to pending (attempts reset), unless a newer one of their key was
    delivered; one `ReplayResult` per replay.

    See `Store.replay`: the order check (`newer_delivered`) and the return
    to pending share this transaction, so no delivery can be recorded in
    between. A refused delivery is left as it was and audited nowhere; a
    replayed one is audited `replayed`, or `replayed.out_of_order` with the
    newer delivery's id. Each destination that got deliveries back has its
    `replay:<destination>` signal raised in the same transaction, so the
    nodes of a cluster that send its partitions load them again.
    """
    codec = context.codec
    answers: list[Any] = []
    for replay in replays:
        where, params = dead_filter(replay.flt, codec)
        rows = context.conn.execute(
            f"SELECT {DELIVERY_COLUMNS}, d.reason FROM deliveries d"
            f" JOIN events e ON e.event_seq = d.event_seq WHERE {where}"
            f" ORDER BY d.delivery_id{lock}",
            params,
        ).fetchall()
        replayed: list[Delivery] = []
        refused: list[OrderConflict] = []
        forced: list[OrderConflict] = []
        entries: list[AuditRow] = []
        for row in rows:
            if not reason_matches(replay.flt, codec.open_text(row[-1], DELIVERY_REASON)):
                continue
            delivery = delivery_from_row(row[:-1], codec)
            conflict = _order_conflict(context, newer_delivered, delivery)
            subject = f"delivery:{delivery.delivery_id}"
            if conflict is None:
                entries.append((at, replay.actor, "replayed", subject, replay.reason))
            elif not replay.out_of_order:
                refused.append(conflict)
                continue
            else:
                forced.append(conflict)
                detail = f"{replay.reason} (after delivery {conflict.newer_delivery_id})"
                entries.append((at, replay.actor, "replayed.out_of_order", subject, detail))
            delivery.attempts = 0
            delivery.next_attempt_at = 0.0
            delivery.first_failed_at = None
            delivery.last_error = None
            replayed.append(delivery)
            counters = deltas.outbox(delivery.destination_id, delivery.channel_id)
            counters[DEAD] -= 1
            counters[PENDING] += 1
        if replayed:
            context.conn.executemany(_UPDATE_REPLAYED, [(d.delivery_id,) for d in replayed])
            destinations = sorted({d.destination_id for d in replayed})
            context.conn.executemany(_BUMP_SIGNAL, [(f"replay:{d}",) for d in destinations])
        context.audit.append(entries)
        answers.append(ReplayResult(tuple(replayed), tuple(refused), tuple(forced)))
    return answers


def _order_conflict(
    context: WriteContext, newer_delivered: str, delivery: Delivery
) -> OrderConflict | None:
    """The `OrderConflict` of a dead delivery, or None when no newer one was delivered."""
    row = context.conn.execute(newer_delivered, (delivery.delivery_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    return OrderConflict(delivery.delivery_id, delivery.destination_id, int(row[0]), row[1])

"""`thumpflow status` and `thumpflow dlq list|show|replay`.

Reads go straight to the store, read-only, so they work whether or not the
engine runs. A replay goes through the running engine's HTTP API when it
answers (so the engine schedules the deliveries at once), otherwise straight
to the store (the engine schedules them when it next starts). Either way the
replay is audited with its actor and reason, and a dead delivery whose
ordering key has had a newer delivery delivered is refused (the command says
which and why, and exits 1) unless `--out-of-order` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import os
import time
import urllib.parse
from typing import Any

from thumpflow.cli._api import call
from thumpflow.cli._shared import age, table, when
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.event import AuditEntry, DeadLetterFilter
from thumpflow.runtime.build import open_store


def status(path: str, *, as_json: bool) -> int:
    """Print per channel and destination: received, delivered, queued, dead, ages."""
    config = load_config(path)
    stats = asyncio.run(_stats(config))
    if as_json:
        print(json.dumps([dataclasses.asdict(item) for item in stats], indent=2))
        return 0
    now = time.time()
    rows = [
        [
            "CHANNEL",
            "DESTINATION",
            "RECEIVED",
            "DELIVERED",
            "QUEUED",
            "DEAD",
            "OLDEST QUEUED",
            "LAST SUCCESS",
        ]
    ]
    for channel in stats:
        rows.append([channel.channel_id, "", str(channel.received), "", "", "", "", ""])
        for outbox in channel.outboxes:
            oldest = None if outbox.oldest_pending_at is None else now - outbox.oldest_pending_at
            rows.append(
                [
                    "",
                    outbox.destination_id,
                    "",
                    str(outbox.delivered),
                    str(outbox.pending),
                    str(outbox.dead),
                    age(oldest),
                    when(outbox.last_delivered_at),
                ]
            )
        if channel.duplicates or channel.rejected:
            rows.append(
                [
                    "",
                    f"(duplicates {channel.duplicates}, rejected {channel.rejected})",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
    print(table(rows))
    return 0


async def _stats(config: Config) -> list[Any]:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        return await store.stats()
    finally:
        await store.close()


def _filter(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(
        destination_id=getattr(args, "destination", None),
        channel_id=getattr(args, "channel", None),
        event_type=getattr(args, "event_type", None),
        reason_contains=getattr(args, "reason_contains", None),
        delivery_ids=tuple(args.ids) if getattr(args, "ids", None) else None,
    )


def dlq(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.dlq_command == "list":
        return asyncio.run(_list(config, _filter(args), args.limit, args.json))
    if args.dlq_command == "edit":
        return _edit(config, args.delivery_id, args.file, args.reason)
    if args.dlq_command == "show":
        if args.body and not (args.reason or "").strip():
            raise ThumpflowError("--body shows patient data: give --reason WHY (it is audited)")
        return asyncio.run(_show(config, args.delivery_id, args.reason if args.body else None))
    return _replay(config, args)


async def _list(config: Config, flt: DeadLetterFilter, limit: int, as_json: bool) -> int:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        letters = await store.dead_letters(flt, limit)
    finally:
        await store.close()
    if as_json:
        print(json.dumps([dataclasses.asdict(letter) for letter in letters], indent=2))
        return 0
    if not letters:
        print("no dead deliveries")
        return 0
    rows = [["ID", "DESTINATION", "CHANNEL", "EVENT TYPE", "ATTEMPTS", "DIED", "REASON"]]
    rows.extend(
        [
            str(letter.delivery_id),
            letter.destination_id,
            letter.channel_id,
            letter.event_type,
            str(letter.attempts),
            when(letter.died_at),
            letter.reason[:80],
        ]
        for letter in letters
    )
    print(table(rows))
    return 0


async def _show(config: Config, delivery_id: int, body_reason: str | None) -> int:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        letters = await store.dead_letters(DeadLetterFilter(delivery_ids=(delivery_id,)), 1)
        if not letters:
            print(f"delivery {delivery_id} is not on the dead-letter list")
            return 1
        letter = letters[0]
        event = await store.event(letter.event_id)
        trail = await store.audit(f"delivery:{delivery_id}", 50)
    finally:
        await store.close()
    print(f"delivery     {letter.delivery_id}")
    print(f"event        {letter.event_id} ({letter.event_type})")
    print(f"channel      {letter.channel_id}")
    print(f"destination  {letter.destination_id}")
    print(f"lane         {letter.lane.label}")
    print(f"attempts     {letter.attempts}")
    print(f"created      {when(letter.created_at)}")
    print(f"died         {when(letter.died_at)}")
    print(f"reason       {letter.reason}")
    print("audit trail:")
    for entry in reversed(trail):
        print(f"  {when(entry.at)}  {entry.actor:<16} {entry.action:<16} {entry.detail}")
    if body_reason is not None and event is not None:
        print("message:")
        print(await _viewed_body(config, event.event_id, body_reason))
    return 0


@dataclasses.dataclass(slots=True, frozen=True)
class _Replayed:
    """A replay's answer as the command prints it (from the API or the store)."""

    replayed: list[int]
    out_of_order: list[int]
    refused: list[str]


async def _viewed_body(config: Config, event_id: str, reason: str) -> str:
    """The message, its view audited (`payload.viewed`) with the reason before it is shown.

    Through the running engine's API when one answers (under the token's
    name), else in the store as $USER.
    """
    query = urllib.parse.urlencode({"reason": reason})
    answer = call(config, "GET", f"/api/events/{event_id}/payload?{query}", None, "the view")
    if answer is not None:
        body = str(answer["body"])
        if answer["encoding"] == "base64":
            body = base64.b64decode(body).decode("utf-8", "replace")
        return body.replace("\r", "\n")
    store = open_store(config)
    await store.open()
    try:
        actor = os.environ.get("USER", "operator")
        await store.append_audit(
            AuditEntry(time.time(), actor, "payload.viewed", event_id, reason.strip())
        )
        event = await store.event(event_id)
    finally:
        await store.close()
    return "" if event is None else event.body.decode("utf-8", "replace").replace("\r", "\n")


def _replay(config: Config, args: argparse.Namespace) -> int:
    """Replay; 1 when some matching dead delivery was refused (its key had newer deliveries)."""
    flt = _filter(args)
    if flt == DeadLetterFilter() and not args.all:
        print("name deliveries with --id, a filter, or --all", flush=True)
        return 2
    body = {
        "reason": args.reason,
        "destination": flt.destination_id,
        "channel": flt.channel_id,
        "event_type": flt.event_type,
        "reason_contains": flt.reason_contains,
        "delivery_ids": list(flt.delivery_ids or ()),
        "all": bool(args.all),
        "out_of_order": bool(args.out_of_order),
    }
    answer = _replay_via_api(config, body)
    where = "through the running engine"
    if answer is None:
        answer = asyncio.run(
            _replay_in_store(config, flt, args.actor, args.reason, out_of_order=args.out_of_order)
        )
        where = "in the store (the engine sends them when it starts)"
    print(f"replayed {len(answer.replayed)} deliveries {where}")
    if answer.out_of_order:
        ids = ", ".join(str(i) for i in answer.out_of_order)
        print(f"replayed out of order (asked with --out-of-order): {ids}")
    for refusal in answer.refused:
        print(f"refused: {refusal}")
    if answer.refused:
        print(f"{len(answer.refused)} refused; add --out-of-order to replay them anyway")
        return 1
    return 0


def _replay_via_api(config: Config, body: dict[str, Any]) -> _Replayed | None:
    answer = call(config, "POST", "/api/dead-letters/replay", body, "the replay")
    if answer is None:
        return None
    return _Replayed(
        replayed=[int(value) for value in answer["replayed"]],
        out_of_order=[int(value) for value in answer.get("out_of_order", [])],
        refused=[str(item["reason"]) for item in answer.get("refused", [])],
    )


async def _replay_in_store(
    config: Config, flt: DeadLetterFilter, actor: str, reason: str, *, out_of_order: bool
) -> _Replayed:
    store = open_store(config)
    await store.open()
    try:
        result = await store.replay(flt, actor, reason, out_of_order=out_of_order)
    finally:
        await store.close()
    return _Replayed(
        replayed=[delivery.delivery_id for delivery in result.replayed],
        out_of_order=[conflict.delivery_id for conflict in result.out_of_order],
        refused=[conflict.explain() for conflict in result.refused],
    )


def _edit(config: Config, delivery_id: int, file: str, reason: str) -> int:
    """Send the edited message of `file` to a dead letter's destination, through the engine."""
    try:
        body = open(file, encoding="utf-8").read()  # noqa: SIM115
    except (OSError, UnicodeDecodeError) as err:
        raise ThumpflowError(f"{file}: cannot read: {err}") from None
    path = f"/api/dead-letters/{delivery_id}/edit"
    answer = call(config, "POST", path, {"reason": reason, "body": body}, "the edit")
    if answer is None:
        raise ThumpflowError(
            f"no engine answers on {config.api.host}:{config.api.port}: an edited message is "
            "sent by the running engine"
        )
    again = " (this same edit was sent before)" if answer["duplicate"] else ""
    print(f"delivery {delivery_id}: edited copy queued for {answer['destination_id']} as event "
          f"{answer['event_id']}{again}")  # fmt: skip
    return 0

"""Flow rejects on the command line: `thumpflow rejects messages | message ID | reprocess ID`.

`messages` reads the store (read-only, safe while the engine runs) and lists
ids, channels, times, peers and reasons, never the bytes. `message` shows the
kept bytes through the running engine's API, which audits the view with the
reason (`payload.viewed`). `reprocess` sends the kept bytes, or the edited
message of `--edit FILE`, through the channel again the way they came in
(MLLP or HTTP ingest, HL7 v2 or FHIR JSON; audited, the original kept) and
prints the channel's answer: the ACK code for MLLP input, else accepted (as
event ...) or refused, with why; the engine must be running.
"""

from __future__ import annotations

import argparse
import asyncio
import urllib.parse
from pathlib import Path
from typing import Any

from thumpflow.cli._api import call
from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config.model import Config
from thumpflow.core.errors import ThumpflowError
from thumpflow.runtime.build import open_store


def add_actions(actions: Any) -> None:
    """Declare `messages`, `message` and `reprocess` beside the batch reject actions."""
    listing = actions.add_parser("messages", help="flow rejects: messages a channel refused")
    listing.add_argument("--channel", help="only this channel")
    listing.add_argument("--contains", help="only reasons containing this text")
    listing.add_argument("--limit", type=int, default=100)
    show = actions.add_parser("message", help="one flow reject's message (audited, needs --reason)")
    show.add_argument("reject_id", type=int)
    show.add_argument("--reason", required=True, help="why you look (kept in the audit trail)")
    again = actions.add_parser(
        "reprocess",
        help="send a flow reject through its channel again, as kept or --edit FILE (audited)",
        epilog="example: thumpflow rejects reprocess 12 --edit fixed.hl7 "
        '--reason "MSH-7 added, confirmed with the lab"',
    )
    again.add_argument("reject_id", type=int)
    again.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    again.add_argument("--edit", type=Path, help="file with the corrected message")
    for sub in (listing, show, again):
        config_argument(sub)


def run(config: Config, args: argparse.Namespace) -> int:
    if args.rejects_command == "messages":
        return asyncio.run(_list(config, args.channel, args.contains, args.limit))
    if args.rejects_command == "message":
        query = urllib.parse.urlencode({"reason": args.reason})
        answer = _engine(config, "GET", f"/api/rejects/{args.reject_id}/payload?{query}", None)
        print(answer["body"].replace("\r", "\n").rstrip("\n"))
        return 0
    body = None
    if args.edit is not None:
        try:
            body = args.edit.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ThumpflowError(f"{args.edit}: cannot read: {err}") from None
    answer = _engine(
        config,
        "POST",
        f"/api/rejects/{args.reject_id}/reprocess",
        {"reason": args.reason, "body": body},
    )
    edited = "edited" if answer["edited"] else "as kept"
    outcome = answer["ack_code"] or answer["status"]
    if answer["event_id"]:
        outcome += f" as event {answer['event_id']}"
    if answer["error"]:
        outcome += f": {answer['error']}"
    print(f"reject {answer['reject_id']} ({edited}) -> channel {answer['channel_id']}: {outcome}")
    return 0 if answer["accepted"] else 1


def _engine(config: Config, method: str, path: str, body: Any) -> Any:
    answer = call(config, method, path, body, "the request")
    if answer is None:
        raise ThumpflowError(
            f"no engine answers on {config.api.host}:{config.api.port}: viewing and reprocessing "
            "a flow reject go through the running engine (so they are audited and delivered)"
        )
    return answer


async def _list(config: Config, channel: str | None, contains: str | None, limit: int) -> int:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        found = await store.rejects(channel, limit if contains is None else 10_000)
    finally:
        await store.close()
    needle = (contains or "").lower()
    rows = [["ID", "CHANNEL", "RECEIVED", "PEER", "REASON"]]
    rows.extend(
        [str(reject_id), r.channel_id, when(r.received_at), r.peer, r.reason[:100]]
        for reject_id, r in found
        if needle in r.reason.lower()
    )
    rows = rows[: limit + 1]
    print(table(rows) if len(rows) > 1 else "no flow rejects")
    return 0

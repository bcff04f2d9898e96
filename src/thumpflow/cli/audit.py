"""`thumpflow audit verify [--expect ID:HASH]` and `thumpflow audit list`.

Both open the store read-only, so they work whether or not the engine runs.
`verify` exits 0 and prints the entry count and the head anchor when the
chain is intact (and the expected anchor, if given, is still in it); it
exits 1 naming the first broken entry and what is wrong with it (edited,
deleted, reordered, bad link, truncated). Entries hold ids, counts and
reasons, never message content.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json

from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.audit import Anchor, AuditVerdict
from thumpflow.core.event import AuditEntry
from thumpflow.runtime.build import open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `verify` and `list` actions."""
    actions = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check the hash chain of the audit trail")
    verify.add_argument(
        "--expect",
        metavar="ID:HASH",
        help="an anchor logged earlier (`audit.anchor`); fails if that entry is gone or changed",
    )
    listing = actions.add_parser("list", help="audit entries, newest first")
    listing.add_argument("--subject", help="only this subject (e.g. delivery:42, a job id)")
    listing.add_argument("--action", help="only this action (e.g. replayed, purged)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    for sub in (verify, listing):
        config_argument(sub)


def run(args: argparse.Namespace) -> int:
    """Execute the chosen action; see the module docstring."""
    config = load_config(args.config)
    if args.audit_command == "verify":
        expect = None
        if args.expect is not None:
            try:
                expect = Anchor.parse(args.expect)
            except ValueError as err:
                print(f"thumpflow: --expect: {err}")
                return 2
        return _report(asyncio.run(_verify(config, expect)))
    entries = asyncio.run(_list(config, args.subject, args.action, args.limit))
    if args.json:
        print(json.dumps([dataclasses.asdict(entry) for entry in entries], indent=2))
        return 0
    rows = [["ID", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL"]]
    rows.extend(
        [str(e.entry_id), when(e.at), e.actor, e.action, e.subject, e.detail[:80]] for e in entries
    )
    print(table(rows) if entries else "no audit entries")
    return 0


async def _verify(config: Config, expect: Anchor | None) -> AuditVerdict:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        return await store.verify_audit(expect)
    finally:
        await store.close()


async def _list(
    config: Config, subject: str | None, action: str | None, limit: int
) -> list[AuditEntry]:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        return await store.audit(subject, limit, action)
    finally:
        await store.close()


def _report(verdict: AuditVerdict) -> int:
    if verdict.intact:
        head = "none (empty)" if verdict.head is None else str(verdict.head)
        print(f"audit trail intact: {verdict.count} entries; head {head}")
        return 0
    print(f"audit trail BROKEN ({verdict.breach}): {verdict.problem}")
    print(f"checked {verdict.count} entries before it")
    return 1

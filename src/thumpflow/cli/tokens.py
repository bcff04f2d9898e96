"""`thumpflow tokens create NAME --role R --reason WHY | list | revoke ID --reason WHY`.

Through the running engine's API when one answers (the caller's token must be
an admin's; the audit names that token), else directly on the store, which is
how an operator recovers a lost admin token: stop the engine, `tokens create
NAME --role admin`. A new token is printed once, on stdout, and never again;
the store keeps only its hash. Listings show names, roles and times only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from thumpflow.cli._api import call
from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.access import Role, new_token, token_hash
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import ThumpflowError
from thumpflow.runtime.build import open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `create`, `list` and `revoke` actions."""
    actions = parser.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="issue a token (printed once)")
    create.add_argument("name", help="who or what the token is for")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    listing = actions.add_parser("list", help="issued tokens: names, roles, times")
    revoke = actions.add_parser("revoke", help="revoke a token at once (audited)")
    revoke.add_argument("token_id", type=int)
    revoke.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    for sub in (create, listing, revoke):
        config_argument(sub)
        sub.add_argument(
            "--actor",
            default=os.environ.get("USER", "operator"),
            help="who, when working on the store with the engine stopped "
            "(through the engine, the API token's name is audited; default: $USER)",
        )


def run(args: argparse.Namespace) -> int:
    """Execute the chosen action; see the module docstring."""
    config = load_config(args.config)
    if args.tokens_command == "create":
        body = {"name": args.name, "role": args.role, "reason": args.reason}
        answer = call(config, "POST", "/api/tokens", body, "to issue the token")
        if answer is None:
            answer = asyncio.run(_create(config, args.name, Role(args.role), args))
        print(f"token {answer['token_id']} for {answer['name']} ({answer['role']}); shown once:")
        print(answer["token"])
        return 0
    if args.tokens_command == "list":
        listed = call(config, "GET", "/api/tokens", None, "to list tokens")
        tokens = listed["tokens"] if listed is not None else asyncio.run(_list(config))
        rows = [["ID", "NAME", "ROLE", "CREATED", "BY", "REVOKED"]]
        rows += [
            [
                str(t["token_id"]),
                t["name"],
                t["role"],
                when(t["created_at"]),
                t["created_by"],
                when(t["revoked_at"]),
            ]
            for t in tokens
        ]
        print(table(rows))
        return 0
    path = f"/api/tokens/{args.token_id}/revoke"
    revoked = call(config, "POST", path, {"reason": args.reason}, "to revoke the token")
    if revoked is None and not asyncio.run(_revoke(config, args.token_id, args)):
        raise ThumpflowError(f"no active token {args.token_id}")
    print(f"token {args.token_id} revoked")
    return 0


async def _create(config: Config, name: str, role: Role, args: argparse.Namespace) -> Any:
    token = new_token()
    store = open_store(config)
    await store.open()
    try:
        token_id = await store.add_token(
            name, role, token_hash(token), args.actor, SystemClock().now(), reason=args.reason
        )
    finally:
        await store.close()
    return {"token_id": token_id, "name": name, "role": role.value, "token": token}


async def _list(config: Config) -> list[dict[str, Any]]:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        tokens = await store.tokens()
    finally:
        await store.close()
    return [
        {
            "token_id": t.token_id,
            "name": t.name,
            "role": t.role.value,
            "created_at": t.created_at,
            "created_by": t.created_by,
            "revoked_at": t.revoked_at,
        }
        for t in tokens
    ]


async def _revoke(config: Config, token_id: int, args: argparse.Namespace) -> bool:
    store = open_store(config)
    await store.open()
    try:
        return await store.revoke_token(token_id, args.actor, args.reason, SystemClock().now())
    finally:
        await store.close()

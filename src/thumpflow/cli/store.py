"""`thumpflow store purge | rekey | vacuum | keygen | copy`: upkeep of the durable store.

`purge` applies `store.retention` now (the engine also does it periodically);
`rekey` re-encrypts every stored payload under the first `store.encryption`
key and retires keys no longer used; both work in short transactions, so
they may run while the engine runs (the engine must already list the new key
first). `vacuum` rebuilds the file once (switching a database created before
schema 5 to incremental auto-vacuum) and needs the engine stopped. `keygen`
prints a new random key for `key_env`/`key_file`. `copy` moves an
installation from its SQLite file into an empty PostgreSQL database (engine
stopped; the password from `--password-env` or libpq's own `PGPASSWORD`;
`--config` of the SQLite installation when its store is encrypted).
Output is counts and key ids, never keys or content.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from thumpflow.cli._api import call
from thumpflow.cli._shared import config_argument
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.retention import PurgeCounts, RekeyCounts
from thumpflow.runtime.build import open_store, retention_policy
from thumpflow.runtime.keys import load_cipher, new_key
from thumpflow.runtime.store_copy import copy_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `purge`, `rekey`, `vacuum` and `keygen` actions."""
    actions = parser.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    purge = actions.add_parser("purge", help="delete what store.retention lets go, now")
    rekey = actions.add_parser("rekey", help="re-encrypt stored payloads under the current key")
    vacuum = actions.add_parser("vacuum", help="rebuild the database file (engine stopped)")
    actions.add_parser("keygen", help="print a new random encryption key (base64)")
    copy = actions.add_parser("copy", help="copy a SQLite store into an empty PostgreSQL one")
    copy.add_argument("--from", dest="source", required=True, help="the SQLite store file")
    copy.add_argument(
        "--to", dest="target", required=True, help="PostgreSQL DSN or URI, without a password"
    )
    copy.add_argument(
        "--password-env", help="environment variable holding the password (else PGPASSWORD)"
    )
    copy.add_argument(
        "--config", help="the SQLite installation's configuration, for its store.encryption keys"
    )
    for sub in (purge, rekey, vacuum):
        config_argument(sub)


def run(args: argparse.Namespace) -> int:
    """Execute the chosen action; see the module docstring."""
    if args.store_command == "keygen":
        print(new_key())
        return 0
    if args.store_command == "copy":
        password = None
        if args.password_env:
            password = os.environ.get(args.password_env)
            if not password:
                raise ThumpflowError(f"environment variable {args.password_env} is not set")
        cipher = load_cipher(load_config(args.config).store.encryption) if args.config else None
        copied = asyncio.run(copy_store(Path(args.source), args.target, password, cipher))
        print(f"copied: {copied.summary()}")
        return 0
    config = load_config(args.config)
    if args.store_command == "purge":
        if not retention_policy(config).purges:
            raise ThumpflowError("store.retention keeps everything: nothing to purge")
        counts = asyncio.run(_purge(config))
        print(f"purged: {counts.summary()}")
        return 0
    if args.store_command == "rekey":
        if config.store.encryption is None:
            raise ThumpflowError("store.encryption is not configured: nothing to rekey")
        done = asyncio.run(_rekey(config))
        print(
            f"re-encrypted {done.total} values (event bodies {done.event_bodies}, rejects "
            f"{done.rejects}, row rejects {done.row_rejects}, delivery texts "
            f"{done.delivery_texts}); retired keys: {', '.join(done.retired) or 'none'}"
        )
        return 0
    if call(config, "GET", "/api/health", None, "the health check") is not None:
        raise ThumpflowError(
            f"an engine answers on {config.api.host}:{config.api.port} with this configuration: "
            "stop it first (vacuum rebuilds the file it is writing)"
        )
    before, after = asyncio.run(_vacuum(config))
    print(f"vacuumed: {before} bytes before, {after} bytes after")
    return 0


async def _purge(config: Config) -> PurgeCounts:
    store = open_store(config)
    await store.open()
    try:
        return await store.purge(retention_policy(config))
    finally:
        await store.close()


async def _rekey(config: Config) -> RekeyCounts:
    store = open_store(config)
    await store.open()
    try:
        return await store.rekey()
    finally:
        await store.close()


async def _vacuum(config: Config) -> tuple[int, int]:
    store = open_store(config)
    await store.open()
    try:
        return await store.vacuum()
    finally:
        await store.close()

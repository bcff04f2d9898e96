"""`thumpflow reload --config FILE --reason WHY`: the running engine re-reads its configuration.

The engine reads the file it was started with again and applies it channel
by channel (unchanged channels keep their connections, changed ones drain
and restart, removed ones stop, added ones start); a file that does not
validate is refused with every located problem and the running
configuration stays. Through the engine's HTTP API (administrator token;
the act is audited with the reason); `kill -HUP <pid>` (what `systemctl
reload` sends) does the same without a token.
"""

from __future__ import annotations

import argparse

from thumpflow.cli._api import call
from thumpflow.cli._shared import config_argument
from thumpflow.config import load_config
from thumpflow.core.errors import ThumpflowError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--reason", required=True, help="why (kept in the audit trail)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    answer = call(config, "POST", "/api/config/reload", {"reason": args.reason}, "the reload")
    if answer is None:
        where = f"{config.api.host}:{config.api.port}"
        raise ThumpflowError(
            f"no engine answers on {where}; a stopped engine reads the file when it starts "
            "(or send SIGHUP to the engine's process)"
        )
    for what in ("changed", "removed", "added", "unchanged"):
        if answer[what]:
            print(f"{what}: {', '.join(answer[what])}")
    if not (answer["changed"] or answer["removed"] or answer["added"]):
        print("nothing changed")
    return 0

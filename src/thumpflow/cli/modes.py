"""`thumpflow views mode [MODE] --reason WHY`: show or declare the operating mode.

Without MODE it prints the mode in force, since when, how it was declared
(an operator's act or the rules), by whom and why, and each rule's measure.
With `normal`, `surge` or `diversion` it declares that mode (an act that
holds until an operator declares another); `auto` hands the choice back to
the configured rules. Through the running engine's API when one listens
(audited under the token's name); otherwise recorded in the store, audited
under `--actor`, and applied when the engine starts (`auto` is then decided
by the rules at start). Exit status 2 when a declaration has no reason.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from thumpflow.cli._api import call
from thumpflow.cli._shared import config_argument
from thumpflow.config.model import Config
from thumpflow.core.clock import SystemClock
from thumpflow.core.modes import ModeOrigin, ModeState, OperatingMode, initial_state
from thumpflow.runtime.build import open_store

CHOICES = ("normal", "surge", "diversion", "auto")


def add_parser(actions: Any) -> None:
    """Declare the `mode` action under `thumpflow views`."""
    mode = actions.add_parser("mode", help="show or declare the operating mode (surge, ...)")
    config_argument(mode)
    mode.add_argument("mode", nargs="?", choices=CHOICES, help="the mode to declare")
    mode.add_argument("--reason", help="why (required to declare; lands in the audit trail)")
    mode.add_argument(
        "--actor",
        default=os.environ.get("USER", "operator"),
        help="who, when recorded in the store with the engine stopped (default: $USER)",
    )


def run(config: Config, args: argparse.Namespace) -> int:
    """Show or declare; see the module docstring."""
    if args.mode is None:
        answer = call(config, "GET", "/api/mode", None, "reading the mode")
        if answer is None:
            state = asyncio.run(_read(config))
            answer = {**_plain(state), "rules": []}
        _print(answer)
        return 0
    reason = (args.reason or "").strip()
    if not reason:
        print("declaring a mode needs --reason (it lands in the audit trail)", flush=True)
        return 2
    body = {"mode": args.mode, "reason": reason}
    answer = call(config, "POST", "/api/mode", body, "the mode declaration")
    if answer is not None:
        _print(answer)
        return 0
    state = asyncio.run(_declare(config, args.mode, args.actor, reason))
    _print(_plain(state))
    print("recorded in the store; the engine applies it when it starts")
    return 0


def _plain(state: ModeState) -> dict[str, Any]:
    return {
        "mode": state.mode.value,
        "since": state.since,
        "origin": state.origin.value,
        "actor": state.actor,
        "reason": state.reason,
        "rule": state.rule,
    }


def _print(answer: dict[str, Any]) -> None:
    since = datetime.fromtimestamp(float(answer["since"]), UTC).isoformat(timespec="seconds")
    how = "declared by" if answer["origin"] == "act" else "decided by the rules; last set by"
    rule = f", rule {answer['rule']}" if answer.get("rule") else ""
    print(f"mode: {answer['mode']} since {since} ({how} {answer['actor']}{rule})")
    print(f"why: {answer['reason']}")
    for item in answer.get("rules", []):
        threshold = (
            f"at least {item['at_least']:g}"
            if item.get("at_least") is not None
            else f"at most {item['at_most']:g}"
        )
        value = "?" if item.get("value") is None else f"{item['value']:g}"
        holding = "holds" if item["holding"] else "does not hold"
        print(
            f"rule {item['id']} ({item['mode']}): {item['measure']} {value}, {threshold}: {holding}"
        )


async def _read(config: Config) -> ModeState:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        return await store.operating_mode() or initial_state(SystemClock().now())
    finally:
        await store.close()


async def _declare(config: Config, mode: str, actor: str, reason: str) -> ModeState:
    now = SystemClock().now()
    if mode == "auto":
        state = ModeState(
            OperatingMode.NORMAL, now, ModeOrigin.RULE, actor, f"handed back to the rules: {reason}"
        )
    else:
        state = ModeState(OperatingMode(mode), now, ModeOrigin.ACT, actor, reason)
    store = open_store(config)
    await store.open()
    try:
        await store.set_operating_mode(state)
        return await store.operating_mode() or state
    finally:
        await store.close()

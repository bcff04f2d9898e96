"""`thumpflow try --config FILE CHANNEL MESSAGE_FILE`: one message through a channel, shown.

Nothing is stored or delivered. Each message of the file goes through the
channel's pipeline and every stage is printed: parsed segments, the event
the engine would commit, the filter decision, the lane, the transform's
output (a FHIR Bundle is pretty-printed) and which destinations would receive
what. Colours on a terminal (not when NO_COLOR is set); `--json` for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from thumpflow.cli._shared import config_argument
from thumpflow.config import load_config
from thumpflow.core.errors import MessageError, ThumpflowError
from thumpflow.core.event import Event
from thumpflow.flow.explain import ConditionResult, Explanation, explain
from thumpflow.flow.pipeline import ChannelPipeline
from thumpflow.hl7v2 import Message, split_messages
from thumpflow.runtime.conversion import configure_conversion
from thumpflow.runtime.transform_modules import (
    add_transforms_path,
    channel_transforms,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("channel", help="channel id")
    parser.add_argument("message_file", help="file with one or more HL7 v2 messages")
    parser.add_argument("--json", action="store_true", help="print JSON")


class _Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def head(self, text: str) -> str:
        return self._wrap("1;36", text)

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _body(event: Event) -> str:
    if "json" in event.content_type:
        try:
            return json.dumps(json.loads(event.body), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    text = event.body.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def _mark(style: _Style, check: ConditionResult) -> str:
    return style.good("✓ holds") if check.holds else style.bad("✗ fails")


def _render(index: int, found: Explanation, style: _Style) -> None:
    event = found.received
    print(style.head(f"── message {index} ──"))
    print(style.head("parsed"))
    print("  " + " ".join(f"{name}({count})" for name, count in found.segments))
    print(style.head("event"))
    print(
        f"  type {event.event_type}   ordering key {event.ordering_key}   lane {event.lane.label}"
    )
    print(f"  idempotency key {event.idempotency_key}   sequence {event.sequence}")
    print(style.head("filter"))
    if not found.filter:
        print("  (no filter: every message is accepted)")
    for check in found.filter:
        print(f"  {_mark(style, check)}  {check.description}")
    print(
        "  "
        + (
            style.good("accepted")
            if found.accepted
            else style.bad("filtered out: stored, not delivered")
        )
    )
    print(style.head("lane"))
    rule = "default" if found.lane_rule is None else f"rule {found.lane_rule + 1}"
    print(f"  {event.lane.label} ({rule})")
    if not found.accepted:
        return
    print(style.head("transform"))
    if not found.transformed:
        print(style.dim("  (no transform: destinations receive the message as received)"))
    if found.transform_error is not None:
        print(
            "  "
            + style.bad(f"failed: {found.transform_error} (the engine would reject the message)")
        )
        return
    for warning in found.conversion_warnings:
        print("  " + style.bad(f"converted in part: {warning} (recorded in its audit trail)"))
    for output in found.outputs:
        print(style.dim(f"  {output.content_type}, {len(output.body)} bytes"))
        for line in _body(output).splitlines():
            print("  " + line)
    print(style.head("routing"))
    for route in found.routes:
        verdict = style.good("receives") if route.receives else style.bad("skipped")
        count = f" {len(found.outputs)} event(s)" if route.receives else ""
        print(f"  {route.destination_id}: {verdict}{count}")
        for check in route.conditions:
            print(f"    {_mark(style, check)}  {check.description}")
        if route.transform_error is not None:
            print("    " + style.bad(f"{route.transform_error} (would be dead-lettered)"))
        for sent in route.sent:
            print(
                style.dim(f"    after its transform: {sent.content_type}, {len(sent.body)} bytes")
            )
            for line in _body(sent).splitlines():
                print("    " + line)


def _as_json(found: Explanation) -> dict[str, Any]:
    event = found.received
    return {
        "segments": [{"id": name, "fields": count} for name, count in found.segments],
        "event": {
            "event_type": event.event_type,
            "ordering_key": event.ordering_key,
            "lane": event.lane.label,
            "idempotency_key": event.idempotency_key,
            "sequence": event.sequence,
        },
        "filter": [{"condition": c.description, "holds": c.holds} for c in found.filter],
        "accepted": found.accepted,
        "transform_error": found.transform_error,
        "conversion_warnings": found.conversion_warnings,
        "outputs": [{"content_type": o.content_type, "body": _body(o)} for o in found.outputs],
        "routes": [
            {
                "destination": r.destination_id,
                "receives": r.receives,
                "conditions": [
                    {"condition": c.description, "holds": c.holds} for c in r.conditions
                ],
                "transform_error": r.transform_error,
                "sent": [_body(event) for event in r.sent],
            }
            for r in found.routes
        ],
    }


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    add_transforms_path(config.transforms_path)
    configure_conversion(config.naming_systems)
    channel = next((c for c in config.channels if c.id == args.channel), None)
    if channel is None:
        known = ", ".join(c.id for c in config.channels)
        raise ThumpflowError(f"{args.config}: no channel {args.channel!r} (channels: {known})")
    transforms = channel_transforms(channel)
    pipeline = ChannelPipeline(channel, transforms.transform, config.partner(channel.id))
    by_destination = transforms.by_destination
    try:
        raws = split_messages(Path(args.message_file).read_bytes())
    except OSError as err:
        raise ThumpflowError(f"{args.message_file}: cannot read: {err.strerror or err}") from None
    except MessageError as err:
        raise ThumpflowError(f"{args.message_file}: {err.describe()}") from None
    style = _Style(sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    results: list[dict[str, Any]] = []
    failed = 0
    for index, raw in enumerate(raws, 1):
        try:
            message = Message.parse(raw)
            message.validate_structure()
        except MessageError as err:
            failed += 1
            if args.json:
                results.append({"error": err.describe()})
            else:
                print(style.bad(f"message {index}: cannot be parsed: {err.describe()}"))
            continue
        found = explain(pipeline, message, raw, time.time(), by_destination)
        failed += found.transform_error is not None or any(
            route.transform_error is not None for route in found.routes
        )
        if args.json:
            results.append(_as_json(found))
        else:
            _render(index, found, style)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    return 1 if failed else 0

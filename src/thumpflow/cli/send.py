"""`thumpflow send HOST:PORT FILE...`: send HL7 v2 files over MLLP, print each ACK.

Each file may hold one message or many (any segment separator, batch
wrappers, leftover MLLP bytes from captures). A file that cannot be read or
split is reported and skipped; the others are sent. Messages go one at a time
over one connection, in file order; each ACK is printed as it arrives. The
exit status is 0 when every message of every file was accepted (AA/CA), 1
otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from pathlib import Path

from pydantic import ValidationError

from thumpflow.connectors.mllp.client import send_messages
from thumpflow.connectors.tls import ClientTls, client_context
from thumpflow.core.errors import MessageError, ThumpflowError
from thumpflow.hl7v2 import Message, parse_ack, split_messages


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ThumpflowError(f"target must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _messages(paths: list[str]) -> tuple[list[tuple[str, bytes]], int]:
    """The messages of every readable file, and how many files could not be used."""
    found: list[tuple[str, bytes]] = []
    unusable = 0
    for name in paths:
        try:
            messages = split_messages(Path(name).read_bytes())
        except OSError as err:
            problem = f"cannot read: {err.strerror or err}"
        except MessageError as err:
            problem = f"not sent: {err.describe()}"
        else:
            if messages:
                found.extend((f"{name}#{n}", message) for n, message in enumerate(messages, 1))
                continue
            problem = "not sent: no HL7 v2 message (no MSH segment) in the file"
        print(f"{name}: {problem}", file=sys.stderr)
        unusable += 1
    return found, unusable


def _describe(label: str, message: bytes, response: bytes) -> tuple[str, bool]:
    try:
        control = Message.parse(message).control_id
    except MessageError:
        control = "?"
    try:
        info = parse_ack(response)
    except MessageError as err:
        return f"{label} MSH-10={control} -> not an ACK ({err.describe()})", False
    line = f"{label} MSH-10={control} -> {info.code}"
    if info.text:
        line += f" {info.text}"
    if info.error_text:
        line += f" [ERR {info.error_text}]"
    return line, info.accepted


def _context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls:
        return None
    try:
        tls = ClientTls(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)
    except ValidationError:
        raise ThumpflowError("--cert-file and --key-file go together") from None
    return client_context(tls)


def send(args: argparse.Namespace) -> int:
    host, port = _target(args.target)
    messages, unusable = _messages(args.files)
    if not messages:
        return 1
    accepted = 0

    def show(index: int, response: bytes) -> None:
        nonlocal accepted
        label, message = messages[index]
        line, ok = _describe(label, message, response)
        accepted += ok
        print(line, flush=True)

    try:
        responses = asyncio.run(
            send_messages(
                host,
                port,
                [message for _, message in messages],
                ack_timeout=args.timeout,
                ssl_context=_context(args),
                server_hostname=host if args.tls else None,
                on_response=show,
            )
        )
    except (OSError, TimeoutError, ssl.SSLError) as err:
        print(f"thumpflow send: {host}:{port}: {err or type(err).__name__}", file=sys.stderr)
        return 1
    if len(responses) < len(messages):
        print(
            f"thumpflow send: {len(messages) - len(responses)} message(s) got no answer",
            file=sys.stderr,
        )
    return 0 if accepted == len(messages) and not unusable else 1

"""`thumpflow convert FILE...`: HL7 v2 messages to FHIR R4 Bundles on stdout.

Each file may hold one or many messages with any segment separators (CR,
LF, CRLF) and optional MLLP framing or batch wrappers; every message yields
one Bundle (one compact JSON per line, or indented with `--pretty`). A message
that cannot be converted is reported on stderr as `FILE: message N: reason`
(no patient data) and the rest still convert. Exit status: 0 when all
converted, 1 when any failed or a file could not be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

from thumpflow.hl7v2 import split_messages
from thumpflow.mapping import ConversionError, convert, to_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `FILE...`, `--pretty` and `--batch`."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="HL7 v2 file ('-' for stdin)")
    parser.add_argument("--pretty", action="store_true", help="indented JSON")
    parser.add_argument(
        "--batch", action="store_true", help="batch Bundles instead of transactions"
    )


def run(args: argparse.Namespace) -> int:
    """Convert every message of every file; see the module docstring."""
    failed = False
    out = sys.stdout.buffer
    bundle_type: Literal["transaction", "batch"] = "batch" if args.batch else "transaction"
    for name in args.files:
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
            failed = True
            continue
        for number, raw in enumerate(split_messages(data), start=1):
            try:
                bundle = convert(raw, bundle_type=bundle_type)
            except ConversionError as exc:
                print(f"{name}: message {number}: {exc}", file=sys.stderr)
                failed = True
                continue
            out.write(to_json(bundle, pretty=args.pretty))
            out.write(b"\n")
    out.flush()
    return 1 if failed else 0

"""`thumpflow convert FILE...`: HL7 v2 messages to FHIR R4 Bundles.

Each file may hold one or many messages with any segment separators (CR, LF,
CRLF) and optional MLLP framing or batch wrappers; every message yields one
Bundle of the `--bundle-type` (transaction, the default; batch; collection).
`--naming-systems FILE` adds a YAML mapping of namespace id → identifier system
URI to the built-in naming-system table (`thumpflow.mapping._naming`).
`--timezone ZONE` reads times without an offset, in messages whose MSH-7 has
none either, in that IANA zone (as a channel's `timezone` does; default UTC).
Bundles go to stdout (one compact JSON per line, or indented with `--pretty`),
or with `--out DIR` into one file per input: `DIR/<input file name>.json`
holding that file's Bundles (a JSON array when it has more than one message;
`-` is written as `stdin.json`). A file is written whole (through a temporary
file renamed into place), so a crash never leaves half a file.

A message that cannot be converted is reported on stderr as `FILE: message N:
reason` and the rest still convert; a message converted only in part (no map of its own, a
required segment missing) is converted and reported as `FILE: message N:
warning: ...`. A file with no message in it, or with a line before its first
MSH, is reported as `FILE: ...` naming the line, and none of it is converted.
Neither quotes patient data. Exit status: 0 when every message converted
(warnings included), 1 when any failed or a file could not be read, split or
written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import split_messages
from thumpflow.mapping import (
    BundleType,
    ConversionError,
    checked_zone,
    configure_naming_systems,
    convert,
    read_naming_systems,
    to_json,
    using_timezone,
)

_TYPES: tuple[BundleType, ...] = ("transaction", "batch", "collection")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `FILE...`, `--pretty`, `--bundle-type`, `--batch`, `--naming-systems`,
    `--timezone` and `--out`."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="HL7 v2 file ('-' for stdin)")
    parser.add_argument("--pretty", action="store_true", help="indented JSON")
    parser.add_argument(
        "--bundle-type",
        choices=_TYPES,
        default=None,
        help="Bundle.type: transaction (default), batch or collection",
    )
    parser.add_argument(
        "--batch", action="store_true", help="same as --bundle-type batch (kept for scripts)"
    )
    parser.add_argument(
        "--naming-systems",
        metavar="FILE",
        type=Path,
        default=None,
        help="YAML mapping of namespace id -> identifier system URI (added to the built-in table)",
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        default="UTC",
        help="IANA zone of times without an offset when MSH-7 has none either "
        "(a channel's `timezone`; default UTC)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help="write one file per input, DIR/<file name>.json, instead of stdout",
    )


def run(args: argparse.Namespace) -> int:
    """Convert every message of every file; see the module docstring."""
    bundle_type: BundleType = args.bundle_type or ("batch" if args.batch else "transaction")
    if args.bundle_type and args.batch and args.bundle_type != "batch":
        print("--batch and --bundle-type disagree; give one", file=sys.stderr)
        return 2
    if args.naming_systems is not None and not _naming_systems(args.naming_systems):
        return 2
    try:
        zone = checked_zone(args.timezone)
    except ValueError as exc:
        print(f"--timezone: {exc}", file=sys.stderr)
        return 2
    with using_timezone(zone):
        return _convert_files(args, bundle_type)


def _convert_files(args: argparse.Namespace, bundle_type: BundleType) -> int:
    out_dir: Path | None = args.out
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"{out_dir}: cannot create: {exc.strerror}", file=sys.stderr)
            return 1
    failed = False
    stdout = sys.stdout.buffer
    for name in args.files:
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror}", file=sys.stderr)
            failed = True
            continue
        try:
            raws = split_messages(data)
        except MessageError as exc:
            print(f"{name}: not converted: {exc.describe()}", file=sys.stderr)
            failed = True
            continue
        if not raws:
            print(f"{name}: no HL7 v2 message (no MSH segment) in it", file=sys.stderr)
            failed = True
            continue
        bundles: list[dict[str, Any]] = []
        for number, raw in enumerate(raws, start=1):
            warnings: list[str] = []
            try:
                bundle = convert(raw, bundle_type=bundle_type, warnings=warnings)
            except ConversionError as exc:
                print(f"{name}: message {number}: {exc}", file=sys.stderr)
                failed = True
                continue
            for text in warnings:
                print(f"{name}: message {number}: warning: {text}", file=sys.stderr)
            if out_dir is None:
                stdout.write(to_json(bundle, pretty=args.pretty))
                stdout.write(b"\n")
            else:
                bundles.append(bundle)
        if out_dir is not None and bundles:
            failed |= not _write(out_dir, name, bundles, args.pretty)
    stdout.flush()
    return 1 if failed else 0


def _naming_systems(path: Path) -> bool:
    """Add the naming systems of YAML file `path` (namespace: URI); False,
    reported on stderr naming the file, when it cannot be read or is invalid."""
    try:
        configure_naming_systems(read_naming_systems(path), where=str(path))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return False
    return True


def _write(out_dir: Path, name: str, bundles: list[dict[str, Any]], pretty: bool) -> bool:
    """Write `bundles` (one Bundle, or an array of them) to `out_dir`, named
    after input `name`; False (reported on stderr) when it cannot be written."""
    target = out_dir / (("stdin" if name == "-" else Path(name).name) + ".json")
    body = to_json(bundles[0] if len(bundles) == 1 else bundles, pretty=pretty) + b"\n"
    temporary = target.with_name(target.name + ".part")
    try:
        temporary.write_bytes(body)
        temporary.replace(target)
    except OSError as exc:
        print(f"{target}: cannot write: {exc.strerror}", file=sys.stderr)
        return False
    return True

"""Command-line options of the simulated EHR, shared by `python -m` and `thumpflow simulate ehr`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from thumpflow.testing.ehr._faults import Faults
from thumpflow.testing.ehr._server import SimulatedEhr


class OptionError(Exception):
    """An option names a file that cannot be used; reported as one line, exit status 1."""


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument(
        "--db", type=Path, default=None, help="SQLite file keeping resources across restarts"
    )
    parser.add_argument(
        "--auth",
        choices=["none", "smart", "bearer"],
        default="none",
        help="what the FHIR endpoints require (default: none)",
    )
    parser.add_argument(
        "--client-jwks",
        action="extend",
        nargs="+",
        default=[],
        metavar="[CLIENT_ID=]FILE",
        help="register a SMART client by its public JWKS file (client id: the file's stem)",
    )
    parser.add_argument(
        "--static-token-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="accept the bearer token in FILE (its first line)",
    )
    parser.add_argument(
        "--token-lifetime", type=float, default=300.0, help="seconds an issued token lives"
    )
    parser.add_argument(
        "--skip-identical-updates",
        action="store_true",
        help="answer an update with unchanged content without making a new version",
    )
    parser.add_argument(
        "--faults", default=None, metavar="JSON", help="initial faults, a JSON object of fields"
    )


def build(args: argparse.Namespace) -> SimulatedEhr:
    """The simulator the options describe; raises OptionError on an unusable file or value."""
    faults = Faults()
    if args.faults:
        try:
            changes = json.loads(args.faults)
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            faults = faults.changed(changes)
        except (TypeError, ValueError) as err:
            raise OptionError(f"--faults: {err}") from None
    ehr = SimulatedEhr(
        args.host,
        args.port,
        args.db,
        args.auth,
        token_lifetime=args.token_lifetime,
        skip_identical_updates=args.skip_identical_updates,
        faults=faults,
    )
    for spec in args.client_jwks:
        client_id, separator, name = spec.partition("=")
        path = Path(name if separator else spec)
        if not separator:
            client_id = path.name.removesuffix(".json").removesuffix(".jwks")
        try:
            ehr.register_client(client_id, _read_json(path))
        except ValueError as err:
            raise OptionError(f"--client-jwks {path}: {err}") from None
    for path in args.static_token_file:
        try:
            token = path.read_text(encoding="utf-8").strip().splitlines()[0].strip()
        except (OSError, IndexError) as err:
            raise OptionError(f"--static-token-file {path}: cannot read a token ({err})") from None
        ehr.add_static_token(token)
    return ehr


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


async def serve(ehr: SimulatedEhr) -> None:
    """Run until SIGTERM or SIGINT; prints `listening on BASE_URL` once ready."""
    await ehr.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {ehr.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await ehr.close()


def run(args: argparse.Namespace) -> int:
    """Build and serve; 0 after a clean stop, 1 when an option cannot be used."""
    try:
        ehr = build(args)
    except OptionError as err:
        print(f"thumpflow simulate ehr: {err}", file=sys.stderr)
        return 1
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(ehr))
    except OSError as err:
        print(f"thumpflow simulate ehr: cannot listen: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m thumpflow.testing.ehr", description="A simulated FHIR R4 EHR for tests."
    )
    add_options(parser)
    return run(parser.parse_args(argv))

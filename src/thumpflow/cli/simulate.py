"""`thumpflow simulate ehr`: run a simulated FHIR R4 EHR to develop and test channels against.

`thumpflow simulate hospital -c FILE [--count N] [--rate R] [--fast]` sends a
small hospital's ADT and bed-status traffic to a running engine (see
`thumpflow.cli.hospital`).

`thumpflow simulate ehr --port N [--host 127.0.0.1] [--db FILE]
[--auth none|smart|bearer] [--client-jwks [CLIENT_ID=]FILE ...]
[--static-token-file FILE] [--token-lifetime S] [--skip-identical-updates]
[--faults JSON]` serves `http://HOST:PORT/fhir` until interrupted (see
`thumpflow.testing.ehr`); it prints `listening on http://HOST:PORT/fhir`
once ready. Exit status 0 after a clean stop, 1 when an option names an
unusable file or the port cannot be bound.
"""

from __future__ import annotations

import argparse

from thumpflow.cli import hospital as hospital_cli
from thumpflow.testing.ehr import _cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ehr` and `hospital` simulators (and their options) under `simulate`."""
    simulators = parser.add_subparsers(dest="simulator", required=True, metavar="SIMULATOR")
    ehr = simulators.add_parser("ehr", help="a FHIR R4 EHR with SMART auth and fault injection")
    _cli.add_options(ehr)
    hospital = simulators.add_parser(
        "hospital", help="ADT and bed-status traffic of a small hospital, sent to the engine"
    )
    hospital_cli.add_options(hospital)


def run(args: argparse.Namespace) -> int:
    """Run the simulator chosen by `args.simulator`."""
    if args.simulator == "hospital":
        return hospital_cli.run(args)
    return _cli.run(args)

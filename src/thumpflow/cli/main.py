"""`thumpflow`: run, check, send, status, dlq, config and bench.

Every command exits 0 on success, 1 when what it did found a problem (a bad
configuration, a negative ACK, a failed replay) and 2 on wrong usage. Errors
are one located line each, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from thumpflow import __version__
from thumpflow.core.errors import ConfigError, ThumpflowError


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get("THUMPFLOW_CONFIG"),
        required="THUMPFLOW_CONFIG" not in os.environ,
        help="configuration file (default: $THUMPFLOW_CONFIG)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thumpflow", description="Healthcare integration engine: HL7 v2 flow over MLLP."
    )
    parser.add_argument("--version", action="version", version=f"thumpflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the engine with a configuration")
    _config_argument(run)
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")

    check = commands.add_parser("check", help="validate a configuration, with located errors")
    _config_argument(check)

    send = commands.add_parser("send", help="send HL7 v2 files over MLLP and print each ACK")
    send.add_argument("target", metavar="HOST:PORT")
    send.add_argument("files", nargs="+", metavar="FILE")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each ACK")
    send.add_argument("--tls", action="store_true", help="connect over TLS")
    send.add_argument("--ca-file", help="CA bundle to verify the server (with --tls)")
    send.add_argument("--cert-file", help="client certificate (with --tls)")
    send.add_argument("--key-file", help="client key (with --tls)")

    status = commands.add_parser("status", help="per channel and destination counts")
    _config_argument(status)
    status.add_argument("--json", action="store_true", help="print JSON")

    dlq = commands.add_parser("dlq", help="the dead-letter list: list, show, replay")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", help="list dead deliveries")
    dlq_show = dlq_commands.add_parser("show", help="one dead delivery with its audit trail")
    dlq_show.add_argument("delivery_id", type=int)
    dlq_show.add_argument("--body", action="store_true", help="also print the message")
    dlq_replay = dlq_commands.add_parser("replay", help="send dead deliveries again (audited)")
    dlq_replay.add_argument("--id", type=int, action="append", dest="ids", help="delivery id")
    dlq_replay.add_argument("--all", action="store_true", help="every dead delivery (matching)")
    dlq_replay.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    dlq_replay.add_argument(
        "--actor", default=os.environ.get("USER", "operator"), help="who (default: $USER)"
    )
    for sub in (dlq_list, dlq_show, dlq_replay):
        _config_argument(sub)
    for sub in (dlq_list, dlq_replay):
        sub.add_argument("--destination", help="only this destination id")
        sub.add_argument("--channel", help="only this channel id")
        sub.add_argument("--event-type", help="only this event type")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_list.add_argument("--json", action="store_true", help="print JSON")

    from thumpflow.cli import convert, mapping_test, simulate, trial

    trial.add_arguments(
        commands.add_parser(
            "try", help="show what a channel would do with a message, stage by stage"
        )
    )

    convert.add_arguments(
        commands.add_parser("convert", help="convert HL7 v2 messages to FHIR R4 Bundles (stdout)")
    )
    mapping = commands.add_parser("mapping", help="the HL7 v2 to FHIR maps")
    mapping_commands = mapping.add_subparsers(
        dest="mapping_command", required=True, metavar="ACTION"
    )
    mapping_test.add_arguments(
        mapping_commands.add_parser(
            "test", help="run the golden mapping cases (input.hl7 beside expected.json)"
        )
    )
    simulate.add_arguments(
        commands.add_parser("simulate", help="run a simulated peer system for tests and demos")
    )

    config = commands.add_parser("config", help="the configuration reference and JSON Schema")
    config.add_argument("what", choices=["docs", "schema"])

    bench = commands.add_parser("bench", help="drive the engine over MLLP and measure")
    bench.add_argument("--messages", type=int, default=20_000, help="messages per run")
    bench.add_argument(
        "--connections", default="1,8,16", help="comma-separated connection counts to measure"
    )
    bench.add_argument("--workdir", default="var/bench", help="scratch directory")
    bench.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 1
    except ThumpflowError as err:
        print(f"thumpflow: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from thumpflow.cli.run import run

        return run(args.config, args.log_level)
    if args.command == "check":
        from thumpflow.cli.run import check

        return check(args.config)
    if args.command == "send":
        from thumpflow.cli.send import send

        return send(args)
    if args.command == "status":
        from thumpflow.cli.ops import status

        return status(args.config, as_json=args.json)
    if args.command == "dlq":
        from thumpflow.cli import ops

        return ops.dlq(args)
    if args.command == "try":
        from thumpflow.cli import trial

        return trial.run(args)
    if args.command == "convert":
        from thumpflow.cli import convert

        return convert.run(args)
    if args.command == "mapping":
        from thumpflow.cli import mapping_test

        return mapping_test.run(args)
    if args.command == "simulate":
        from thumpflow.cli import simulate

        return simulate.run(args)
    if args.command == "config":
        from thumpflow.cli.reference import print_reference

        return print_reference(args.what)
    from thumpflow.cli.bench import bench

    return bench(args)


if __name__ == "__main__":
    sys.exit(main())

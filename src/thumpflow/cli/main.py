"""`thumpflow`: run, check, send, status, dlq, runs, rejects, audit, store, tokens, config, cluster
and bench.

Every command exits 0 on success, 1 when what it did found a problem (a bad
configuration, a negative ACK, a failed or refused replay) and 2 on wrong usage. Errors
are one located line each, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from thumpflow import __version__
from thumpflow.cli import examples
from thumpflow.cli._shared import config_argument
from thumpflow.cli.logs import FORMATS
from thumpflow.core.errors import ConfigError, ThumpflowError

# Commands whose module defines `add_arguments(parser)` and `run(args)`; the module
# is imported only when its command is used, so `thumpflow --help` stays fast.
_LAZY_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("try", "thumpflow.cli.trial", "show what a channel would do with a message, stage by stage"),
    ("convert", "thumpflow.cli.convert", "convert HL7 v2 messages to FHIR R4 Bundles (stdout)"),
    ("simulate", "thumpflow.cli.simulate", "run a simulated peer system for tests and demos"),
    ("runs", "thumpflow.cli.runs", "scheduled job runs: list, show, start, rerun"),
    (
        "rejects",
        "thumpflow.cli.rejects",
        "rejects: batch records (list, show, replay) and messages (messages, message, reprocess)",
    ),
    ("advise", "thumpflow.cli.advise", "recommend flow, thump or a hybrid for an interface"),
    ("audit", "thumpflow.cli.audit", "the tamper-evident audit trail: verify, list"),
    ("store", "thumpflow.cli.store", "store upkeep: purge, rekey, vacuum, keygen, copy"),
    ("tokens", "thumpflow.cli.tokens", "API tokens: create (shown once), list, revoke"),
    ("reload", "thumpflow.cli.reload", "the running engine re-reads its configuration"),
    ("completion", "thumpflow.cli.completion", "a shell completion script (bash, zsh)"),
    ("views", "thumpflow.cli.views", "bed board and census: rebuild from the event log"),
    ("cluster", "thumpflow.cli.cluster", "nodes sharing the store: heartbeats, partitions, duties"),
)


def build_parser() -> tuple[
    argparse.ArgumentParser, dict[str, tuple[argparse.ArgumentParser, str]]
]:
    """The parser, and the lazily completed commands: name -> (its parser, its module)."""
    parser = argparse.ArgumentParser(
        prog="thumpflow",
        description="Healthcare integration engine: event flow and scheduled batch exchange.",
    )
    parser.add_argument("--version", action="version", version=f"thumpflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the engine with a configuration",
    )
    config_argument(run)
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    run.add_argument(
        "--log-format",
        choices=FORMATS,
        default="auto",
        help="json: one JSON object per line; text; auto (default): text on a terminal, "
        "json otherwise",
    )

    check = commands.add_parser(
        "check",
        help="validate a configuration (located errors) and lint it for anti-patterns",
    )
    config_argument(check)
    check.add_argument(
        "--strict", action="store_true", help="exit 1 on lint findings too, not only on errors"
    )
    check.add_argument(
        "--messages",
        nargs="+",
        metavar="FILE",
        help="also run every channel's transforms on these HL7 v2 files, as the engine would",
    )

    send = commands.add_parser("send", help="send HL7 v2 files over MLLP and print each ACK")
    send.add_argument("target", metavar="HOST:PORT")
    send.add_argument("files", nargs="+", metavar="FILE")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each ACK")
    send.add_argument("--tls", action="store_true", help="connect over TLS")
    send.add_argument("--ca-file", help="CA bundle to verify the server (with --tls)")
    send.add_argument("--cert-file", help="client certificate (with --tls)")
    send.add_argument("--key-file", help="client key (with --tls)")

    status = commands.add_parser("status", help="per channel and destination counts")
    config_argument(status)
    status.add_argument("--json", action="store_true", help="print JSON")

    dlq = commands.add_parser("dlq", help="the dead-letter list: list, show, replay")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", help="list dead deliveries")
    dlq_show = dlq_commands.add_parser("show", help="one dead delivery with its audit trail")
    dlq_show.add_argument("delivery_id", type=int)
    dlq_show.add_argument(
        "--body", action="store_true", help="also print the message (needs --reason; audited)"
    )
    dlq_show.add_argument("--reason", help="why you look at the message (kept in the audit trail)")
    dlq_replay = dlq_commands.add_parser("replay", help="send dead deliveries again (audited)")
    dlq_replay.add_argument("--id", type=int, action="append", dest="ids", help="delivery id")
    dlq_replay.add_argument("--all", action="store_true", help="every dead delivery (matching)")
    dlq_replay.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    dlq_replay.add_argument(
        "--out-of-order",
        action="store_true",
        help="also replay deliveries whose ordering key has had a newer delivery delivered "
        "(they reach the receiver out of order; audited as replayed.out_of_order)",
    )
    dlq_replay.add_argument(
        "--actor",
        default=os.environ.get("USER", "operator"),
        help="who, for a replay made in the store while the engine is stopped "
        "(through the engine, the API token's name is audited; default: $USER)",
    )
    dlq_edit = dlq_commands.add_parser(
        "edit",
        help="send an edited copy of a dead letter's message to its destination (audited)",
        epilog="example: thumpflow dlq edit 42 --file fixed.hl7 --reason 'PID-8 corrected'",
    )
    dlq_edit.add_argument("delivery_id", type=int)
    dlq_edit.add_argument("--file", required=True, help="file with the edited message")
    dlq_edit.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    for sub in (dlq_list, dlq_show, dlq_replay, dlq_edit):
        config_argument(sub)
    for sub in (dlq_list, dlq_replay):
        sub.add_argument("--destination", help="only this destination id")
        sub.add_argument("--channel", help="only this channel id")
        sub.add_argument("--event-type", help="only this event type")
        sub.add_argument("--reason-contains", help="only reasons containing this text")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_list.add_argument("--json", action="store_true", help="print JSON")

    lazy: dict[str, tuple[argparse.ArgumentParser, str]] = {}
    for name, module, summary in _LAZY_COMMANDS:
        lazy[name] = (commands.add_parser(name, help=summary), module)
    mapping = commands.add_parser("mapping", help="the HL7 v2 to FHIR maps")
    mapping_commands = mapping.add_subparsers(
        dest="mapping_command", required=True, metavar="ACTION"
    )
    lazy["mapping"] = (
        mapping_commands.add_parser(
            "test", help="run the golden mapping cases (input.hl7 beside expected.json)"
        ),
        "thumpflow.cli.mapping_test",
    )
    examples.attach("mapping", lazy["mapping"][0])

    config = commands.add_parser("config", help="the configuration reference and JSON Schema")
    config.add_argument("what", choices=["docs", "schema"])

    bench = commands.add_parser("bench", help="drive the engine over MLLP and measure")
    bench.add_argument("--messages", type=int, default=20_000, help="messages per run")
    bench.add_argument(
        "--connections", default="1,8,16", help="comma-separated connection counts to measure"
    )
    bench.add_argument("--workdir", default="var/bench", help="scratch directory")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument(
        "--encrypt", action="store_true", help="encrypt the store (store.encryption) to measure it"
    )
    bench.add_argument(
        "--postgresql",
        metavar="DSN",
        help="use a PostgreSQL store: a fresh database per run on this server (password from "
        "PGPASSWORD); default: SQLite",
    )
    for name, command in commands.choices.items():
        examples.attach(name, command)
    return parser, lazy


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser, lazy = build_parser()
    command = next((word for word in words if not word.startswith("-")), None)
    module = None
    if command in lazy:
        target, module_name = lazy[command]
        module = importlib.import_module(module_name)
        module.add_arguments(target)
    args = parser.parse_args(words)
    try:
        if module is not None:
            return int(module.run(args))
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
    except BrokenPipeError:
        # The reader went away (`thumpflow config schema | head`): stop quietly,
        # with stdout pointed at /dev/null so the interpreter's final flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from thumpflow.cli.run import run

        return run(args.config, args.log_level, args.log_format)
    if args.command == "check":
        from thumpflow.cli.run import check

        return check(args.config, strict=args.strict, messages=args.messages)
    if args.command == "send":
        from thumpflow.cli.send import send

        return send(args)
    if args.command == "status":
        from thumpflow.cli.ops import status

        return status(args.config, as_json=args.json)
    if args.command == "dlq":
        from thumpflow.cli import ops

        return ops.dlq(args)
    if args.command == "config":
        from thumpflow.cli.reference import print_reference

        return print_reference(args.what)
    from thumpflow.cli.bench import bench

    return bench(args)


if __name__ == "__main__":
    sys.exit(main())

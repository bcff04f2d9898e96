"""`thumpflow views rebuild | reconcile | mode`: the views from the event log, offline.

`mode` shows or declares the operating mode (`thumpflow.cli.modes`).

`reconcile SNAPSHOT --as-of TIME` rebuilds the same way and compares the bed
board with an EHR census snapshot (CSV `unit,bed,patient`; see
`thumpflow.views.reconcile`), printing the beds that drifted; exit status 1
when some did. It reports; it does not repair.

Opens the store read-only (so it may run beside the engine), rebuilds every
view from the committed events of the channels `views.systems` names, in
commit order, and prints the census by unit, the counts of writes not
applied (superseded, rejected, conflicts, displaced, unreadable), how many
events were read and how long it took. `--board` adds the bed board (it
shows patient identifiers: the store file is patient data already). The
running engine's views are rebuilt with `POST /api/views/rebuild` (an
audited act); both read the same log and give the same state. Exit status
1 when the configuration has no `views:` section.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from pathlib import Path

from thumpflow.cli import modes
from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import ThumpflowError
from thumpflow.runtime.build import open_store
from thumpflow.views import read
from thumpflow.views.live import LiveViews
from thumpflow.views.reconcile import read_snapshot, reconcile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `rebuild` action."""
    actions = parser.add_subparsers(dest="views_command", required=True, metavar="ACTION")
    rebuild = actions.add_parser("rebuild", help="rebuild the views from the event log")
    config_argument(rebuild)
    rebuild.add_argument("--board", action="store_true", help="also print the bed board")
    rebuild.add_argument("--unit", help="only this unit's beds on the board")
    compare = actions.add_parser(
        "reconcile", help="compare the bed board with an EHR census snapshot (CSV)"
    )
    config_argument(compare)
    compare.add_argument("snapshot", help="CSV with unit,bed,patient (patient empty: free)")
    compare.add_argument("--as-of", required=True, help="the snapshot's time (ISO 8601, zoned)")
    modes.add_parser(actions)


def run(args: argparse.Namespace) -> int:
    """Rebuild and print; see the module docstring."""
    config = load_config(args.config)
    if args.views_command == "mode":
        return modes.run(config, args)
    if config.views is None:
        raise ThumpflowError(f"{args.config}: no `views:` section, so there is nothing to rebuild")
    views, events, seconds = asyncio.run(_rebuild(config))
    if args.views_command == "reconcile":
        return _reconcile(views, args)
    projection = views.projection
    rows = [
        ["unit", "kind", "occupied", "open", "unavailable", "pending in", "pending out", "total"]
    ]
    for unit in read.census(projection):
        rows.append(
            [unit["unit"], unit["kind"]]
            + [
                str(unit[key])
                for key in ("occupied", "open", "unavailable", "pending_in", "pending_out", "total")
            ]
        )
    print(table(rows))
    counts = read.outcomes(projection)["counts"]
    not_applied = ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none"
    print(f"\nwrites not applied: {not_applied}")
    if args.board:
        board = [["bed", "status", "patient", "since", "source", "lag"]]
        for bed in read.board(projection, args.unit):
            board.append(
                [
                    bed["bed"],
                    bed["status"],
                    bed["patient"] or "-",
                    when(bed["since"]),
                    bed["source"] or "-",
                    "-" if bed["lag"] is None else f"{bed['lag']:.1f}s",
                ]
            )
        print()
        print(table(board))
    rate = events / seconds if seconds > 0 else 0.0
    print(
        f"\nrebuilt from {events} events (position {projection.position}) in {seconds:.2f}s "
        f"({rate:,.0f} events/s); newest source time {when(projection.as_of)}"
    )
    return 0


def _reconcile(views: LiveViews, args: argparse.Namespace) -> int:
    """Print the drift between the rebuilt board and the snapshot; 1 when there is some."""
    try:
        as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
    except ValueError:
        raise ThumpflowError(f"--as-of: not an ISO 8601 time: {args.as_of!r}") from None
    if as_of.tzinfo is None:
        raise ThumpflowError("--as-of: give the time zone (e.g. 2026-12-05T06:00:00Z)")
    try:
        snapshot = read_snapshot(Path(args.snapshot).read_text(encoding="utf-8"), args.snapshot)
    except OSError as err:
        raise ThumpflowError(f"{args.snapshot}: cannot read ({err.strerror})") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ThumpflowError(str(err)) from None
    found = reconcile(views.projection, snapshot, as_of.timestamp())
    print(
        f"compared {found.compared} beds; {found.newer} changed after the snapshot (not "
        f"compared); drift in {len(found.drift)}"
    )
    if found.drift:
        rows = [["bed", "board", "snapshot"]]
        rows += [[d.bed, d.board or "-", d.snapshot or "-"] for d in found.drift]
        print(table(rows))
    return 1 if found.drift else 0


async def _rebuild(config: Config) -> tuple[LiveViews, int, float]:
    assert config.views is not None
    store = open_store(config, read_only=True)
    await store.open()
    try:
        views = LiveViews(config.views, store, SystemClock(), batch=5000)
        started = time.perf_counter()
        events = await views.rebuild()
        return views, events, time.perf_counter() - started
    finally:
        await store.close()

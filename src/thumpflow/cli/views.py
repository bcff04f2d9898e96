"""`thumpflow views rebuild`: project the views from the event log and print them.

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

from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import ThumpflowError
from thumpflow.runtime.engine import open_store
from thumpflow.views import read
from thumpflow.views.live import LiveViews


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `rebuild` action."""
    actions = parser.add_subparsers(dest="views_command", required=True, metavar="ACTION")
    rebuild = actions.add_parser("rebuild", help="rebuild the views from the event log")
    config_argument(rebuild)
    rebuild.add_argument("--board", action="store_true", help="also print the bed board")
    rebuild.add_argument("--unit", help="only this unit's beds on the board")


def run(args: argparse.Namespace) -> int:
    """Rebuild and print; see the module docstring."""
    config = load_config(args.config)
    if config.views is None:
        raise ThumpflowError(f"{args.config}: no `views:` section, so there is nothing to rebuild")
    views, events, seconds = asyncio.run(_rebuild(config))
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

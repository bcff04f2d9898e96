"""What every command shares: the `--config` option and plain-text tables."""

from __future__ import annotations

import argparse
import os
import time


def config_argument(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`, required unless `$THUMPFLOW_CONFIG` names one."""
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get("THUMPFLOW_CONFIG"),
        required="THUMPFLOW_CONFIG" not in os.environ,
        help="configuration file (default: $THUMPFLOW_CONFIG)",
    )


def when(at: float | None) -> str:
    """A local date and time, or `-`."""
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def age(seconds: float | None) -> str:
    """A short human duration (`45s`, `12m`, `3.5h`, `2.0d`), or `-`."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def table(rows: list[list[str]]) -> str:
    """Rows as left-aligned columns; the first row is the header."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )

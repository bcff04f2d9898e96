"""`thumpflow bench` as a user runs it: from any directory, with its default scratch directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = (sys.executable, "-m", "thumpflow.cli.main", "bench")


def test_bench_with_its_default_relative_workdir_delivers_every_message(tmp_path: Path) -> None:
    # The default `--workdir var/bench` is relative; the engine reads paths in its
    # configuration relative to the configuration file, so the bench must write absolute
    # ones or it waits for an output file the engine never writes, then fails.
    done = subprocess.run(
        [*BENCH, "--messages", "40", "--connections", "2", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert run["acked"] == run["delivered"] == 40
    assert run["negative_acks"] == 0 and run["errors"] == []
    assert run["db_bytes_per_message"] > 0
    assert (tmp_path / "var" / "bench" / "c2" / "out.hl7").exists()

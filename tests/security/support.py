"""Shared by the security proofs: a configuration around a store file, the CLI as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFIG = """\
version: 1
store:
  path: {db}
{store_extra}api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: {port}}}
    destinations:
{destinations}
"""

FILE_DESTINATION = "      - {{id: archive, type: file, path: {out}, format: hl7}}\n"


def write_config(
    tmp_path: Path,
    *,
    store_extra: str = "",
    port: int = 0,
    destinations: str | None = None,
    name: str = "thumpflow.yaml",
) -> Path:
    """A configuration file for a store at `tmp_path/thumpflow.db`; returns its path."""
    config = tmp_path / name
    config.write_text(
        CONFIG.format(
            db=tmp_path / "thumpflow.db",
            store_extra=store_extra,
            port=port,
            destinations=destinations or FILE_DESTINATION.format(out=tmp_path / "out.hl7"),
        )
    )
    return config


def cli(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `thumpflow ARGS --config CONFIG` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )


def file_bytes(db: Path) -> bytes:
    """The database file and its WAL, as stored on disk."""
    data = db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def file_size(db: Path) -> int:
    """Bytes of the database file plus its WAL."""
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

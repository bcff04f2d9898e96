"""What the cluster tests' node configurations share."""

from __future__ import annotations

from pathlib import Path

from tests.postgres import PASSWORD_ENV
from tests.store.test_postgresql import _dsn_without_password


def pg_store(dsn: str, home: Path) -> str:
    """The `store:` section of a node on the test cluster's database `dsn` (its password
    from the environment, as a deployment gives it), keeping its own files in `home`."""
    return (
        "store:\n"
        "  type: postgresql\n"
        f'  dsn: "{_dsn_without_password(dsn)}"\n'
        f"  password_env: {PASSWORD_ENV}\n"
        f"  path: {home}/thumpflow.db\n"
    )

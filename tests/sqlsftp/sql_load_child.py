"""Child process for the crash test: copy a source table into an upsert table, slowly.

Usage: python sql_load_child.py SOURCE_SPEC_JSON DESTINATION_SPEC_JSON
Prints `wrote N` after each committed write so the parent can kill it midway.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.sqlsftp.support import run_once
from thumpflow.connectors.sql import (
    SqlSource,
    SqlSourceSpec,
    SqlUpsertDestination,
    SqlUpsertDestinationSpec,
)
from thumpflow.core.batch import Window


def main() -> None:
    source = SqlSource("src", SqlSourceSpec.model_validate_json(sys.argv[1]))
    destination = SqlUpsertDestination(
        "dst", SqlUpsertDestinationSpec.model_validate_json(sys.argv[2])
    )

    def report(writes: int) -> None:
        print(f"wrote {writes}", flush=True)
        time.sleep(0.05)

    asyncio.run(run_once(source, destination, Window(), key_field="mrn", after_write=report))


if __name__ == "__main__":
    main()

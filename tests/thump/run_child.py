"""Child process for the crash test: run one job of a configuration in process, then exit."""

from __future__ import annotations

import asyncio
import sys

from thumpflow.config import load_config
from thumpflow.core.batch import RunTrigger
from thumpflow.core.clock import SystemClock
from thumpflow.runtime.build import job_runner, open_store


async def main(path: str) -> None:
    config = load_config(path)
    (job,) = config.jobs
    store = open_store(config)
    await store.open()
    try:
        await store.recover_runs(SystemClock().now())
        await job_runner(job, store, SystemClock()).run(RunTrigger.MANUAL)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

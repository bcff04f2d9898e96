"""The engine's worker processes for jobs with `read_processes`.

One process pool per engine process, shared by every such job, made on first
use (or at start, `start_read_processes`) with the most `read_processes` any
job asks for, and shut down with the engine (`close_read_processes`). Workers
come from a `forkserver` that imported the reading code once, never from a
fork of the engine itself (whose threads and open connections a forked child
must not inherit). A worker that dies breaks the pool: the count or read
using it raises `BrokenProcessPool` (and so its run fails, as on any error
of its source), and the next `read_executor` makes a new pool.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

_PRELOAD = ["thumpflow.thump.parallel"]


class _ReadProcesses:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._size = 0

    def executor(self, processes: int) -> Executor:
        """The pool, with at least `processes` workers (made anew when smaller or broken)."""
        pool = self._pool
        if pool is not None and (self._size < processes or _broken(pool)):
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        if pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            pool = ProcessPoolExecutor(max(processes, self._size), mp_context=context)
            self._pool, self._size = pool, max(processes, self._size)
        return pool

    def start(self, processes: int) -> None:
        """Make the pool and start its workers now rather than at the first run."""
        pool = self.executor(processes)
        for done in [pool.submit(int) for _ in range(processes)]:
            done.result()

    def close(self) -> None:
        pool, self._pool, self._size = self._pool, None, 0
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _broken(pool: ProcessPoolExecutor) -> bool:
    """Whether a worker of `pool` died (a pool that lost one takes no more tasks)."""
    try:
        pool.submit(int)
    except BrokenProcessPool:
        return True
    return False


_PROCESSES = _ReadProcesses()
read_executor = _PROCESSES.executor
start_read_processes = _PROCESSES.start
close_read_processes = _PROCESSES.close

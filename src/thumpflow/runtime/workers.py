"""The engine's worker processes for jobs with `read_processes`.

One process pool per engine process, shared by every such job, made on first
use (or at start, `start_read_processes`) with the most `read_processes` any
job asks for, and shut down with the engine (`close_read_processes`). Workers
come from a `forkserver` that imported the reading code once, never from a
fork of the engine itself (whose threads and open connections a forked child
must not inherit). A worker that dies breaks the pool: the count or read
using it raises `BrokenProcessPool` (and so its run fails, as on any error
of its source), and the next `read_executor` makes a new pool.

The read processes end when the engine dies, however it dies (SIGKILL
included). Each worker watches the engine's process through a pidfd (Linux
5.3+; elsewhere it checks once a second) from a daemon thread and exits when
it is gone; a worker started after the engine died exits at once. The
forkserver and multiprocessing's resource tracker then follow by themselves:
each waits for the end of pipes the workers hold open, which is why, without
the watch, a killed engine left all of them running. Every process the pool
starts carries `THUMPFLOW_READ_PROCESSES_OF=<engine pid>:<its start time>` in
its environment (set in the engine's environment when the pool is made), so
`reap_leftovers`, called at engine start, finds read processes (forkserver,
resource tracker, workers) whose engine is no longer running and kills them,
e.g. those left by a version without the watch.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

log = logging.getLogger("thumpflow.runtime")

_PRELOAD = ["thumpflow.thump.parallel", "thumpflow.runtime.workers"]
MARK = "THUMPFLOW_READ_PROCESSES_OF"
_MULTIPROCESSING = (b"multiprocessing.forkserver import main", b"multiprocessing.resource_tracker")
_POLL_SECONDS = 1.0


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
            engine = os.getpid()
            os.environ[MARK] = f"{engine}:{_started(engine)}"
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            pool = ProcessPoolExecutor(
                max(processes, self._size),
                mp_context=context,
                initializer=watch_engine,
                initargs=(engine,),
            )
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


def watch_engine(engine: int) -> None:
    """In a worker: exit as soon as the process `engine` has ended (at once if it already has)."""
    try:
        handle = os.pidfd_open(engine)
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):
        handle = -1  # no pidfd here: check once a second instead
    threading.Thread(target=_exit_after, args=(engine, handle), daemon=True).start()


def _exit_after(engine: int, handle: int) -> None:
    if handle >= 0:
        watch = select.poll()
        watch.register(handle, select.POLLIN)
        while not watch.poll():
            pass
    else:
        while pid_alive(engine):
            time.sleep(_POLL_SECONDS)
    os._exit(0)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _started(pid: int) -> str:
    """The start time of process `pid` in clock ticks since boot ('' when unknown): with the
    pid, it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2 :].split()[19]


def reap_leftovers() -> int:
    """Kill the read processes of engines that are no longer running; how many were killed.

    Only processes of this user carrying the mark and running multiprocessing's
    forkserver or resource tracker code (workers are forks of the forkserver)
    are considered; a process whose engine (pid and start time) still runs is
    left alone. Does nothing where /proc is not readable.
    """
    killed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _leftover(int(entry.name)):
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
    if killed:
        log.warning("killed %d read process(es) left running by an engine that ended", killed)
    return killed


def _leftover(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    prefix = MARK.encode() + b"="
    marks = [v[len(prefix) :] for v in environ.split(b"\0") if v.startswith(prefix)]
    if not marks or not any(code in command for code in _MULTIPROCESSING):
        return False
    engine, _, started = marks[0].decode("ascii", "replace").partition(":")
    if not engine.isdigit():
        return False
    return not pid_alive(int(engine)) or _started(int(engine)) != started


_PROCESSES = _ReadProcesses()
read_executor = _PROCESSES.executor
start_read_processes = _PROCESSES.start
close_read_processes = _PROCESSES.close

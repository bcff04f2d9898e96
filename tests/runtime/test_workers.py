"""The engine's read process pool: made once, grown when asked, replaced when broken."""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from thumpflow.runtime.workers import close_read_processes, read_executor, start_read_processes


def test_the_pool_is_shared_grown_and_replaced_after_a_worker_dies() -> None:
    try:
        start_read_processes(1)
        pool = read_executor(1)
        assert read_executor(1) is pool
        assert pool.submit(pow, 2, 10).result() == 1024
        grown = read_executor(2)
        assert grown is not pool and grown.submit(abs, -3).result() == 3
        with pytest.raises(BrokenProcessPool):
            grown.submit(os._exit, 1).result()
        replaced = read_executor(2)
        assert replaced is not grown
        assert replaced.submit(pow, 3, 3).result() == 27
    finally:
        close_read_processes()
    assert read_executor(1) is not replaced
    close_read_processes()

"""An MLLP load client: many connections, one message in flight on each, ACK latencies.

Each connection sends its next message only after the previous one's ACK
arrived (as real MLLP senders do), so throughput and latency are what a
hospital's interfaces would see. Loops are bounded by the message count and
`deadline_seconds`; the client only ever connects where it is told to
(loopback in tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import cast

START = b"\x0b"
END = b"\x1c\r"


@dataclass(slots=True)
class LoadResult:
    sent: int = 0
    acked: int = 0
    negative: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
        return ordered[index]

    @property
    def rate(self) -> float:
        return self.acked / self.elapsed if self.elapsed > 0 else 0.0


class _Sender(asyncio.Protocol):
    def __init__(
        self, frames: Sequence[bytes], result: LoadResult, done: asyncio.Future[None]
    ) -> None:
        self._frames = frames
        self._next = 0
        self._result = result
        self._done = done
        self._buffer = b""
        self._sent_at = 0.0
        self._transport: asyncio.Transport | None = None
        self._acked = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._send_next()

    def _send_next(self) -> None:
        assert self._transport is not None
        if self._next >= len(self._frames):
            self._transport.close()
            return
        self._sent_at = time.perf_counter()
        self._transport.write(self._frames[self._next])
        self._next += 1
        self._result.sent += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(END)
            if end < 0:
                return
            ack, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            self._result.latencies.append(time.perf_counter() - self._sent_at)
            self._result.acked += 1
            self._acked += 1
            if b"MSA|AA" not in ack and b"MSA|CA" not in ack:
                self._result.negative += 1
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._acked < len(self._frames):
            self._result.errors.append(f"connection lost early: {exc!r}")
        if not self._done.done():
            self._done.set_result(None)


async def drive(
    host: str,
    port: int,
    messages: Sequence[bytes],
    connections: int,
    *,
    deadline_seconds: float = 600.0,
) -> LoadResult:
    """Send `messages` split round-robin over `connections`; return counts and latencies."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    shares = [
        [START + message + END for message in messages[index::connections]]
        for index in range(connections)
    ]
    waits: list[asyncio.Future[None]] = []
    started = time.perf_counter()
    for share in shares:
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(partial(_Sender, share, result, done), host, port)
        waits.append(done)
    try:
        await asyncio.wait_for(asyncio.gather(*waits), timeout=deadline_seconds)
    except TimeoutError:
        result.errors.append(f"deadline of {deadline_seconds}s passed")
    result.elapsed = time.perf_counter() - started
    return result

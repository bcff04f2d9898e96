"""One MLLP connection: frames in, responses out, in order; idle and slow frames closed.

Guarantees:

- Each complete frame is handed to `Ingress.receive`, and the response it
  returns (the ACK) is written back only after `receive` returned, that is
  after the event is durably committed. A crash before that loses nothing
  the sender was told was received; the sender resends, and the ingress
  recognises the duplicate.
- Frames are processed strictly one at a time in arrival order, so
  pipelined senders get their responses in the order they sent.
- Input that cannot be framed (garbage, oversized, truncated frames) is
  handed to the ingress with `framing_error` set, with the bytes kept, never
  silently dropped. Frames fully received before the peer disconnects are
  still handed over (their ACK cannot be delivered; the resend is a duplicate).
- Backpressure: while the ingress is closed, or while more than a few frames
  wait, the connection stops reading from its socket.
- Idle: `check` closes a connection that sent nothing for
  `idle_timeout_seconds`, with nothing queued or being processed.
  Whitespace alone between frames does not count as sending.
- Slow frames: once a frame (or input outside a frame) has started, after
  `frame_grace_seconds` it must have arrived at `min_frame_bytes_per_second`
  or more on average since its first byte, or `check` closes the
  connection; the part received is handed over as a truncated frame (a
  reject, answered AR before the close), as when the peer disconnects.
  While the connection is not reading (backpressure, a closed ingress) it is
  not checked, and the clock of its partial frame restarts when reading
  resumes.
- `close_for` (idle, slow, or to make room) frees the listener's slot at
  once; bytes arriving until the socket closes are read and discarded.

Logs name peers and figures only, never message content.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol, cast

from thumpflow.connectors.mllp.framing import FramingError, MllpDecoder, frame
from thumpflow.connectors.mllp.metrics import ListenerMetrics
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.core.clock import Clock
from thumpflow.core.ports import Ingress

log = logging.getLogger("thumpflow.connectors.mllp")

_HIGH_WATER = 8
_LOW_WATER = 2
_PAUSED_BY_QUEUE = 1
_PAUSED_BY_INGRESS = 2


class Listener(Protocol):
    """What a connection needs of the listener that accepted it (`MllpSource`)."""

    channel_id: str
    spec: MllpSourceSpec
    ingress: Ingress
    clock: Clock
    metrics: ListenerMetrics

    def admit(self, conn: MllpConnection) -> str | None:
        """Take `conn` in; why it is refused otherwise."""
        ...

    def forget(self, conn: MllpConnection) -> None:
        """Free `conn`'s slot (idempotent)."""
        ...


class MllpConnection(asyncio.Protocol):
    """One MLLP connection: decodes frames and hands them to the ingress in order."""

    def __init__(self, source: Listener) -> None:
        spec = source.spec
        self._source = source
        self._ingress = source.ingress
        self._clock = source.clock
        self._decoder = MllpDecoder(spec.max_message_bytes)
        self._idle = spec.idle_timeout_seconds
        self._grace = spec.frame_grace_seconds
        self._min_rate = spec.min_frame_bytes_per_second
        self._queue: deque[bytes | FramingError] = deque()
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = 0
        self._busy = False
        self._ended = False
        self._stopping = False
        self._last = 0.0
        self._partial_since: float | None = None
        self._partial_bytes = 0
        self.host = "?"
        self.peer = "?"
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        if peername:
            self.host = str(peername[0])
            self.peer = f"{peername[0]}:{peername[1]}"
        source = self._source
        channel = source.channel_id
        refusal = source.admit(self)
        if refusal is not None:
            log.warning(
                "channel %s: MLLP connection from %s refused: %s",
                channel,
                self.peer,
                refusal,
                extra={"channel": channel, "peer": self.peer},
            )
            self._ended = True
            transport.abort()
            return
        log.info(
            "channel %s: MLLP connection from %s",
            channel,
            self.peer,
            extra={"channel": channel, "peer": self.peer},
        )
        self._last = self._clock.monotonic()
        if not self._ingress.is_open():
            self._pause(_PAUSED_BY_INGRESS)
        self.task = self._loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._ended or self._stopping:
            return
        now = self._clock.monotonic()
        decoder = self._decoder
        items = decoder.feed(data)
        if decoder.pending:
            if self._partial_since is None or items:
                self._partial_since = now
                self._partial_bytes = len(data)
            else:
                self._partial_bytes += len(data)
            self._last = now
        else:
            self._partial_since = None
            if items:
                self._last = now
        if not items:
            return
        self._queue.extend(items)
        if len(self._queue) > _HIGH_WATER:
            self._pause(_PAUSED_BY_QUEUE)
        self._wake()

    def eof_received(self) -> bool:
        self._end_of_input()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is None:
            return
        if exc is not None:
            log.info(
                "channel %s: MLLP connection from %s lost: %s",
                self._source.channel_id,
                self.peer,
                type(exc).__name__,
                extra={"channel": self._source.channel_id, "peer": self.peer},
            )
        self._end_of_input()

    def stop(self) -> None:
        """Finish the message in progress (if any), then close."""
        self._stopping = True
        self._queue.clear()
        if self._transport is not None:
            self._transport.pause_reading()
        if self.task is not None and not self._busy:
            self.task.cancel()

    def _end_of_input(self) -> None:
        if self._ended:
            return
        self._ended = True
        if not self._stopping:
            self._queue.extend(self._decoder.finish())
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _pause(self, reason: int) -> None:
        if not self._paused and self._transport is not None:
            self._transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self._transport is not None and not self._stopping:
            self._transport.resume_reading()
            now = self._clock.monotonic()
            self._last = now
            if self._partial_since is not None:
                self._partial_since = now
                self._partial_bytes = 0

    def _rate(self, now: float) -> float:
        """Average bytes per second of the partial frame since its first byte."""
        since = self._partial_since
        elapsed = now - since if since is not None else 0.0
        return self._partial_bytes / elapsed if elapsed > 0 else float("inf")

    def eviction_rank(self, now: float) -> tuple[int, float] | None:
        """How readily this connection is closed to make room (lowest first); None: never.

        A slow partial frame (below the minimum rate) comes first, slowest
        first; then idle connections, idle longest first. A connection with a
        frame queued or being processed, or a partial frame arriving fast
        enough (or that cannot arrive: the source is not reading), is never
        chosen.
        """
        if self._busy or self._queue or self._ended or self._stopping:
            return None
        if self._partial_since is None:
            return (1, self._last)
        if self._paused or self._min_rate <= 0:
            return None
        rate = self._rate(now)
        return (0, rate) if rate < self._min_rate else None

    def check(self, now: float) -> None:
        """Close the connection if idle too long or its partial frame is too slow."""
        if self._ended or self._stopping or self._busy or self._queue or self._paused:
            return
        since = self._partial_since
        if since is not None and self._min_rate > 0 and now - since >= self._grace:
            rate = self._rate(now)
            if rate < self._min_rate:
                self.close_for(
                    "slow",
                    f"after {now - since:.1f} s of a frame arriving at {rate:.0f} bytes/s, "
                    f"below {self._min_rate:g}",
                )
                return
        if now - self._last >= self._idle:
            self.close_for("idle", f"after {self._idle:g} s idle")

    def close_for(self, reason: str | None, why: str) -> None:
        """Free the slot, hand over what is unfinished, answer it, then close.

        Bytes arriving meanwhile are read and discarded (left unread, they would
        make the close a reset that can lose the answer).

        `reason` is the closure counted in the metrics (None: counted by the
        caller). Idle closures are logged at INFO, the others at WARNING.
        """
        source = self._source
        log.log(
            logging.INFO if reason == "idle" else logging.WARNING,
            "channel %s: MLLP connection from %s closed %s",
            source.channel_id,
            self.peer,
            why,
            extra={"channel": source.channel_id, "peer": self.peer},
        )
        if reason is not None:
            source.metrics.closed[reason].inc()
        source.forget(self)
        self._end_of_input()

    async def _run(self) -> None:
        ingress = self._ingress
        queue = self._queue
        peer = self.peer
        transport = self._transport
        assert transport is not None
        try:
            while True:
                if not ingress.is_open():
                    self._pause(_PAUSED_BY_INGRESS)
                    if not queue and (self._ended or self._stopping):
                        break
                    await self._until_open_or_woken()
                    continue
                self._resume(_PAUSED_BY_INGRESS)
                if not queue:
                    if self._ended or self._stopping:
                        break
                    self._waiter = self._loop.create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
                    continue
                item = queue.popleft()
                if len(queue) <= _LOW_WATER:
                    self._resume(_PAUSED_BY_QUEUE)
                self._busy = True
                try:
                    if type(item) is bytes:
                        response = await ingress.receive(item, peer)
                    else:
                        assert isinstance(item, FramingError)
                        response = await ingress.receive(
                            item.data, peer, framing_error=item.describe()
                        )
                finally:
                    self._busy = False
                if response is not None and not transport.is_closing():
                    transport.write(frame(response))
                self._last = self._clock.monotonic()
                if self._stopping:
                    break
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.error(
                "channel %s: MLLP connection from %s aborted: ingress failed (%s)",
                self._source.channel_id,
                peer,
                type(exc).__name__,
                extra={"channel": self._source.channel_id, "peer": peer},
            )
        finally:
            self._finish()

    async def _until_open_or_woken(self) -> None:
        """Wait until the ingress opens or the connection is told to end."""
        self._waiter = waiter = self._loop.create_future()
        opened = self._loop.create_task(self._ingress.wait_open())
        try:
            await asyncio.wait((opened, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
            self._waiter = None

    def _finish(self) -> None:
        self._source.forget(self)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        log.info(
            "channel %s: MLLP connection from %s closed",
            self._source.channel_id,
            self.peer,
            extra={"channel": self._source.channel_id, "peer": self.peer},
        )

"""The MLLP listener: HL7 v2 messages in, ACKs out, one committed event per frame.

Guarantees:

- Each complete frame is handed to `Ingress.receive`, and the response it
  returns (the ACK) is written back only after `receive` returned, that is
  after the event is durably committed. A crash before that loses nothing
  the sender was told was received; the sender resends, and the ingress
  recognises the duplicate.
- Per connection, frames are processed strictly one at a time in arrival
  order, so pipelined senders get their responses in the order they sent.
- Input that cannot be framed (garbage, oversized, truncated frames) is
  handed to the ingress with `framing_error` set, with the bytes kept, never
  silently dropped. Frames fully received before the peer disconnects are
  still handed over (their ACK cannot be delivered; the resend is a duplicate).
- Backpressure: while the ingress is closed, or while a connection has more
  than a few frames waiting, that connection stops reading from its socket.
- `close` stops accepting, lets each in-flight `receive` finish and write its
  response, then closes every connection; frames not yet handed over are not
  acknowledged and will be resent by their senders.

Connection limits (so that idle or trickling peers cannot lock senders out):

- Idle: a connection that sends nothing for `idle_timeout_seconds`, with
  nothing queued or being processed, is closed. Whitespace alone between
  frames does not count as sending.
- Slow frames: once a frame (or input outside a frame) has started, after
  `frame_grace_seconds` it must have arrived at `min_frame_bytes_per_second`
  or more on average since its first byte; otherwise the connection is
  closed and the part received is handed over as a truncated frame (a
  reject, answered AR before the close), as when the peer disconnects.
  While the source itself is not reading (backpressure, a closed ingress)
  the clock of a partial frame restarts when reading resumes.
- At `max_connections` (or `max_connections_per_peer` for the new
  connection's remote address), a new connection first closes, to make
  room, the connection with the slowest partial frame (below the minimum
  rate) or else the one idle longest, among that address's connections for
  the per-peer limit. A connection with a frame queued or being processed,
  or a frame arriving at the minimum rate or faster, is never closed so; the
  new connection is refused (reset) only when none can be closed. A closed
  connection's slot is free at once; it still hands over what it had
  received (as above) before its socket closes.
- Timers run on the injected `Clock`: one watchdog task per source checks
  every connection about four times per timeout (at most every second).
- `limit_reached_at` (the clock's `now`) and `limit_reached` (which limit)
  tell the alert monitor when a limit was last reached; `refused` and
  `evicted` count refusals and closures to make room since start. The
  metrics count the same by reason, and closures for idleness and slowness.

Logs name peers and figures only, never message content.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

from thumpflow.connectors.mllp.framing import FramingError, MllpDecoder, frame
from thumpflow.connectors.mllp.metrics import ListenerMetrics, MllpMetrics
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.connectors.tls import server_context
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.metrics import Registry
from thumpflow.core.ports import Ingress

log = logging.getLogger("thumpflow.connectors.mllp")

_HIGH_WATER = 8
_LOW_WATER = 2
_PAUSED_BY_QUEUE = 1
_PAUSED_BY_INGRESS = 2
_MAX_TICK = 1.0


class MllpSource:
    """An MLLP server feeding one channel's ingress. `port` is the bound port after `start`."""

    def __init__(
        self,
        channel_id: str,
        spec: MllpSourceSpec,
        ingress: Ingress,
        *,
        clock: Clock | None = None,
        metrics: ListenerMetrics | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.spec = spec
        self.ingress = ingress
        self.clock = clock or SystemClock()
        self.metrics = metrics or MllpMetrics(Registry()).listener(channel_id)
        self.refused = 0
        self.evicted = 0
        self.limit_reached: str | None = None
        self.limit_reached_at: float | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._per_peer: dict[str, int] = {}
        self._tick = min(_MAX_TICK, spec.idle_timeout_seconds / 4, spec.frame_grace_seconds / 4)
        self._watchdog: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the MLLP source is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        ssl_ctx = server_context(self.spec.tls) if self.spec.tls is not None else None
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self.spec.host,
            self.spec.port,
            ssl=ssl_ctx,
            backlog=max(128, self.spec.max_connections),
        )
        self._watchdog = loop.create_task(self._watch(), name=f"thumpflow-mllp-{self.channel_id}")
        log.info(
            "channel %s: MLLP listening on %s:%d%s",
            self.channel_id,
            self.spec.host,
            self.port,
            " (TLS)" if ssl_ctx is not None else "",
            extra={"channel": self.channel_id},
        )

    async def close(self) -> None:
        """Stop accepting, finish in-flight messages, close every connection."""
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.stop()
        tasks = [conn.task for conn in connections if conn.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            log.info(
                "channel %s: MLLP listener closed",
                self.channel_id,
                extra={"channel": self.channel_id},
            )

    async def _watch(self) -> None:
        """Close idle connections and slow frames (see the module docstring)."""
        while True:
            await self.clock.sleep(self._tick)
            now = self.clock.monotonic()
            for conn in list(self._connections):
                conn.check(now)

    def _admit(self, conn: _Connection) -> str | None:
        """Take `conn` in, closing another connection to make room if a limit is reached.

        Returns why it is refused when no connection can be closed (`limit`,
        `peer_limit`, or `closing` while the source closes), else None.
        """
        if self._closing:
            return "closing"
        host = conn.host
        spec = self.spec
        peer_limit = spec.max_connections_per_peer
        if (
            peer_limit < spec.max_connections
            and self._per_peer.get(host, 0) >= peer_limit
            and not self._make_room("max_connections_per_peer", host)
        ):
            return "peer_limit"
        if len(self._connections) >= spec.max_connections and not self._make_room(
            "max_connections", None
        ):
            return "limit"
        self._connections.add(conn)
        self._per_peer[host] = self._per_peer.get(host, 0) + 1
        self.metrics.open.set(len(self._connections))
        return None

    def _make_room(self, limit: str, host: str | None) -> bool:
        """Close the most readily closed connection (of `host` when given); False if none."""
        self.limit_reached = limit
        self.limit_reached_at = self.clock.now()
        now = self.clock.monotonic()
        victim: _Connection | None = None
        best: tuple[int, float] | None = None
        for conn in self._connections:
            if host is not None and conn.host != host:
                continue
            rank = conn.eviction_rank(now)
            if rank is not None and (best is None or rank < best):
                victim, best = conn, rank
        if victim is None:
            return False
        victim.close_for(None, f"to make room for a new connection ({limit} reached)")
        self.evicted += 1
        self.metrics.closed["evicted"].inc()
        return True

    def _forget(self, conn: _Connection) -> None:
        if conn not in self._connections:
            return
        self._connections.remove(conn)
        left = self._per_peer[conn.host] - 1
        if left:
            self._per_peer[conn.host] = left
        else:
            del self._per_peer[conn.host]
        self.metrics.open.set(len(self._connections))


class _Connection(asyncio.Protocol):
    """One MLLP connection: decodes frames and hands them to the ingress in order."""

    def __init__(self, source: MllpSource) -> None:
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
        refusal = source._admit(self)
        if refusal is not None:
            why = "the listener is closing"
            if refusal != "closing":
                source.refused += 1
                source.metrics.refused[refusal].inc()
                why = f"{refusal} reached and no connection can be closed to make room"
            log.warning(
                "channel %s: MLLP connection from %s refused: %s",
                channel,
                self.peer,
                why,
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
        source._forget(self)
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
        self._source._forget(self)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        log.info(
            "channel %s: MLLP connection from %s closed",
            self._source.channel_id,
            self.peer,
            extra={"channel": self._source.channel_id, "peer": self.peer},
        )

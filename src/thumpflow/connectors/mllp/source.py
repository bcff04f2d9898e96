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

Logs name peers only, never message content.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

from thumpflow.connectors.mllp.framing import FramingError, MllpDecoder, frame
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.connectors.tls import server_context
from thumpflow.core.ports import Ingress

log = logging.getLogger("thumpflow.connectors.mllp")

_HIGH_WATER = 8
_LOW_WATER = 2
_PAUSED_BY_QUEUE = 1
_PAUSED_BY_INGRESS = 2


class MllpSource:
    """An MLLP server feeding one channel's ingress. `port` is the bound port after `start`."""

    def __init__(self, channel_id: str, spec: MllpSourceSpec, ingress: Ingress) -> None:
        self.channel_id = channel_id
        self.spec = spec
        self.ingress = ingress
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
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

    def _admit(self, conn: _Connection) -> bool:
        if self._closing or len(self._connections) >= self.spec.max_connections:
            return False
        self._connections.add(conn)
        return True

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)


class _Connection(asyncio.Protocol):
    """One MLLP connection: decodes frames and hands them to the ingress in order."""

    def __init__(self, source: MllpSource) -> None:
        self._source = source
        self._ingress = source.ingress
        self._decoder = MllpDecoder(source.spec.max_message_bytes)
        self._idle = source.spec.idle_timeout_seconds
        self._queue: deque[bytes | FramingError] = deque()
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._paused = 0
        self._busy = False
        self._ended = False
        self._stopping = False
        self._last = 0.0
        self.peer = "?"
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        channel = self._source.channel_id
        if not self._source._admit(self):
            log.warning(
                "channel %s: MLLP connection from %s refused",
                channel,
                self.peer,
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
        self._last = self._loop.time()
        self._idle_handle = self._loop.call_later(self._idle, self._check_idle)
        if not self._ingress.is_open():
            self._pause(_PAUSED_BY_INGRESS)
        self.task = self._loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._ended or self._stopping:
            return
        self._last = self._loop.time()
        items = self._decoder.feed(data)
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

    def _check_idle(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        remaining = self._last + self._idle - self._loop.time()
        if self._busy or self._queue or remaining > 0:
            self._idle_handle = self._loop.call_later(max(remaining, 0.05), self._check_idle)
            return
        log.info(
            "channel %s: MLLP connection from %s closed after %.0f s idle",
            self._source.channel_id,
            self.peer,
            self._idle,
            extra={"channel": self._source.channel_id, "peer": self.peer},
        )
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
                    await ingress.wait_open()
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

    def _finish(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
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

"""The MLLP listener: accepts connections within limits, feeding one channel's ingress.

What happens on one connection (frames, the ACK after the commit, order,
framing errors, backpressure, closing idle connections and slow frames) is
`connection.py`'s.

Guarantees:

- `close` stops accepting, lets each in-flight `receive` finish and write its
  response, then closes every connection; frames not yet handed over are not
  acknowledged and will be resent by their senders.
- Connection limits, so that idle or trickling peers cannot lock senders
  out: at `max_connections` (or `max_connections_per_peer` for the new
  connection's remote address), a new connection first closes, to make
  room, the connection with the slowest partial frame (below the minimum
  rate) or else the one idle longest, among that address's connections for
  the per-peer limit. A connection with a frame queued or being processed,
  or a frame arriving at the minimum rate or faster, is never closed so; the
  new connection is refused (reset) only when none can be closed. A closed
  connection's slot is free at once; it still hands over what it had
  received before its socket closes.
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

from thumpflow.connectors.mllp.connection import MllpConnection
from thumpflow.connectors.mllp.metrics import ListenerMetrics, MllpMetrics
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.connectors.tls import server_context
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.metrics import Registry
from thumpflow.core.ports import Ingress

log = logging.getLogger("thumpflow.connectors.mllp")

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
        self._connections: set[MllpConnection] = set()
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
            lambda: MllpConnection(self),
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

    def admit(self, conn: MllpConnection) -> str | None:
        """Take `conn` in, closing another connection to make room if a limit is reached.

        Returns why it is refused (for the log) when no connection can be
        closed, counted by reason, or while the source closes; else None.
        """
        if self._closing:
            return "the listener is closing"
        host = conn.host
        spec = self.spec
        peer_limit = spec.max_connections_per_peer
        refusal = None
        if (
            peer_limit < spec.max_connections
            and self._per_peer.get(host, 0) >= peer_limit
            and not self._make_room("max_connections_per_peer", host)
        ):
            refusal = "peer_limit"
        elif len(self._connections) >= spec.max_connections and not self._make_room(
            "max_connections", None
        ):
            refusal = "limit"
        if refusal is not None:
            self.refused += 1
            self.metrics.refused[refusal].inc()
            return f"{self.limit_reached} reached and no connection can be closed to make room"
        self._connections.add(conn)
        self._per_peer[host] = self._per_peer.get(host, 0) + 1
        self.metrics.open.set(len(self._connections))
        return None

    def _make_room(self, limit: str, host: str | None) -> bool:
        """Close the most readily closed connection (of `host` when given); False if none."""
        self.limit_reached = limit
        self.limit_reached_at = self.clock.now()
        now = self.clock.monotonic()
        victim: MllpConnection | None = None
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

    def forget(self, conn: MllpConnection) -> None:
        """Free `conn`'s slot (idempotent)."""
        if conn not in self._connections:
            return
        self._connections.remove(conn)
        left = self._per_peer[conn.host] - 1
        if left:
            self._per_peer[conn.host] = left
        else:
            del self._per_peer[conn.host]
        self.metrics.open.set(len(self._connections))

"""An MLLP receiving peer for tests.

`MllpPeer` is a real MLLP server on 127.0.0.1 that records every message it
receives (in arrival order, across connections) and answers each with an
ACK: `AA` by default, or what a scripted `Action` says for chosen messages
(`Reply` with another code or a wrong MSA-2, `Delay` before answering, `Drop`
the connection without answering). A recorded message was received; whether
it was acknowledged depends on its action.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

from thumpflow.connectors.mllp.framing import FramingError, MllpDecoder, frame
from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import Message, build_ack, build_ack_for_raw


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer with ACK `code` and MSA-3 `text`; `control_id` replaces MSA-2 when given."""

    code: str = "AA"
    text: str | None = None
    control_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait `seconds`, then answer as `then` says."""

    seconds: float
    then: Reply = field(default_factory=Reply)


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without answering."""


Action = Reply | Delay | Drop


class MllpPeer:
    """A scriptable MLLP receiver; `port` is valid after `start`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default: Action | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.default: Action = default if default is not None else Reply()
        self.received: list[bytes] = []
        self.connections = 0
        self._by_number: dict[int, Action] = {}
        self._by_marker: list[tuple[bytes, Action]] = []
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def on_message(self, number: int, action: Action) -> None:
        """Act so on the `number`-th message received (1-based, counted across connections)."""
        self._by_number[number] = action

    def on_marker(self, marker: bytes, action: Action) -> None:
        """Act so on every message containing `marker` (unless its number is scripted)."""
        self._by_marker.append((marker, action))

    def control_ids(self) -> list[str]:
        """MSH-10 of every message received, in arrival order."""
        return [Message.parse(raw).control_id for raw in self.received]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    def _action_for(self, number: int, raw: bytes) -> Action:
        scripted = self._by_number.get(number)
        if scripted is not None:
            return scripted
        for marker, action in self._by_marker:
            if marker in raw:
                return action
        return self.default

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        decoder = MllpDecoder(1 << 24)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for item in decoder.feed(data):
                    raw = item.data if isinstance(item, FramingError) else item
                    self.received.append(raw)
                    action = self._action_for(len(self.received), raw)
                    if isinstance(action, Drop):
                        return
                    if isinstance(action, Delay):
                        await asyncio.sleep(action.seconds)
                        action = action.then
                    writer.write(frame(_ack(raw, action)))
                    await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _ack(raw: bytes, reply: Reply) -> bytes:
    try:
        message = Message.parse(raw)
    except MessageError as exc:
        return build_ack_for_raw(raw, "AR" if reply.code == "AA" else reply.code, exc)
    if reply.control_id is not None:
        message.set("MSH-10", reply.control_id)
    return build_ack(message, reply.code, text=reply.text)

"""The MLLP destination: one HL7 v2 message at a time, each answered by its ACK.

Guarantees:

- A delivery is `Sent` only when the receiver's ACK for exactly that message
  (MSA-2 equal to the sent MSH-10) says `AA` or `CA`.
- `AR`/`CR` (receiver cannot take it now) are `Transient`; `AE`/`CE` (the
  receiver rejects the message) are `Permanent`, with the receiver's MSA-3
  and ERR text as the reason.
- No ACK within `ack_timeout_seconds`, a refused, reset or closed
  connection, an ACK for another message or a response that is not an ACK
  are `Transient`, and the connection is dropped, so a late ACK can never be
  taken for the next message's. The next send reconnects.
- The destination never retries by itself: whether the receiver got a message
  whose ACK was lost is for its duplicate detection (same MSH-10) to settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Sequence

from thumpflow.connectors._oserror import os_error_text
from thumpflow.connectors.mllp.framing import FramingError, MllpDecoder, frame
from thumpflow.connectors.mllp.spec import MllpDestinationSpec
from thumpflow.connectors.tls import client_context
from thumpflow.core.errors import MessageError
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import Permanent, SendResult, Sent, Transient
from thumpflow.hl7v2 import Message, parse_ack

log = logging.getLogger("thumpflow.connectors.mllp")

_REASON_CHARS = 300


class _ConnectionLostError(Exception):
    """The connection failed while waiting for the ACK; the reason names how."""


class MllpDestination:
    """Sends deliveries over one persistent MLLP connection (opened on first use)."""

    max_batch = 1

    def __init__(self, destination_id: str, spec: MllpDestinationSpec) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self._ssl: ssl.SSLContext | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = MllpDecoder(spec.max_message_bytes)
        self._frames: deque[bytes | FramingError] = deque()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Prepare TLS; raises OSError/ssl.SSLError on unreadable certificate files."""
        if self.spec.tls is not None:
            self._ssl = client_context(self.spec.tls)

    async def close(self) -> None:
        async with self._lock:
            await self._disconnect()

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        results: list[SendResult] = []
        async with self._lock:
            for delivery in batch:
                results.append(await self._send_one(delivery))
        return results

    async def _send_one(self, delivery: Delivery) -> SendResult:
        try:
            control_id = _control_id(delivery.body)
        except MessageError as exc:
            return Permanent(f"not an HL7 v2 message with MSH-10: {exc.describe()}")
        if self._writer is None or self._stale():
            await self._disconnect()
            failure = await self._connect()
            if failure is not None:
                return failure
        try:
            async with asyncio.timeout(self.spec.ack_timeout_seconds):
                writer = self._writer
                assert writer is not None
                writer.write(frame(delivery.body))
                await writer.drain()
                response = await self._read_frame()
        except TimeoutError:
            await self._disconnect()
            return Transient(f"no ACK within {self.spec.ack_timeout_seconds:g} s")
        except _ConnectionLostError as exc:
            await self._disconnect()
            return Transient(str(exc))
        except OSError as exc:
            await self._disconnect()
            return Transient(f"connection failed: {os_error_text(exc)}")
        try:
            ack = parse_ack(response)
        except MessageError as exc:
            await self._disconnect()
            return Transient(f"the response is not an ACK: {exc.describe()}")
        if ack.control_id != control_id:
            await self._disconnect()
            return Transient("the ACK is for another message (MSA-2 does not match MSH-10)")
        code = ack.code
        if code in ("AA", "CA"):
            return Sent(code)
        reason = _ack_reason(code, ack.text, ack.error_text)
        if code in ("AE", "CE"):
            return Permanent(reason)
        return Transient(reason)

    def _stale(self) -> bool:
        """Whether the idle connection was closed by the peer or holds unsolicited input."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            return True
        return writer.is_closing() or reader.at_eof() or bool(self._frames)

    async def _connect(self) -> SendResult | None:
        spec = self.spec
        server_name = None
        if self._ssl is not None and spec.tls is not None:
            server_name = spec.tls.server_name or spec.host
        try:
            async with asyncio.timeout(spec.connect_timeout_seconds):
                self._reader, self._writer = await asyncio.open_connection(
                    spec.host,
                    spec.port,
                    ssl=self._ssl,
                    server_hostname=server_name,
                    limit=spec.max_message_bytes + 64,
                )
        except TimeoutError:
            return Transient(f"connect timed out after {spec.connect_timeout_seconds:g} s")
        except OSError as exc:
            return Transient(f"cannot connect: {os_error_text(exc)}")
        self._decoder = MllpDecoder(spec.max_message_bytes)
        self._frames.clear()
        log.info(
            "destination %s: MLLP connected to %s:%d",
            self.destination_id,
            spec.host,
            spec.port,
            extra={"destination": self.destination_id},
        )
        return None

    async def _disconnect(self) -> None:
        writer = self._writer
        self._reader = self._writer = None
        self._frames.clear()
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()

    async def _read_frame(self) -> bytes:
        reader = self._reader
        assert reader is not None
        while not self._frames:
            data = await reader.read(65536)
            if not data:
                raise _ConnectionLostError("the receiver closed the connection before the ACK")
            self._frames.extend(self._decoder.feed(data))
        item = self._frames.popleft()
        if isinstance(item, FramingError):
            raise _ConnectionLostError(f"unframed response: {item.describe()}")
        return item


def _control_id(body: bytes) -> str:
    return Message.parse(body).control_id


def _ack_reason(code: str, text: str | None, error_text: str | None) -> str:
    said = "; ".join(part for part in (text, error_text) if part)
    if len(said) > _REASON_CHARS:
        said = said[:_REASON_CHARS] + "…"
    return f"{code}: {said}" if said else code

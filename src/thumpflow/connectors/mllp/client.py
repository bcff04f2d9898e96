"""An MLLP client: send messages one at a time on one connection, each answered in turn."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable

from thumpflow.connectors.mllp.framing import FramingError, MllpDecoder, frame


async def send_messages(
    host: str,
    port: int,
    messages: list[bytes],
    *,
    ack_timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    on_response: Callable[[int, bytes], None] | None = None,
) -> list[bytes]:
    """Send each message and wait for its response frame; return the responses in order.

    Raises TimeoutError when a response does not come within `ack_timeout`
    seconds, ConnectionError when the receiver closes the connection first
    (the messages after the last returned response may or may not have been
    received), OSError when it cannot connect. `on_response(index, response)`
    is called as each response arrives, before the next message is sent.
    """
    async with asyncio.timeout(ack_timeout):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ssl_context, server_hostname=server_hostname
        )
    decoder = MllpDecoder(1 << 24)
    pending: list[bytes | FramingError] = []
    responses: list[bytes] = []
    try:
        for message in messages:
            writer.write(frame(message))
            await writer.drain()
            async with asyncio.timeout(ack_timeout):
                while not pending:
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError(
                            f"receiver closed the connection after {len(responses)} responses"
                        )
                    pending.extend(decoder.feed(data))
            item = pending.pop(0)
            if isinstance(item, FramingError):
                raise ConnectionError(f"receiver sent an unframed response: {item.describe()}")
            if on_response is not None:
                on_response(len(responses), item)
            responses.append(item)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return responses

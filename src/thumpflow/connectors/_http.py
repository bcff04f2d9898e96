"""What the HTTP-speaking destinations share: the client session, `Retry-After`, transport errors.

- `open_session` opens an aiohttp session that never repeats a request by
  itself: retries belong to the flow core (backoff, rate limits, attempt
  counts), so a connection dropped without a response is reported, not
  repeated.
- `open_authorized` is `open_session` with an `Authorizer` started on it.
- `parse_retry_after` reads a `Retry-After` value (delta seconds or HTTP
  date) into seconds; anything unreadable is None, never an error.
- `transport_failure` turns a failure to get any response into a result:
  an invalid URL is `Permanent`, everything else (timeouts, refused, reset
  or dropped connections, TLS failures) is `Transient`. Reasons name the
  failure only, never the request.
"""

from __future__ import annotations

import math
import ssl
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

import aiohttp

from thumpflow.connectors._oserror import os_error_text
from thumpflow.connectors.auth import Authorizer
from thumpflow.connectors.tls import ClientTls, client_context
from thumpflow.core.outcome import Permanent, Transient

__all__ = ["open_authorized", "open_session", "parse_retry_after", "transport_failure"]


def open_session(
    tls: ClientTls | None, limit: int, timeout_seconds: float
) -> aiohttp.ClientSession:
    """A pooled session of at most `limit` connections, each request limited to the timeout.

    Raises OSError/ssl.SSLError when the TLS files cannot be read.
    """
    context: ssl.SSLContext | bool = True
    if tls is not None:
        context = client_context(tls)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=limit),
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
    )
    # aiohttp silently repeats an idempotent request (PUT, GET, DELETE) once when
    # the connection closes without a response; that retry belongs to the flow core.
    session._retry_connection = False
    return session


async def open_authorized(
    authorizer: Authorizer, tls: ClientTls | None, limit: int, timeout_seconds: float
) -> aiohttp.ClientSession:
    """`open_session`, then `authorizer.start` on it; the session is closed if that fails.

    Raises OSError/ssl.SSLError for unreadable TLS or key files and ValueError
    for unusable credentials.
    """
    session = open_session(tls, limit, timeout_seconds)
    try:
        await authorizer.start(session)
    except BaseException:
        await session.close()
        raise
    return session


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta seconds or HTTP date), if valid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def transport_failure(
    exc: TimeoutError | aiohttp.ClientError, timeout_seconds: float, destination_id: str
) -> Transient | Permanent:
    """The result of a request that got no response because of `exc`."""
    if isinstance(exc, TimeoutError):
        return Transient(f"timed out after {timeout_seconds:g} s")
    if isinstance(exc, aiohttp.InvalidURL):
        return Permanent(f"invalid URL for destination {destination_id}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Transient(f"cannot connect: {os_error_text(exc.os_error)}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Transient("server closed the connection without a response")
    if isinstance(exc, aiohttp.ClientOSError):
        return Transient(f"connection failed: {os_error_text(exc)}")
    return Transient(f"request failed: {type(exc).__name__}")

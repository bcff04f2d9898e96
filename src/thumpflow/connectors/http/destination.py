"""The HTTP destination: one POST per delivery, keyed for idempotency.

Every request carries `Idempotency-Key: <delivery key>` (stable across
retries, restarts and replays), `X-Thumpflow-Event-Id` and
`X-Thumpflow-Ordering-Key`, so a receiver that honours the key applies a
resend once. The destination never retries; it classifies each response:

- 2xx: `Sent`. 409: the receiver already holds this key (a resend): `Sent`.
- 408, 429, 502, 503, 504, any other 5xx, timeouts, refused, reset or dropped
  connections, TLS failures: `Transient`, with `Retry-After` (seconds or an
  HTTP date) as `retry_after`.
- Any other status (4xx, unexpected redirects): `Permanent`, with the
  diagnostics of a FHIR OperationOutcome or the first 300 characters of
  the response body as the reason.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime

import aiohttp

from thumpflow.connectors.http.spec import HttpDestinationSpec
from thumpflow.connectors.tls import client_context
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import Permanent, SendResult, Sent, Transient

_TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})
_EXCERPT_CHARS = 300


class HttpDestination:
    """POSTs deliveries to `spec.url` over one pooled client session (opened by `start`)."""

    def __init__(self, destination_id: str, spec: HttpDestinationSpec) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self.max_batch = spec.max_batch
        self._session: aiohttp.ClientSession | None = None
        self._headers = dict(spec.headers)

    async def start(self) -> None:
        """Open the connection pool; raises OSError/ssl.SSLError on unreadable TLS files."""
        tls: ssl.SSLContext | bool = True
        if self.spec.tls is not None:
            tls = client_context(self.spec.tls)
        connector = aiohttp.TCPConnector(ssl=tls, limit=max(self.spec.max_batch, 8))
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.spec.timeout_seconds),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        if len(batch) == 1:
            return [await self._post(batch[0])]
        return list(await asyncio.gather(*(self._post(delivery) for delivery in batch)))

    async def _post(self, delivery: Delivery) -> SendResult:
        session = self._session
        if session is None:
            raise RuntimeError("the HTTP destination is not started")
        headers = dict(self._headers)
        headers["Idempotency-Key"] = delivery.key
        headers["X-Thumpflow-Event-Id"] = delivery.event_id
        headers["X-Thumpflow-Ordering-Key"] = delivery.ordering_key
        if self.spec.format == "json":
            body = envelope(delivery)
            headers["Content-Type"] = "application/json"
        else:
            body = delivery.body
            headers["Content-Type"] = delivery.content_type
        try:
            async with session.post(
                self.spec.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return Sent(f"HTTP {status}")
                payload = await response.read()
                return classify(status, response.headers, payload)
        except TimeoutError:
            return Transient(f"timed out after {self.spec.timeout_seconds:g} s")
        except aiohttp.InvalidURL:
            return Permanent(f"invalid URL for destination {self.destination_id}")
        except aiohttp.ClientConnectorError as exc:
            return Transient(f"cannot connect: {_os_text(exc.os_error)}")
        except aiohttp.ServerDisconnectedError:
            return Transient("server closed the connection without a response")
        except aiohttp.ClientOSError as exc:
            return Transient(f"connection failed: {_os_text(exc)}")
        except aiohttp.ClientError as exc:
            return Transient(f"request failed: {type(exc).__name__}")


def classify(status: int, headers: Mapping[str, str], body: bytes) -> SendResult:
    """The result for a response status, with `Retry-After` and the receiver's reason."""
    if 200 <= status < 300:
        return Sent(f"HTTP {status}")
    if status == 409:
        return Sent("HTTP 409: the receiver already holds this idempotency key")
    reason = f"HTTP {status}"
    excerpt = _reason_excerpt(body)
    if excerpt:
        reason = f"{reason}: {excerpt}"
    if status in _TRANSIENT_STATUS or status >= 500:
        return Transient(reason, retry_after=parse_retry_after(headers.get("Retry-After")))
    return Permanent(reason)


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


def envelope(delivery: Delivery) -> bytes:
    """The `json` format body: event metadata and the message (text, or base64 if not UTF-8)."""
    record: dict[str, object] = {
        "delivery_key": delivery.key,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "channel_id": delivery.channel_id,
        "ordering_key": delivery.ordering_key,
        "sequence": delivery.sequence,
        "lane": delivery.lane.label,
        "delivery_id": delivery.delivery_id,
        "created_at": delivery.created_at,
        "content_type": delivery.content_type,
    }
    try:
        record["body"] = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        record["body"] = base64.b64encode(delivery.body).decode("ascii")
        record["body_encoding"] = "base64"
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _reason_excerpt(body: bytes) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("resourceType") == "OperationOutcome":
        found = []
        for issue in parsed.get("issue") or ():
            if not isinstance(issue, dict):
                continue
            details = issue.get("details")
            said = issue.get("diagnostics") or (
                details.get("text") if isinstance(details, dict) else None
            )
            if said:
                found.append(f"{issue.get('severity', 'error')}: {said}")
        if found:
            text = "; ".join(found)
    text = " ".join(text.split())
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "…"
    return text


def _os_text(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__

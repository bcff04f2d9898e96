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
import json
from collections.abc import Mapping, Sequence

import aiohttp

from thumpflow.connectors._body import body_fields
from thumpflow.connectors._http import open_session, parse_retry_after, transport_failure
from thumpflow.connectors.auth.client import read_secret
from thumpflow.connectors.http.spec import HttpDestinationSpec
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
        """Read the secret headers and open the connection pool.

        Raises ValueError naming the variable or file of a secret header that
        cannot be read, OSError/ssl.SSLError on unreadable TLS files.
        """
        spec = self.spec
        for name, ref in spec.secret_headers.items():
            try:
                self._headers[name] = read_secret(ref)
            except ValueError as err:
                raise ValueError(f"secret header {name!r}: {err}") from None
        self._session = open_session(spec.tls, max(spec.max_batch, 8), spec.timeout_seconds)

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
        except (TimeoutError, aiohttp.ClientError) as exc:
            return transport_failure(exc, self.spec.timeout_seconds, self.destination_id)


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
    record.update(body_fields(delivery.body))
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

"""The HTTP side of the FHIR connectors: one pooled session, authorised requests, answers.

Shared by the flow destination (`FhirDestination`) and the batch destination
(`FhirBundleWriter`), so both authenticate (none, bearer, SMART Backend
Services; mutual TLS through `tls`), renew credentials and read answers the
same way. A 401 makes the client renew its credential once and repeat the
request (the request was not applied); a second 401 is returned as it is.
A request that gets no response (timeout, refused or dropped connection)
raises `StopError` holding the transient or permanent result; no request is
ever repeated for any other reason: retrying is the caller's decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from thumpflow.connectors._http import open_authorized, parse_retry_after, transport_failure
from thumpflow.connectors.auth import AuthSpec, authorizer
from thumpflow.connectors.fhir._bundle import JsonObject
from thumpflow.connectors.fhir._classify import Answer, body_excerpt
from thumpflow.connectors.fhir.spec import FhirServer
from thumpflow.connectors.tls import ClientTls
from thumpflow.core.clock import Clock
from thumpflow.core.outcome import Permanent, Transient

FHIR_JSON = "application/fhir+json"


class StopError(Exception):
    """Ends a write early with `result` (a transport failure or a refused step)."""

    def __init__(self, result: Transient | Permanent) -> None:
        super().__init__(result.reason)
        self.result = result


@dataclass(slots=True, frozen=True)
class Reply:
    """A server's answer and the `Location` (or `Content-Location`) it gave, if any."""

    answer: Answer
    location: str | None


class FhirClient:
    """Authorised requests to one FHIR base URL; `start` before use, `close` after."""

    def __init__(
        self,
        destination_id: str,
        base_url: str,
        auth: AuthSpec,
        *,
        tls: ClientTls | None,
        headers: Mapping[str, str],
        timeout_seconds: float,
        pool: int,
        clock: Clock,
    ) -> None:
        self.destination_id = destination_id
        self.base = base_url.rstrip("/")
        self.base_path = urlsplit(self.base).path.rstrip("/")
        self._tls = tls
        self._headers = dict(headers)
        self._timeout = timeout_seconds
        self._pool = pool
        self._auth = authorizer(auth, self.base, timeout_seconds, clock)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_server(
        cls, destination_id: str, server: FhirServer, *, pool: int, clock: Clock
    ) -> FhirClient:
        """A client for a destination's `FhirServer` settings."""
        return cls(
            destination_id,
            server.base_url,
            server.auth,
            tls=server.tls,
            headers=server.headers,
            timeout_seconds=server.timeout_seconds,
            pool=pool,
            clock=clock,
        )

    async def start(self) -> None:
        """Open the connection pool and read credentials.

        Raises OSError/ssl.SSLError for unreadable TLS or key files and
        ValueError for unusable credentials (wrong key type, unset variable).
        """
        self._session = await open_authorized(self._auth, self._tls, self._pool, self._timeout)

    async def close(self) -> None:
        """Close the pool; idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: JsonObject | None,
        headers: Mapping[str, str],
        request_id: str | None,
    ) -> Reply:
        """One request, with the credential renewed and the request repeated once after a 401.

        Raises `StopError` when no response came, `CredentialError` when no
        credential can be had.
        """
        session = self._session
        if session is None:
            raise RuntimeError(f"FHIR connector {self.destination_id} is not started")
        url = f"{self.base}/{path}" if path else self.base
        sent = dict(self._headers)
        sent.update(headers)
        sent["Accept"] = FHIR_JSON
        if request_id is not None:
            sent["X-Request-Id"] = request_id
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            sent["Content-Type"] = FHIR_JSON
        renewed = False
        while True:
            credential = await self._auth.authorization()
            if credential is not None:
                sent["Authorization"] = credential
            reply = await self._exchange(session, method, url, data, sent)
            if reply.answer.status != 401 or renewed:
                return reply
            renewed = True
            if not await self._auth.renew(credential):
                return reply

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str],
    ) -> Reply:
        try:
            async with session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.read()
                payload, excerpt = body_excerpt(raw)
                answer = Answer(
                    response.status,
                    payload=payload,
                    excerpt=excerpt,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
                location = response.headers.get("Location") or response.headers.get(
                    "Content-Location"
                )
                return Reply(answer, location)
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure = transport_failure(exc, self._timeout, self.destination_id)
            raise StopError(failure) from None

"""Reads from the server that sends Subscription notifications: focus resources and `$events`.

`FhirSubscriptionClient` implements `core.ports.NotificationSource`. Every
request carries the configured credential (`connectors.auth`: none, bearer,
SMART Backend Services), renewed and repeated once after a 401. A focus
reference is read only from the configured base URL: a relative `Type/id`,
or an absolute URL under `base_url`; any other URL is refused (a
notification cannot make thumpflow call elsewhere). Any failure (transport,
non-2xx, not a JSON resource) raises `SourceReadError` with a reason that
names the status or failure, never the response body.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import aiohttp

from thumpflow.connectors._http import open_authorized
from thumpflow.connectors.auth import CredentialError, authorizer
from thumpflow.connectors.fhir_subscription.spec import FhirSubscriptionSourceSpec
from thumpflow.core.clock import Clock
from thumpflow.core.errors import SourceReadError

FHIR_JSON = "application/fhir+json"
_RELATIVE = re.compile(
    r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?$"
)


class FhirSubscriptionClient:
    """Reads focus resources and missed events from `spec.base_url`; see the module docstring."""

    def __init__(self, spec: FhirSubscriptionSourceSpec, clock: Clock) -> None:
        self.spec = spec
        self._base = spec.base_url.rstrip("/")
        self._auth = authorizer(spec.auth, self._base, spec.timeout_seconds, clock)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool and read credentials (OSError/ValueError when unusable)."""
        self._session = await open_authorized(
            self._auth, self.spec.tls, 4, self.spec.timeout_seconds
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def read(self, reference: str) -> dict[str, Any]:
        """GET the resource a focus reference names."""
        if reference.startswith(self._base + "/"):
            reference = reference[len(self._base) + 1 :]
        if not _RELATIVE.match(reference):
            raise SourceReadError("the focus reference is not a Type/id on the configured server")
        return await self._get(f"{self._base}/{reference}", "reading the focus resource")

    async def events(self, since: int, until: int) -> dict[str, Any]:
        """`Subscription/<id>/$events` for event numbers `since`..`until` (inclusive)."""
        query = urlencode(
            {"eventsSinceNumber": since, "eventsUntilNumber": until, "content": "id-only"}
        )
        url = f"{self._base}/Subscription/{self.spec.subscription_id}/$events?{query}"
        return await self._get(url, "asking $events")

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        session = self._session
        if session is None:
            raise RuntimeError("the FHIR subscription client is not started")
        headers = {"Accept": FHIR_JSON}
        renewed = False
        try:
            while True:
                credential = await self._auth.authorization()
                if credential is not None:
                    headers["Authorization"] = credential
                async with session.get(url, headers=headers, allow_redirects=False) as response:
                    status = response.status
                    raw = await response.read()
                if status != 401 or renewed or not await self._auth.renew(credential):
                    break
                renewed = True
        except CredentialError as exc:
            raise SourceReadError(f"{what}: no credential: {exc}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SourceReadError(f"{what}: request failed ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            raise SourceReadError(f"{what}: the server answered {status}")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise SourceReadError(f"{what}: the answer is not a FHIR resource")
        return body

"""One alert webhook: POSTs a JSON notice and reports failure by raising.

The sink never retries (the alert monitor does, with backoff). Each notice
carries `Idempotency-Key: thumpflow-alert-<id>-<raised|cleared>`, the same
on every retry, so a receiver can drop a repeat. A 2xx answer
is success; any other status, a timeout or a transport failure raises
`WebhookError` naming the webhook and the failure, never the headers.
Secret header values are read once, at `start`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from thumpflow.connectors._http import open_session
from thumpflow.connectors.webhook.spec import HeaderSecret, WebhookSpec


class WebhookError(OSError):
    """A notice was not accepted; worth trying again later."""


class WebhookSink:
    """POSTs notices to `spec.url` over a small pooled session (opened by `start`)."""

    def __init__(self, spec: WebhookSpec) -> None:
        self.spec = spec
        parts = urlsplit(spec.url)
        self.name = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}

    async def start(self) -> None:
        """Read secret headers and open the session; OSError/ValueError when one is missing."""
        self._headers = {name: _value(name, value) for name, value in self.spec.headers.items()}
        self._session = open_session(self.spec.tls, 2, self.spec.timeout_seconds)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, body: dict[str, Any]) -> None:
        if self._session is None:
            raise WebhookError(f"webhook {self.name}: not started")
        try:
            key = f"thumpflow-alert-{body.get('alert_id')}-{body.get('transition')}"
            headers = {**self._headers, "Idempotency-Key": key}
            async with self._session.post(self.spec.url, json=body, headers=headers) as resp:
                if not 200 <= resp.status < 300:
                    raise WebhookError(f"webhook {self.name}: answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as err:
            raise WebhookError(f"webhook {self.name}: {type(err).__name__}") from None


def _value(name: str, value: str | HeaderSecret) -> str:
    if isinstance(value, str):
        return value
    if value.env is not None:
        found = os.environ.get(value.env)
        if found is None:
            raise ValueError(f"header {name}: environment variable {value.env} is not set")
        return found
    return Path(value.file or "").read_text(encoding="utf-8").rstrip("\r\n")

"""Credentials for FHIR requests: none, a bearer token, or SMART Backend Services.

An `Authorizer` gives the `Authorization` header for a request and, after a
401, `renew`s its credential once. Secrets (tokens, private keys) are read
from the files or environment variables the configuration names, at `start`;
they are never logged and never appear in an exception message.

SMART Backend Services (SMART App Launch v2, client-confidential-asymmetric):
the client authenticates to the token endpoint with a JWT assertion signed by
its private key (RFC 7523): header `{alg, kid, typ: JWT}`, claims
`iss = sub = client_id`, `aud = token_url`, `iat`, `exp` (under five minutes
ahead) and a unique `jti`. The access token is cached and fetched again
`_REFRESH_MARGIN` seconds before it expires (half its lifetime for short-lived
tokens), so a caller that asks for `authorization()` before each request
always sends a live token. Fetches are single-flight: concurrent requests
that need a token wait for one token request. A token endpoint that is slow,
down or refusing raises `CredentialError`; the caller decides what that means
(the FHIR destination keeps its deliveries queued, the FHIR Bulk source fails
the run).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from thumpflow.connectors.auth._jose import SigningKey, load_signing_key, sign_jwt
from thumpflow.connectors.auth.spec import (
    AuthSpec,
    BearerAuth,
    NoAuth,
    SecretRef,
    SmartBackendAuth,
)
from thumpflow.core.clock import Clock

_REFRESH_MARGIN = 30.0
_ASSERTION_LIFETIME = 290
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_REASON_CHARS = 300


class CredentialError(Exception):
    """No credential can be had right now (token endpoint slow, down or refusing)."""


class Authorizer(Protocol):
    """The `Authorization` header of FHIR requests, renewed after a 401."""

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Read key material or tokens and make token requests on `session`.

        Raises OSError/ValueError when they are unusable. May be called again
        with a new session (the credentials are read again; a cached SMART
        token is kept).
        """
        ...

    async def authorization(self) -> str | None:
        """The `Authorization` header value, or None to send none.

        Raises CredentialError when no token can be fetched.
        """
        ...

    async def renew(self, rejected: str | None) -> bool:
        """After a 401 to `rejected`: get a fresh credential; False when none differs.

        Raises CredentialError when the credential cannot be read or fetched again.
        """
        ...


def read_secret(ref: SecretRef) -> str:
    """The value a `SecretRef` points at; raises `ValueError` naming the variable or file."""
    if ref.env is not None:
        value = os.environ.get(ref.env, "").strip()
        if not value:
            raise ValueError(f"environment variable {ref.env} is not set")
        return value
    assert ref.file is not None
    try:
        value = Path(ref.file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ValueError(f"cannot read {ref.file}: {reason}") from None
    if not value:
        raise ValueError(f"{ref.file} is empty")
    return value


def authorizer(spec: AuthSpec, base_url: str, timeout: float, clock: Clock) -> Authorizer:
    """The authorizer for an `auth` spec.

    `base_url` is the FHIR base whose SMART configuration names the token
    endpoint when the spec gives none; `timeout` limits each token request.
    """
    if isinstance(spec, NoAuth):
        return _NoAuth()
    if isinstance(spec, BearerAuth):
        return _Bearer(spec)
    return SmartBackend(spec, base_url, timeout, clock)


class _NoAuth:
    async def start(self, session: aiohttp.ClientSession) -> None:
        return None

    async def authorization(self) -> str | None:
        return None

    async def renew(self, rejected: str | None) -> bool:
        return False


class _Bearer:
    """A static token; from a file it is re-read after a 401 (rotation without restart)."""

    def __init__(self, spec: BearerAuth) -> None:
        self._spec = spec
        self._token = ""

    async def start(self, session: aiohttp.ClientSession) -> None:
        self._token = await self._read()

    async def _read(self) -> str:
        if self._spec.token_env is not None:
            token = os.environ.get(self._spec.token_env, "").strip()
            if not token:
                raise ValueError(f"environment variable {self._spec.token_env} is not set")
            return token
        assert self._spec.token_file is not None
        path = Path(self._spec.token_file)
        token = (await asyncio.to_thread(path.read_text, "utf-8")).strip()
        if not token:
            raise ValueError(f"token file {path} is empty")
        return token

    async def authorization(self) -> str | None:
        return f"Bearer {self._token}"

    async def renew(self, rejected: str | None) -> bool:
        if self._spec.token_file is None:
            return False
        previous = self._token
        try:
            self._token = await self._read()
        except (OSError, ValueError) as exc:
            raise CredentialError(f"cannot re-read the bearer token file: {exc}") from None
        return self._token != previous


@dataclass(slots=True, frozen=True)
class _Token:
    value: str
    refresh_at: float


class SmartBackend:
    """SMART Backend Services client: signed assertion, cached token, single-flight refresh."""

    def __init__(self, spec: SmartBackendAuth, base_url: str, timeout: float, clock: Clock) -> None:
        self._spec = spec
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._key: SigningKey | None = None
        self._session: aiohttp.ClientSession | None = None
        self._token_url = spec.token_url
        self._token: _Token | None = None
        self._pending: asyncio.Future[_Token] | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        pem = await asyncio.to_thread(Path(self._spec.private_key_file).read_bytes)
        self._key = load_signing_key(pem, self._spec.algorithm)
        self._session = session

    async def authorization(self) -> str | None:
        return f"Bearer {(await self._current(None)).value}"

    async def renew(self, rejected: str | None) -> bool:
        stale = rejected.removeprefix("Bearer ") if rejected else None
        return (await self._current(stale)).value != stale

    async def _current(self, stale: str | None) -> _Token:
        token = self._token
        if (
            token is not None
            and token.value != stale
            and self._clock.monotonic() < token.refresh_at
        ):
            return token
        pending = self._pending
        if pending is None:
            pending = self._pending = asyncio.ensure_future(self._fetch())
            pending.add_done_callback(self._fetched)
        return await asyncio.shield(pending)

    def _fetched(self, future: asyncio.Future[_Token]) -> None:
        self._pending = None
        if not future.cancelled() and future.exception() is None:
            self._token = future.result()

    async def _fetch(self) -> _Token:
        session, key = self._session, self._key
        if session is None or key is None:
            raise RuntimeError("the SMART authorizer is not started")
        token_url = await self._discover(session)
        now = int(self._clock.now())
        claims = {
            "iss": self._spec.client_id,
            "sub": self._spec.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        form = {
            "grant_type": "client_credentials",
            "scope": self._spec.scope,
            "client_assertion_type": _ASSERTION_TYPE,
            "client_assertion": sign_jwt(claims, key, self._spec.algorithm, self._spec.key_id),
        }
        started = self._clock.monotonic()
        status, payload = await self._call(session, "POST", token_url, form)
        if status != 200:
            raise CredentialError(f"token endpoint answered HTTP {status}{_oauth_error(payload)}")
        if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
            raise CredentialError("token endpoint answered without an access_token")
        token_type = payload.get("token_type", "bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise CredentialError("token endpoint answered with a token that is not a bearer")
        lifetime = payload.get("expires_in", 300)
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            raise CredentialError("token endpoint answered with an invalid expires_in")
        margin = min(_REFRESH_MARGIN, lifetime / 2)
        return _Token(payload["access_token"], started + lifetime - margin)

    async def _discover(self, session: aiohttp.ClientSession) -> str:
        if self._token_url is not None:
            return self._token_url
        url = f"{self._base_url}/.well-known/smart-configuration"
        status, payload = await self._call(session, "GET", url, None)
        endpoint = payload.get("token_endpoint") if isinstance(payload, dict) else None
        if status != 200 or not isinstance(endpoint, str) or not endpoint.startswith("http"):
            raise CredentialError(f"no token_endpoint in {url} (HTTP {status})")
        self._token_url = endpoint
        return endpoint

    async def _call(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        form: dict[str, str] | None,
    ) -> tuple[int, object]:
        """(status, parsed JSON body or None); transport failures raise CredentialError."""
        try:
            async with session.request(
                method,
                url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status = response.status
        except TimeoutError:
            total = self._timeout.total or 0.0
            raise CredentialError(f"token endpoint timed out after {total:g} s") from None
        except aiohttp.ClientError as exc:
            raise CredentialError(f"token endpoint unreachable: {type(exc).__name__}") from None
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, None


def _oauth_error(payload: object) -> str:
    if not isinstance(payload, dict):
        return ""
    said = " ".join(
        str(payload[name])
        for name in ("error", "error_description")
        if isinstance(payload.get(name), str)
    )
    return f": {said[:_REASON_CHARS]}" if said else ""

"""OpenID Connect bearer tokens: verify the issuer's JWTs and map its roles to ours.

A token is accepted only when all hold: it is a JWS signed with RS256 or
ES256 (never `none` or HMAC) by a key in the issuer's JWKS; `iss` equals the
configured issuer; `aud` is or contains the audience; `exp` is present and
not passed, and `nbf` (if any) is reached, both with `leeway` seconds of
skew; and the role claim maps to at least one thumpflow role (the highest
wins: admin > operator > viewer > sender). Anything else is a refusal
(`None`, answered 401), with the reason logged at INFO without the token.

Keys: the JWKS (from `jwks_url`, or the `jwks_uri` of the issuer's discovery
document) is fetched at the first token and cached. A token whose `kid` is
not in the cache triggers one refetch (key rotation), at most once every
`jwks_refresh_interval` seconds, so unknown kids cannot make the engine hammer
the IdP; fetches are single-flight. An IdP that cannot be reached refuses
tokens needing a fetch; cached keys keep working.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import aiohttp

from thumpflow.api import _jws
from thumpflow.config.model import OidcSpec
from thumpflow.core.access import Principal, Role
from thumpflow.core.clock import Clock

log = logging.getLogger("thumpflow.api.oidc")

_RANK = {Role.SENDER: 0, Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}
_FETCH_TIMEOUT = 10.0


class OidcVerifier:
    """A `BearerVerifier` for one issuer; see the module docstring."""

    def __init__(self, spec: OidcSpec, clock: Clock) -> None:
        self._spec = spec
        self._clock = clock
        self._refresh_interval = spec.jwks_refresh_interval
        self._keys: dict[str | None, tuple[str, _jws.PublicKey]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=spec.ca_file) if spec.ca_file else True
        )

    async def verify(self, credential: str) -> Principal | None:
        try:
            jws = _jws.parse(credential)
        except _jws.JwsError as err:
            log.info("oidc: token refused: %s", err)
            return None
        key = await self._key(jws.key_id, jws.algorithm)
        if key is None:
            log.info("oidc: token refused: no %s key with kid %r", jws.algorithm, jws.key_id)
            return None
        if not _jws.verify(jws, *key):
            log.info("oidc: token refused: bad signature")
            return None
        problem = self._claims_problem(jws.claims)
        if problem is not None:
            log.info("oidc: token refused: %s", problem)
            return None
        role = self._role(jws.claims)
        if role is None:
            log.info("oidc: token refused: no mapped role in %r", self._spec.role_claim)
            return None
        name = jws.claims.get(self._spec.name_claim) or jws.claims.get("sub")
        return Principal(name=str(name or "unnamed"), role=role, via="oidc")

    def _claims_problem(self, claims: dict[str, Any]) -> str | None:
        spec = self._spec
        if claims.get("iss") != spec.issuer:
            return "wrong issuer"
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if spec.audience not in audiences:
            return "wrong audience"
        now = self._clock.now()
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            return "no exp"
        if now > expires + spec.leeway:
            return "expired"
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and now < not_before - spec.leeway:
            return "not yet valid"
        return None

    def _role(self, claims: dict[str, Any]) -> Role | None:
        value: Any = claims
        for part in self._spec.role_claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values = value if isinstance(value, list) else [value]
        roles = [
            self._spec.role_map[v]
            for v in values
            if isinstance(v, str) and v in self._spec.role_map
        ]
        return max(roles, key=_RANK.__getitem__) if roles else None

    async def _key(self, kid: str | None, algorithm: str) -> tuple[str, _jws.PublicKey] | None:
        found = self._lookup(kid, algorithm)
        if found is not None:
            return found
        async with self._lock:
            found = self._lookup(kid, algorithm)
            if found is not None:
                return found
            now = self._clock.monotonic()
            if self._fetched_at is not None and now - self._fetched_at < self._refresh_interval:
                return None
            self._fetched_at = now
            try:
                self._keys = await self._fetch_keys()
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as err:
                log.warning("oidc: cannot fetch the issuer's keys: %s", type(err).__name__)
                return None
            return self._lookup(kid, algorithm)

    def _lookup(self, kid: str | None, algorithm: str) -> tuple[str, _jws.PublicKey] | None:
        if kid is not None:
            found = self._keys.get(kid)
            return found if found is not None and found[0] == algorithm else None
        matching = [key for key in self._keys.values() if key[0] == algorithm]
        return matching[0] if len(matching) == 1 else None

    async def _fetch_keys(self) -> dict[str | None, tuple[str, _jws.PublicKey]]:
        timeout = aiohttp.ClientTimeout(total=_FETCH_TIMEOUT)
        connector = aiohttp.TCPConnector(ssl=self._ssl)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            url = self._spec.jwks_url
            if url is None:
                discovery = self._spec.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await _get_json(session, discovery)
                if document.get("issuer") != self._spec.issuer:
                    raise ValueError("discovery document names another issuer")
                url = str(document["jwks_uri"])
            jwks = await _get_json(session, url)
        keys: dict[str | None, tuple[str, _jws.PublicKey]] = {}
        for jwk in jwks.get("keys", []):
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            try:
                algorithm, key = _jws.public_key(jwk)
            except _jws.JwsError as err:
                log.info("oidc: JWKS key %r skipped: %s", jwk.get("kid"), err)
                continue
            if jwk.get("alg", algorithm) == algorithm:
                keys[jwk.get("kid")] = (algorithm, key)
        log.info("oidc: loaded %d signing key(s) from the issuer", len(keys))
        return keys


async def _get_json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        if response.status != 200:
            raise ValueError(f"{url} answered {response.status}")
        document = await response.json(content_type=None)
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document

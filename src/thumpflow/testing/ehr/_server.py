"""The simulated EHR's HTTP server: FHIR R4 REST, a SMART token endpoint, admin endpoints.

Each `/fhir` request meets the injected faults first (delay, dropped
connection, 429 or 5xx with `Retry-After`), then authorisation, then Bulk
Data, `$events` or an interaction run by the `Executor`. Every write is
committed before its response is sent; a dropped connection after a write
(`drop_after_apply`) leaves it committed, so a client that retries finds
its write done. Every request is recorded by method, path and status only
(no query, no body). What the server says about itself is in
`_capability`, its HTTP plumbing in `_http`.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from dataclasses import asdict, dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from thumpflow.testing._listener import Listener, Served
from thumpflow.testing.ehr._auth import SmartAuthority, TokenError
from thumpflow.testing.ehr._bulk import BulkExports
from thumpflow.testing.ehr._capability import capability_statement, smart_configuration
from thumpflow.testing.ehr._faults import Faults
from thumpflow.testing.ehr._http import (
    FHIR_JSON,
    dropped,
    fhir_error,
    form_text,
    json_response,
    read_resource,
    unauthorized,
)
from thumpflow.testing.ehr._interactions import Authorize, Executor
from thumpflow.testing.ehr._outcome import FhirError
from thumpflow.testing.ehr._requests import Entry, Result
from thumpflow.testing.ehr._store import ResourceStore, Version, instant_datetime
from thumpflow.testing.ehr._subscriptions import Content, SubscriptionFeed

AuthMode = Literal["none", "smart", "bearer"]

_WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
_EVENTS = re.compile(r"^Subscription/(?P<id>[A-Za-z0-9\-.]{1,64})/\$events$")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request to `/fhir` or the token endpoint, without query or body (no patient data).

    `status` is what was answered; 0 when the connection was dropped without
    a response (before or after the write was applied).
    """

    method: str
    path: str
    status: int
    at: float = field(default_factory=time.time)


class SimulatedEhr(Served):
    """A FHIR R4 server for tests; `base_url` is valid after `start` and keeps its port.

    With `db`, resources and their history are kept in that SQLite file and
    read back on `start`, so a restarted simulator serves the same state.
    `auth` selects what FHIR endpoints require: nothing, a token from the
    SMART token endpoint (or a static token), or a static bearer token.
    Every write is committed before its response is sent; a dropped
    connection after a write (the `drop_after_apply` fault) leaves it
    committed. Use as `async with SimulatedEhr() as ehr:` or call `start`
    and `close`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db: Path | None = None,
        auth: AuthMode = "none",
        *,
        token_lifetime: float = 300.0,
        static_token: str | None = None,
        skip_identical_updates: bool = False,
        faults: Faults | None = None,
        bulk_in_progress_polls: int = 1,
        bulk_retry_after: float = 1.0,
    ) -> None:
        if auth not in ("none", "smart", "bearer"):
            raise ValueError(f"auth must be none, smart or bearer, not {auth!r}")
        self.host = host
        self._listening = Listener(host, port)
        self.auth: AuthMode = auth
        self.faults = faults if faults is not None else Faults()
        self.requests: list[RecordedRequest] = []
        self.authority = SmartAuthority(token_lifetime)
        self.bulk = BulkExports(bulk_in_progress_polls, bulk_retry_after)
        if static_token is not None:
            self.authority.add_static_token(static_token)
        self._store = ResourceStore(db)
        self._executor = Executor(
            self._store,
            lambda: self.base_url,
            self._rejects,
            skip_identical_updates=skip_identical_updates,
        )
        self._capability: dict[str, Any] | None = None
        self.subscriptions: dict[str, SubscriptionFeed] = {}

    def _rejects(self, type_: str, resource: dict[str, Any]) -> str | None:
        return self.faults.rejects(type_, resource)

    async def __aenter__(self) -> SimulatedEhr:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The FHIR base, `http://HOST:PORT/fhir`."""
        return f"{self.url}/fhir"

    @property
    def token_url(self) -> str:
        return f"{self.url}/auth/token"

    @property
    def admin_url(self) -> str:
        return f"{self.url}/_admin"

    def register_client(self, client_id: str, jwks: dict[str, Any]) -> None:
        """Register a SMART backend client by its public JWKS; raises ValueError on a bad one."""
        self.authority.register_client(client_id, jwks)

    def add_static_token(self, token: str) -> None:
        """Accept a static bearer token (in `bearer` and `smart` modes)."""
        self.authority.add_static_token(token)

    def set_faults(self, **changes: Any) -> None:
        """Change some `Faults` fields; TypeError on an unknown one, ValueError on a bad value."""
        self.faults = self.faults.changed(changes)

    @property
    def skip_identical_updates(self) -> bool:
        return self._executor.skip_identical_updates

    @skip_identical_updates.setter
    def skip_identical_updates(self, value: bool) -> None:
        self._executor.skip_identical_updates = value

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Write a resource (with `resourceType` and `id`) as a new version; the stored copy."""
        entry = Entry(
            method="PUT",
            url=f"{resource['resourceType']}/{resource['id']}",
            resource=copy.deepcopy(resource),
        )
        result = self._executor.execute(entry, _allow_all)
        assert result.version is not None and result.version.resource is not None
        return copy.deepcopy(result.version.resource)

    def current(self, reference: str) -> dict[str, Any] | None:
        """A copy of the current version of `Type/id`, or None."""
        type_, _, id_ = reference.partition("/")
        versions = self._store.versions(type_, id_)
        last = versions[-1].resource if versions else None
        return copy.deepcopy(last) if last is not None else None

    def subscribe(
        self,
        subscription_id: str,
        endpoint: str,
        *,
        topic: str = "http://example.org/SubscriptionTopic/encounter-start",
        token: str | None = None,
        content: Content = "id-only",
        version: Literal["R4", "R5"] = "R4",
    ) -> SubscriptionFeed:
        """A Subscription notifying `endpoint` by rest-hook (see `_subscriptions`)."""
        feed = SubscriptionFeed(
            base_url=lambda: self.base_url,
            write=self.put,
            read=self.current,
            subscription_id=subscription_id,
            topic=topic,
            endpoint=endpoint,
            token=token,
            content=content,
            version=version,
        )
        self.subscriptions[subscription_id] = feed
        return feed

    def resources(self, type_: str) -> list[dict[str, Any]]:
        """Copies of the current (not deleted) resources of one type, oldest write first."""
        versions = sorted(self._store.live(type_), key=lambda v: (v.last_updated_us, v.id))
        return [copy.deepcopy(v.resource) for v in versions if v.resource is not None]

    def history(self, type_: str, id_: str) -> list[Version]:
        """Every version of one resource, oldest first (resources copied)."""
        return [
            Version(v.type, v.id, v.version, v.last_updated_us, copy.deepcopy(v.resource))
            for v in self._store.versions(type_, id_)
        ]

    def counts(self) -> dict[str, int]:
        """Current (not deleted) resources per type."""
        return self._store.counts()

    def duplicates(self) -> dict[str, dict[str, list[str]]]:
        """Business identifiers on more than one current resource of the same type.

        `{type: {"system|value": [ids...]}}`; an identifier without a system
        is keyed `|value`, one without a value is ignored. Empty when there
        are no duplicates.
        """
        return self._store.duplicates()

    def state(self) -> dict[str, Any]:
        """What `GET /_admin/state` reports."""
        return {
            "resources": self._store.counts(),
            "versions": self._store.version_count(),
            "requests": len(self.requests),
            "bulk_exports": len(self.bulk.jobs),
            "auth": self.auth,
            "listening": self.is_listening,
            "faults": asdict(self.faults),
        }

    def reset(self) -> None:
        """Forget every resource, version and recorded request, and clear the faults."""
        self._store.clear()
        self.requests.clear()
        self.bulk.clear()
        self.faults = Faults()

    async def start(self) -> None:
        self._store.open()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_admin/state", self._admin_state)
        app.router.add_get("/_admin/duplicates", self._admin_duplicates)
        app.router.add_get("/_admin/requests", self._admin_requests)
        app.router.add_post("/_admin/faults", self._admin_faults)
        app.router.add_post("/_admin/reset", self._admin_reset)
        app.router.add_post("/auth/token", self._token)
        app.router.add_route("*", "/fhir{tail:.*}", self._fhir)
        await self._listening.start(app)

    async def close(self) -> None:
        await self._listening.close()
        self._store.close()

    async def _fhir(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        faults = self.faults

        def record(status: int) -> None:
            self.requests.append(RecordedRequest(request.method, request.path, status))

        if faults.delay_seconds > 0:
            await asyncio.sleep(faults.delay_seconds)
            faults = self.faults
        if faults.drop > 0:
            faults.drop -= 1
            record(0)
            dropped(request)
        if faults.throttle > 0:
            faults.throttle -= 1
            response = fhir_error(FhirError(429, "throttled", "too many requests"))
            response.headers["Retry-After"] = f"{faults.retry_after:g}"
        elif faults.server_errors > 0:
            faults.server_errors -= 1
            status = faults.server_error_status
            response = fhir_error(FhirError(status, "transient", "injected server error"))
            if status == 503:
                response.headers["Retry-After"] = f"{faults.retry_after:g}"
        else:
            response = await self._serve_fhir(request, tail)
        faults = self.faults
        if (
            request.method in _WRITE_METHODS
            and 200 <= response.status < 300
            and faults.drop_after_apply > 0
        ):
            faults.drop_after_apply -= 1
            record(0)
            dropped(request)
        record(response.status)
        return response

    async def _serve_fhir(self, request: web.Request, tail: str) -> web.Response:
        path = tail.strip("/")
        if path in ("metadata", ".well-known/smart-configuration"):
            if request.method != "GET":
                return fhir_error(FhirError(405, "not-supported", "only GET is allowed here"))
            body = self._metadata() if path == "metadata" else smart_configuration(self.token_url)
            return json_response(body, content_type=FHIR_JSON if path == "metadata" else None)
        authorize = self._authorizer(request)
        if isinstance(authorize, web.Response):
            return authorize
        bulk = self.bulk.respond(
            request,
            path,
            store=self._store,
            authorize=authorize,
            rejects=self._rejects,
            base_url=self.base_url,
            requires_token=self.auth != "none",
        )
        if bulk is not None:
            return bulk
        events = _EVENTS.match(path)
        if events is not None:
            return self._events(request, events["id"])
        try:
            resource = await read_resource(request)
            minimal = "return=minimal" in request.headers.get("Prefer", "")
            if not path:
                if request.method != "POST":
                    raise FhirError(405, "not-supported", "only POST (a Bundle) is allowed here")
                return self._bundle(resource, authorize, minimal=minimal)
            url = path
            method = request.method
            if path.endswith("/_search") and method == "POST":
                url, method = path.removesuffix("/_search"), "GET"
                query = "&".join(p for p in (request.query_string, await form_text(request)) if p)
            else:
                query = request.query_string
            if query:
                url = f"{url}?{query}"
            entry = Entry(
                method=method,
                url=url,
                resource=resource,
                if_none_exist=request.headers.get("If-None-Exist"),
                if_match=request.headers.get("If-Match"),
            )
            result = self._executor.execute(entry, authorize)
        except FhirError as err:
            return fhir_error(err)
        return self._result_response(result, minimal=minimal and method != "GET")

    def _events(self, request: web.Request, subscription_id: str) -> web.Response:
        """`Subscription/<id>/$events`: a notification Bundle of the numbered events asked for."""
        feed = self.subscriptions.get(subscription_id)
        if feed is None:
            return fhir_error(FhirError(404, "not-found", "no such Subscription"))
        try:
            since = int(request.query.get("eventsSinceNumber", "1"))
            until = int(request.query.get("eventsUntilNumber", str(len(feed.events))))
        except ValueError:
            return fhir_error(FhirError(400, "invalid", "event numbers must be integers"))
        return json_response(feed.events_bundle(since, until), content_type=FHIR_JSON)

    def _bundle(
        self, bundle: dict[str, Any] | None, authorize: Authorize, *, minimal: bool
    ) -> web.Response:
        if bundle is None or bundle.get("resourceType") != "Bundle":
            raise FhirError(400, "structure", "POST to the base takes a Bundle")
        kind = bundle.get("type")
        if kind == "transaction":
            body = self._executor.transaction(bundle, authorize, minimal=minimal)
        elif kind == "batch":
            body = self._executor.batch(bundle, authorize, minimal=minimal)
        else:
            raise FhirError(400, "not-supported", "Bundle.type must be transaction or batch")
        return json_response(body, content_type=FHIR_JSON)

    def _result_response(self, result: Result, *, minimal: bool) -> web.Response:
        headers: dict[str, str] = {}
        version = result.version
        if version is not None:
            headers["ETag"] = version.etag
            headers["Last-Modified"] = format_datetime(
                instant_datetime(version.last_updated_us).replace(microsecond=0), usegmt=True
            )
            if result.status == 201:
                headers["Location"] = f"{self.base_url}/{version.location}"
        if result.body is None or result.status == 204 or minimal:
            return web.Response(status=result.status, headers=headers)
        return json_response(
            result.body, status=result.status, headers=headers, content_type=FHIR_JSON
        )

    def _authorizer(self, request: web.Request) -> Authorize | web.Response:
        """A 401 response, or a function raising FhirError 403 on an entry the token may not run."""
        if self.auth == "none":
            return _allow_all
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        realm = 'Bearer realm="thumpflow-ehr"'
        if scheme.lower() != "bearer" or not token.strip():
            return unauthorized(realm, "a bearer token is required")
        grant = self.authority.grant(token.strip())
        if grant is None or (self.auth == "bearer" and grant.expires_at != float("inf")):
            challenge = f'{realm}, error="invalid_token"'
            return unauthorized(challenge, "the bearer token is invalid or expired")

        def authorize(type_: str, permission: str) -> None:
            if not grant.allows(type_, permission):
                raise FhirError(
                    403, "forbidden", f"the token's scopes do not allow this on {type_}"
                )

        return authorize

    async def _token(self, request: web.Request) -> web.Response:
        faults = self.faults
        if faults.token_delay_seconds > 0:
            await asyncio.sleep(faults.token_delay_seconds)
            faults = self.faults
        status = 200
        try:
            if faults.token_failures > 0:
                faults.token_failures -= 1
                server_side = faults.token_failure_status >= 500
                error = "temporarily_unavailable" if server_side else "invalid_request"
                raise TokenError(faults.token_failure_status, error, "injected token failure")
            if request.content_type != "application/x-www-form-urlencoded":
                raise TokenError(400, "invalid_request", "the body must be form-encoded")
            form = await request.post()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            body = self.authority.issue(fields, self.token_url)
        except TokenError as err:
            status = err.status
            body = {"error": err.error, "error_description": err.description}
        self.requests.append(RecordedRequest(request.method, request.path, status))
        return web.json_response(
            body, status=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    def _metadata(self) -> dict[str, Any]:
        if self._capability is None:
            self._capability = capability_statement(
                self.base_url, self.token_url, smart=self.auth == "smart"
            )
        return self._capability

    def _fault_state(self) -> dict[str, Any]:
        return asdict(self.faults)

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _admin_duplicates(self, request: web.Request) -> web.Response:
        found = self.duplicates()
        count = sum(len(keys) for keys in found.values())
        return web.json_response({"count": count, "duplicates": found})

    async def _admin_requests(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.requests])

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.state())


def _allow_all(type_: str, permission: str) -> None:
    """Every entry is allowed when authentication is off."""

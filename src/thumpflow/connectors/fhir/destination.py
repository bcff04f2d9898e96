"""The FHIR destination: writes each delivery's Bundle to a FHIR R4 server, exactly once in effect.

The delivery body is a FHIR Bundle (JSON) produced by the channel's mapping.
`mode` decides how it is written: POSTed to the base URL as a `transaction`
(all or nothing) or a `batch` (entries apply independently), or split into
one request per entry (`conditional_update`). The destination never retries,
reorders or dead-letters; it classifies each delivery's result (table in
`thumpflow.connectors.fhir._classify`) and the flow core decides.

Exactly once in effect, and its limits
--------------------------------------
Transport is at least once: a response lost after the server applied a write
(dropped connection, timeout, crash of the engine) makes the flow core send
the same delivery again. A resend creates no second resource because every
write is idempotent (`thumpflow.connectors.fhir._bundle`): updates are
`PUT Type/id` with the mapping's deterministic ids or conditional
`PUT Type?identifier=...`, creates carry `If-None-Exist`, and a create that
could not be made idempotent is refused as a permanent failure before
anything is sent. A transaction applies wholly or not at all, so a resend of
a partly failed delivery never meets half of it. Every request also carries
`X-Request-Id` and `Idempotency-Key` (the delivery key; `<key>/<entry>` for
per-entry writes) for servers that deduplicate by key.

Limits: a resend may create a new *version* of an unchanged resource (not a
new resource) on servers that do not skip no-op updates. In `batch` and
`conditional_update` modes a delivery is not atomic: entries written before a
failure stay written, and the resend writes them again (idempotently). A
conditional write is only as unique as the server's search: two deliveries
racing to create the same identifier on a server without a uniqueness
guarantee can both create; the flow core's one-delivery-per-ordering-key rule
keeps one patient's writes sequential.

Version-aware updates (`version_aware: true`)
---------------------------------------------
The destination keeps no state across restarts, so "the version the engine
last saw" is the version it reads immediately before writing: for each PUT
entry without its own `ifMatch`, it reads the target (`GET Type/id`, or the
search of a conditional URL), and if the resource exists it writes
`PUT Type/<id>` with `If-Match: W/"<versionId>"` (in a Bundle, `request.ifMatch`).
A change by someone else between the read and the write is then a 412, which
`on_version_conflict` turns into a retry (the next attempt reads the new
version) or a dead letter. A resource that does not exist yet is created as
without `version_aware`; a server that reports no version gets no `If-Match`.

Authentication: see `thumpflow.connectors.auth`. A 401 makes the
destination renew its credential once and repeat the request within the same
send (the request was not applied); a second 401 is transient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

from thumpflow.connectors.auth import CredentialError
from thumpflow.connectors.fhir._bundle import (
    BundleError,
    Entry,
    JsonObject,
    parse,
    plan,
    rewrite_references,
    write_order,
)
from thumpflow.connectors.fhir._classify import Answer, classify, clip, combine, entry_answer
from thumpflow.connectors.fhir._client import FhirClient, Reply, StopError
from thumpflow.connectors.fhir.spec import FhirDestinationSpec
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import Permanent, SendResult, Sent, Transient


class FhirDestination:
    """Writes deliveries' Bundles to `spec.base_url`; see the module docstring for guarantees."""

    def __init__(
        self, destination_id: str, spec: FhirDestinationSpec, clock: Clock | None = None
    ) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self.max_batch = spec.max_batch
        self._client = FhirClient.for_server(
            destination_id, spec, pool=max(2 * spec.max_batch, 8), clock=clock or SystemClock()
        )
        self._base_path = self._client.base_path
        self._request = self._client.request

    async def start(self) -> None:
        """Open the connection pool and read credentials.

        Raises OSError/ssl.SSLError for unreadable TLS or key files and
        ValueError for unusable credentials (wrong key type, unset variable).
        """
        await self._client.start()

    async def close(self) -> None:
        await self._client.close()

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        if len(batch) == 1:
            return [await self._deliver(batch[0])]
        return list(await asyncio.gather(*(self._deliver(delivery) for delivery in batch)))

    async def _deliver(self, delivery: Delivery) -> SendResult:
        try:
            bundle = parse(delivery.body)
            entries = plan(bundle, self.spec.mode)
            if self.spec.mode == "conditional_update":
                return await self._write_each(delivery, write_order(entries))
            return await self._post_bundle(delivery, bundle, entries)
        except BundleError as exc:
            return Permanent(clip(f"cannot write safely: {exc}"))
        except CredentialError as exc:
            return Transient(clip(f"no credential: {exc}"))
        except StopError as stop:
            return stop.result

    async def _post_bundle(
        self, delivery: Delivery, bundle: JsonObject, entries: list[Entry]
    ) -> SendResult:
        mode = self.spec.mode
        if self.spec.version_aware:
            for entry in entries:
                await self._pin(entry)
        bundle["type"] = mode
        reply = await self._request(
            "POST",
            "",
            body=bundle,
            headers={"Idempotency-Key": delivery.key, "Prefer": "return=minimal"},
            request_id=delivery.key,
        )
        answer = reply.answer
        if not 200 <= answer.status < 300:
            if_match = any(entry.if_match for entry in entries)
            return self._classify(answer, "POST", if_match=if_match)
        payload = answer.payload
        found = payload.get("entry") if isinstance(payload, dict) else None
        if not isinstance(found, list) or len(found) != len(entries):
            if mode == "transaction":
                return Sent(f"HTTP {answer.status} transaction: {len(entries)} entries")
            return Transient(f"HTTP {answer.status} with an unreadable batch-response Bundle")
        results = [
            (
                entry.label,
                self._classify(
                    entry_answer(item.get("response") if isinstance(item, dict) else None),
                    entry.method,
                    if_match=entry.if_match is not None,
                ),
            )
            for entry, item in zip(entries, found, strict=True)
        ]
        return combine(f"HTTP {answer.status} {mode}", results)

    async def _write_each(self, delivery: Delivery, entries: list[Entry]) -> SendResult:
        resolved: dict[str, str] = {}
        for done, entry in enumerate(entries):
            try:
                literal = await self._write_one(delivery, entry, resolved)
            except StopError as stop:
                before = f" ({done} of {len(entries)} entries written before it)"
                return _labelled(stop.result, entry.label, before)
            if literal is not None:
                for alias in entry.aliases:
                    resolved[alias] = literal
        return Sent(f"{len(entries)} entries written individually")

    async def _write_one(
        self, delivery: Delivery, entry: Entry, resolved: dict[str, str]
    ) -> str | None:
        """Write one entry; its `Type/id` as the server answered it, if known."""
        resource = entry.resource
        if resource is not None:
            rewrite_references(resource, resolved)
        if self.spec.version_aware:
            await self._pin(entry)
        headers = {"Idempotency-Key": f"{delivery.key}/{entry.index}"}
        if entry.if_none_exist is not None:
            headers["If-None-Exist"] = entry.if_none_exist
        if entry.if_match is not None:
            headers["If-Match"] = entry.if_match
        reply = await self._request(
            entry.method, entry.url, body=resource, headers=headers, request_id=delivery.key
        )
        result = self._classify(reply.answer, entry.method, if_match=entry.if_match is not None)
        if not isinstance(result, Sent):
            raise StopError(result)
        return self._literal(entry, reply)

    async def _pin(self, entry: Entry) -> None:
        """Version-aware: aim a PUT at the current resource with its version as `If-Match`."""
        if entry.method != "PUT" or entry.if_match is not None:
            return
        reply = await self._request("GET", entry.url, body=None, headers={}, request_id=None)
        answer = reply.answer
        if answer.status in (404, 410):
            return
        if answer.status != 200 or not isinstance(answer.payload, dict):
            result = self._classify(answer, "GET", if_match=False)
            if isinstance(result, Sent):
                result = Transient(f"HTTP {answer.status} without a resource")
            raise StopError(_labelled(result, "reading the current version"))
        found: JsonObject = answer.payload
        if entry.conditional:
            matches = [
                item["resource"]
                for item in found.get("entry") or ()
                if isinstance(item, dict)
                and isinstance(item.get("resource"), dict)
                and item["resource"].get("resourceType") == entry.resource_type
            ]
            if not matches:
                return
            if len(matches) > 1:
                raise StopError(Permanent(f"{len(matches)} resources match the conditional URL"))
            found = matches[0]
        resource_id = found.get("id")
        if not isinstance(resource_id, str):
            raise StopError(Transient("reading the current version: the server gave no id"))
        meta = found.get("meta")
        version = meta.get("versionId") if isinstance(meta, dict) else None
        entry.pin(resource_id, version if isinstance(version, str) else None)

    def _classify(self, answer: Answer, method: str, *, if_match: bool) -> SendResult:
        return classify(
            answer, method=method, if_match=if_match, on_conflict=self.spec.on_version_conflict
        )

    def _literal(self, entry: Entry, reply: Reply) -> str | None:
        """`Type/id` of what a write created or updated: Location, else the body, else its URL."""
        if reply.location:
            path = urlsplit(reply.location).path
            if path.startswith(self._base_path + "/"):
                path = path[len(self._base_path) + 1 :]
            parts = path.strip("/").split("/")
            if len(parts) >= 2 and parts[0] == entry.resource_type:
                return f"{parts[0]}/{parts[1]}"
        payload = reply.answer.payload
        if isinstance(payload, dict) and payload.get("resourceType") == entry.resource_type:
            resource_id = payload.get("id")
            if isinstance(resource_id, str):
                return f"{entry.resource_type}/{resource_id}"
        if not entry.conditional and entry.url.count("/") == 1:
            return entry.url
        return None


def _labelled(result: Transient | Permanent, label: str, after: str = "") -> Transient | Permanent:
    reason = clip(f"{label}: {result.reason}{after}")
    if isinstance(result, Transient):
        return Transient(reason, result.retry_after)
    return Permanent(reason)

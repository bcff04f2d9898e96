"""The FHIR batch writer: chunks of a run's records as FHIR transaction Bundles.

Each item's data is one FHIR resource (from an NDJSON or FHIR Bulk source, or
built by the job's transform). A chunk becomes one `transaction` Bundle of
idempotent `PUT` entries, so the server applies all of it or none of it, and
writing the same chunk again (a retry after a lost response, a re-run of the
window, a run re-done after a crash) leaves the state one write gives, with
no second resource:

- a resource with an `id` is written `PUT Type/id`;
- else, with an identifier that has a system and a value, as a conditional
  update `PUT Type?identifier=system|value` (the first such identifier);
- else with the id `thumpflow.fhir.deterministic_id(Type, business key)`, set
  on the resource and written `PUT Type/<id>`.

`check` refuses, before anything is sent, an item that is not a resource of
an R4 type; two items of one chunk aimed at the same target are written
last-wins (the earlier one is left out of the Bundle). The answer is
classified with the flow destination's table (`_classify`): 2xx `Sent`;
401 (after one credential renewal), 408, 409, 429, 5xx and transport
failures `Transient`, with `Retry-After`; any other status `Permanent`, its
reason the OperationOutcome's issues (`severity code: diagnostics`). Every
request carries `Idempotency-Key` and `X-Request-Id`: a digest of the chunk's
business keys and content hashes, equal for an equal chunk.

Authentication and TLS are the flow destination's (`FhirClient`): none,
bearer, SMART Backend Services, mutual TLS. This writer never retries or
splits; `thumpflow.thump.chunked` does, and turns refusals into row rejects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from thumpflow.connectors.auth import CredentialError
from thumpflow.connectors.fhir._bundle import BundleError, JsonObject, identifier_search, plan
from thumpflow.connectors.fhir._classify import classify, clip
from thumpflow.connectors.fhir._client import FhirClient, StopError
from thumpflow.connectors.fhir.spec import FhirBatchDestinationSpec
from thumpflow.core.batch import BatchItem
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.outcome import Permanent, SendResult, Sent, Transient
from thumpflow.core.records import canonical_json
from thumpflow.fhir import deterministic_id


def _target(item: BatchItem) -> tuple[str, JsonObject]:
    """The `PUT` URL of an item's resource and the resource to send (a copy, id set if derived).

    Raises BundleError when the item is not a resource of an R4 type.
    """
    resource: Any = json.loads(canonical_json(item.data))
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise BundleError("the record is not a FHIR resource (it has no resourceType)")
    resource_id = resource.get("id")
    if isinstance(resource_id, str) and resource_id:
        return f"{resource_type}/{resource_id}", resource
    search = identifier_search(resource)
    if search is not None:
        return f"{resource_type}?{search}", resource
    try:
        resource["id"] = deterministic_id(resource_type, item.business_key)
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    return f"{resource_type}/{resource['id']}", resource


class FhirBundleWriter:
    """Writes chunks of resources as transaction Bundles; see the module docstring."""

    def __init__(
        self, destination_id: str, spec: FhirBatchDestinationSpec, clock: Clock | None = None
    ) -> None:
        self.destination_id = destination_id
        self.spec = spec
        self._client = FhirClient.for_server(
            destination_id, spec, pool=4, clock=clock or SystemClock()
        )

    async def start(self) -> None:
        """Open the connection pool and read credentials (see `FhirClient.start`)."""
        await self._client.start()

    async def close(self) -> None:
        await self._client.close()

    def check(self, item: BatchItem) -> str | None:
        """Why this item can never be written, or None."""
        try:
            _, resource = _target(item)
        except BundleError as exc:
            return str(exc)
        if resource["resourceType"] == "Bundle":
            return "the record is a Bundle; write its entries as records"
        return None

    async def write_chunk(self, items: Sequence[BatchItem]) -> SendResult:
        """One transaction Bundle of the items' resources; the server's answer classified."""
        entries: dict[str, JsonObject] = {}
        digest = hashlib.sha256()
        for item in items:
            url, resource = _target(item)
            entries.pop(url, None)
            entries[url] = {"resource": resource, "request": {"method": "PUT", "url": url}}
            digest.update(f"{item.business_key}\x00{item.content_hash}\x00".encode())
        bundle: JsonObject = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": list(entries.values()),
        }
        key = f"chunk-{digest.hexdigest()[:32]}"
        try:
            plan(bundle, "transaction")
            reply = await self._client.request(
                "POST",
                "",
                body=bundle,
                headers={"Idempotency-Key": key, "Prefer": "return=minimal"},
                request_id=key,
            )
        except BundleError as exc:
            return Permanent(clip(f"cannot write safely: {exc}"))
        except CredentialError as exc:
            return Transient(clip(f"no credential: {exc}"))
        except StopError as stop:
            return stop.result
        answer = reply.answer
        if 200 <= answer.status < 300:
            return Sent(f"HTTP {answer.status} transaction: {len(entries)} entries")
        return classify(answer, method="POST", if_match=False, on_conflict="retry")

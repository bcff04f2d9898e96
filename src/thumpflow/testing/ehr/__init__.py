"""A simulated EHR: a real FHIR R4 HTTP server with an embedded store, SMART auth and faults.

`SimulatedEhr` serves FHIR R4 (JSON) at `http://HOST:PORT/fhir`: metadata,
create, read, vread, update (create-on-update), delete, conditional create
(`If-None-Exist`), conditional update and delete (`Type?identifier=...`),
`If-Match` version checks (412 on mismatch), instance `_history`, search by
`_id`, `identifier` and `_lastUpdated` with `_count` paging, and
transaction and batch Bundles (`urn:uuid:` and conditional references
resolved). Every write makes a new version with a new `meta.versionId` and
a strictly later `meta.lastUpdated`; all versions are kept. Errors are
OperationOutcomes with their proper status.

Bulk Data export (`$export` at system, Patient and Group level, with
`_type` and `_since`; async status with `bulk_in_progress_polls` polls in
progress, `Retry-After` and `X-Progress`; NDJSON files; `DELETE` of a job) is
described in `thumpflow.testing.ehr._bulk`; `ehr.bulk` holds the jobs.

`auth="smart"` protects the FHIR endpoints with SMART Backend Services
(`POST /auth/token`, JWT client assertions signed RS384 or ES384 by a
registered client's JWKS); `auth="bearer"` with static bearer tokens.

Tests read the state directly (`resources`, `history`, `duplicates`,
`requests`) or over HTTP (`GET /_admin/state`, `GET /_admin/duplicates`,
`GET /_admin/requests`), and inject faults (`set_faults`, `go_down`, or
`POST /_admin/faults` with `Faults` fields and `down_seconds`);
`POST /_admin/reset` forgets everything.

`subscribe(...)` makes a topic-based Subscription that notifies a rest-hook
endpoint (R4 Backport or R5 notification Bundles; handshake, heartbeat,
events, lost and repeated notifications) and serves
`Subscription/<id>/$events`; see `thumpflow.testing.ehr._subscriptions`. As a process:

    python -m thumpflow.testing.ehr --port 8090 --db ehr.sqlite --auth smart \\
        --client-jwks engine=engine.jwks.json
"""

from thumpflow.testing.ehr._faults import REJECT_DIAGNOSTICS, Faults
from thumpflow.testing.ehr._server import AuthMode, RecordedRequest, SimulatedEhr
from thumpflow.testing.ehr._store import Version
from thumpflow.testing.ehr._subscriptions import SubscriptionFeed

__all__ = [
    "REJECT_DIAGNOSTICS",
    "AuthMode",
    "Faults",
    "RecordedRequest",
    "SimulatedEhr",
    "SubscriptionFeed",
    "Version",
]

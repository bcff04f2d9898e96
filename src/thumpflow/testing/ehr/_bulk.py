"""Bulk Data export (FHIR Bulk Data Access 2.0) over the simulated EHR's store.

Kick-off: `GET [base]/$export`, `[base]/Patient/$export` or
`[base]/Group/<id>/$export` with `Prefer: respond-async`, optional `_type`
(comma-separated resource types), `_since` (a FHIR instant with a zone) and
`_outputFormat` (NDJSON only); any other parameter is 400. The export is a
snapshot taken at kick-off: the current (not deleted) resources whose
`meta.lastUpdated` is strictly after `_since`, each type in its own NDJSON
file, ordered by (lastUpdated, id). Its `transactionTime` is the store's
latest `lastUpdated` at kick-off (so `_since=<transactionTime>` next time
exports exactly what was written after the snapshot). The answer is 202
with `Content-Location: [base]/_bulk/status/<job>`.

Levels: `system` exports every resource; `Patient` exports the Patient
resources and every resource whose `subject` or `patient` references a
Patient; `Group` does the same for the Patient members of the Group
(`member[].entity`), 404 when the Group does not exist. Deleted resources
are not reported.

Status: the first `in_progress_polls` GETs of the status URL answer 202 with
`Retry-After: <retry_after>` and `X-Progress: in progress (n of m)`; then 200
with the manifest (`transactionTime`, `request`, `requiresAccessToken` (true
when auth is on), `output[]` with `type`, `url`, `count`, `error[]`).
`DELETE` of the status URL answers 202 and forgets the job and its files;
the status and file URLs of a forgotten or unknown job are 404.

Files (`[base]/_bulk/files/<job>/<name>`) are `application/fhir+ndjson`.
Everything is under `/fhir`, so it needs the same authorisation as the
REST API (kick-off: read access to each type exported) and the faults apply
to it like to any FHIR request. The validation fault (`reject_types`,
`reject_marker`) also applies: a resource it selects is left out of the
outputs and reported in the error file as an OperationOutcome naming its
`Type/id`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from thumpflow.testing.ehr._http import fhir_error, json_response
from thumpflow.testing.ehr._interactions import Authorize, Reject
from thumpflow.testing.ehr._outcome import FhirError, operation_outcome
from thumpflow.testing.ehr._store import ResourceStore, Version, instant_text
from thumpflow.testing.ehr._types import RESOURCE_TYPES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
_EXPORT = re.compile(r"^(?:(?P<patient>Patient)/|Group/(?P<group>[A-Za-z0-9\-.]{1,64})/)?\$export$")
_ACCEPTS = frozenset({"", "*/*", "application/json", "application/fhir+json"})
_PATIENT_REFERENCES = ("subject", "patient")


@dataclass(slots=True)
class BulkJob:
    """One export: its snapshot files, manifest parts and remaining in-progress polls."""

    id: str
    request: str
    transaction_time: str
    polls_left: int
    polls_total: int
    outputs: list[tuple[str, str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class StatusAnswer:
    """What a status poll answers: 202 with headers, or 200 with the manifest."""

    status: int
    headers: dict[str, str]
    manifest: dict[str, Any] | None = None


class BulkExports:
    """The export jobs of one simulated EHR; `in_progress_polls`/`retry_after` may be changed."""

    def __init__(self, in_progress_polls: int = 1, retry_after: float = 1.0) -> None:
        if in_progress_polls < 0 or retry_after < 0:
            raise ValueError("in_progress_polls and retry_after must not be negative")
        self.in_progress_polls = in_progress_polls
        self.retry_after = retry_after
        self.jobs: dict[str, BulkJob] = {}

    def clear(self) -> None:
        self.jobs.clear()

    def respond(
        self,
        request: web.Request,
        path: str,
        *,
        store: ResourceStore,
        authorize: Authorize,
        rejects: Reject,
        base_url: str,
        requires_token: bool,
    ) -> web.Response | None:
        """The answer to a Bulk Data request (kick-off, status, file) for `path` (relative to
        the FHIR base); None for any other path. Errors are OperationOutcomes."""
        export = _EXPORT.match(path)
        try:
            if export is not None:
                if request.method != "GET":
                    raise FhirError(405, "not-supported", "only GET starts an export here")
                level = "group" if export["group"] else "patient" if export["patient"] else "system"
                job = self.kick_off(
                    store,
                    level=level,
                    group_id=export["group"],
                    query=list(request.query.items()),
                    headers=dict(request.headers),
                    authorize=authorize,
                    rejects=rejects,
                    base_url=base_url,
                    request_url=str(request.url),
                )
                status_url = f"{base_url}/_bulk/status/{job.id}"
                return web.Response(status=202, headers={"Content-Location": status_url})
            if path.startswith("_bulk/status/"):
                job_id = path.removeprefix("_bulk/status/")
                if request.method == "DELETE":
                    self.delete(job_id)
                    return web.Response(status=202)
                if request.method != "GET":
                    raise FhirError(405, "not-supported", "GET or DELETE an export's status")
                answer = self.status(job_id, base_url, requires_token)
                if answer.manifest is None:
                    return web.Response(status=answer.status, headers=answer.headers)
                return json_response(answer.manifest, headers=answer.headers)
            if path.startswith("_bulk/files/"):
                if request.method != "GET":
                    raise FhirError(405, "not-supported", "only GET reads an export file")
                job_id, _, name = path.removeprefix("_bulk/files/").partition("/")
                return web.Response(
                    body=self.file(job_id, name),
                    content_type="application/fhir+ndjson",
                    charset="utf-8",
                )
        except FhirError as err:
            return fhir_error(err)
        return None

    def kick_off(
        self,
        store: ResourceStore,
        *,
        level: str,
        group_id: str | None,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        authorize: Authorize,
        rejects: Reject,
        base_url: str,
        request_url: str,
    ) -> BulkJob:
        """Take the snapshot and create the job; FhirError 400/403/404 when it cannot start."""
        if "respond-async" not in headers.get("Prefer", ""):
            raise FhirError(400, "invalid", "a bulk export needs the header Prefer: respond-async")
        accept = headers.get("Accept", "").split(";")[0].strip()
        if accept not in _ACCEPTS:
            raise FhirError(400, "not-supported", "Accept must be application/fhir+json")
        types, since = _parameters(query)
        compartment = level != "system"
        members = self._patients(store, level, group_id) if compartment else None
        selected: dict[str, list[Version]] = {}
        for version in store.live():
            if types is not None and version.type not in types:
                continue
            if since is not None and version.last_updated_us <= since:
                continue
            if compartment and not _in_compartment(version, members):
                continue
            selected.setdefault(version.type, []).append(version)
        for type_ in sorted(types if types is not None else selected):
            authorize(type_, "r")
        last = store.last_instant()
        job = BulkJob(
            id=uuid.uuid4().hex,
            request=request_url,
            transaction_time=instant_text(last) if last else _now_text(),
            polls_left=self.in_progress_polls,
            polls_total=self.in_progress_polls,
        )
        problems: list[dict[str, Any]] = []
        for type_, versions in sorted(selected.items()):
            lines = []
            for version in sorted(versions, key=lambda v: (v.last_updated_us, v.id)):
                resource = version.resource
                assert resource is not None
                diagnostics = rejects(type_, resource)
                if diagnostics is not None:
                    problems.append(
                        operation_outcome("processing", f"{type_}/{version.id}: {diagnostics}")
                    )
                    continue
                lines.append(json.dumps(resource, ensure_ascii=False, separators=(",", ":")))
            if lines:
                name = f"{type_}.ndjson"
                job.files[name] = _ndjson(lines)
                job.outputs.append((type_, name, len(lines)))
        if problems:
            job.files["errors.ndjson"] = _ndjson(
                json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p in problems
            )
            job.errors.append("errors.ndjson")
        self.jobs[job.id] = job
        return job

    def status(self, job_id: str, base_url: str, requires_token: bool) -> StatusAnswer:
        """Answer one status poll (counting down the in-progress polls); FhirError 404."""
        job = self._job(job_id)
        if job.polls_left > 0:
            job.polls_left -= 1
            done = job.polls_total - job.polls_left
            return StatusAnswer(
                202,
                {
                    "Retry-After": f"{self.retry_after:g}",
                    "X-Progress": f"in progress ({done} of {job.polls_total})",
                },
            )
        files = f"{base_url}/_bulk/files/{job.id}"
        manifest = {
            "transactionTime": job.transaction_time,
            "request": job.request,
            "requiresAccessToken": requires_token,
            "output": [
                {"type": type_, "url": f"{files}/{name}", "count": count}
                for type_, name, count in job.outputs
            ],
            "error": [
                {"type": "OperationOutcome", "url": f"{files}/{name}"} for name in job.errors
            ],
        }
        return StatusAnswer(200, {}, manifest)

    def delete(self, job_id: str) -> None:
        """Forget a job and its files; FhirError 404 when there is no such job."""
        self._job(job_id)
        del self.jobs[job_id]

    def file(self, job_id: str, name: str) -> bytes:
        """The bytes of one output or error file; FhirError 404."""
        data = self._job(job_id).files.get(name)
        if data is None:
            raise FhirError(404, "not-found", f"no file {name!r} in this export")
        return data

    def _job(self, job_id: str) -> BulkJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise FhirError(404, "not-found", "no such export (finished and deleted, or unknown)")
        return job

    @staticmethod
    def _patients(store: ResourceStore, level: str, group_id: str | None) -> set[str] | None:
        """Patient ids of the export's compartment; None means every patient."""
        if level == "patient":
            return None
        latest = store.latest("Group", group_id or "")
        if latest is None or latest.resource is None:
            raise FhirError(404, "not-found", f"Group/{group_id} is not known")
        members = set()
        for member in latest.resource.get("member") or []:
            reference = (member.get("entity") or {}).get("reference", "")
            if isinstance(reference, str) and "Patient/" in reference:
                members.add(reference.rsplit("Patient/", 1)[1].split("/")[0])
        return members


def _parameters(query: list[tuple[str, str]]) -> tuple[set[str] | None, int | None]:
    types: set[str] | None = None
    since: int | None = None
    for name, value in query:
        if name == "_type":
            types = types or set()
            for type_ in filter(None, (t.strip() for t in value.split(","))):
                if type_ not in RESOURCE_TYPES:
                    raise FhirError(400, "not-supported", f"_type: unknown type {type_!r}")
                types.add(type_)
        elif name == "_since":
            since = _instant_micros(value)
        elif name == "_outputFormat":
            if value not in _FORMATS:
                raise FhirError(400, "not-supported", "_outputFormat: only NDJSON is supported")
        else:
            raise FhirError(400, "not-supported", f"parameter {name!r} is not supported here")
    return types, since


def _instant_micros(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, "invalid", f"_since {text!r} is not a FHIR instant") from None
    if moment.tzinfo is None:
        raise FhirError(400, "invalid", "_since needs a time zone")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _in_compartment(version: Version, members: set[str] | None) -> bool:
    resource = version.resource
    assert resource is not None
    if version.type == "Patient":
        return members is None or version.id in members
    for name in _PATIENT_REFERENCES:
        value = resource.get(name)
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            patient_id = reference.removeprefix("Patient/").split("/")[0]
            return members is None or patient_id in members
    return False


def _ndjson(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _now_text() -> str:
    return instant_text(time.time_ns() // 1000)

"""The FHIR Bulk Data export source: kick-off, status polling, NDJSON download, cleanup.

One `read(window)` runs one export (FHIR Bulk Data Access 2.0):

1. Kick-off: `GET [base]/$export` (`Patient/$export`, `Group/<id>/$export`)
   with `Accept: application/fhir+json`, `Prefer: respond-async`, `_type`
   from `types` and, with `since_from_watermark`, `_since` = the window's
   start (the `transactionTime` of the last successful export). The server
   answers 202 with the status URL in `Content-Location`. Any other 4xx (or
   a 2xx without a status URL) raises `BatchSourceError` with the
   OperationOutcome's text.
2. Status: the status URL is polled; a 202 means "in progress" and is waited
   out for `max(poll_interval, Retry-After)` seconds; its `X-Progress` text
   is kept in `progress` and logged when it changes. A 200 carries the
   manifest (`transactionTime`, `output[]`, `error[]`,
   `requiresAccessToken`). Any other 4xx/5xx (except those below) raises
   `BatchSourceError` with the OperationOutcome's text.
3. Download: every file the manifest names is streamed to a spool directory
   (`spool_dir`) while its SHA-256 and line count are computed. An output
   whose line count differs from the manifest's `count` raises
   `BatchSourceError` (a partial file is never imported).
4. Records: only when every file is on disk are the outputs read back, in
   manifest order, one `SourceRecord` per NDJSON line (`data` = the
   resource, `origin` = `Patient.ndjson line N`, `raw` = the line); the
   n-th file of a type is named `Type.n.ndjson` (n >= 2). The spool is
   removed when the read ends, however it ends.

So `read` raises `BatchSourceError` *before yielding anything* whenever the
export cannot be imported whole; after the first record nothing is fetched
any more.

Transient failures (429, 502, 503, 504, a 5xx whose OperationOutcome issue
code is `transient`, a refused or dropped connection, a request passing
`request_timeout`) are tried again after `max(poll_interval, Retry-After)`,
at kick-off, while polling and while downloading (a file is then downloaded
again from its start). Everything must be done within `timeout` seconds of
the kick-off; past it `BatchSourceError` names what was being waited for.
Credentials come from `thumpflow.connectors.auth` (`auth`: `none`, `bearer`
or `smart_backend`). The `Authorization` header is asked for before every
request, so a SMART access token is fetched again before it expires, however
long the export takes. A 401 renews the credential (a token file is read
again, a new SMART token is fetched) and repeats the request once; a second
401 is a `BatchSourceError`. Credentials that cannot be had (a variable not
set, an unreadable token or key file, a token endpoint that is down or
refuses) raise `BatchSourceError` with the reason, never with a secret. The
token is sent to file URLs only when the manifest says `requiresAccessToken`
(or does not say).

The export's error files (OperationOutcome NDJSON) are neither records nor
row rejects: they describe resources the *server* could not export. They are
downloaded first, every OperationOutcome is counted (`error_count`) and its
issues kept (`export_errors()`, the first 1,000), and a count over
`max_errors` raises `BatchSourceError` before any record is read. An output
line that is not a JSON object is skipped, counted and kept there as well.
The runner puts both in the run's report.

`next_watermark()` is the manifest's `transactionTime`; `manifests()` has one
`Manifest` per output file (count from the manifest when given, else the
lines; SHA-256 of the bytes downloaded). `commit()` and `fail()` send
`DELETE` to the status URL so the server may drop the export; a failure
there is logged and ignored. Both are idempotent.

Nothing from a resource is logged; log lines name files, counts and statuses.
The manifest's checks are in `fhir_bulk.manifest`, the reading of answers
(transient or final, `Retry-After`, OperationOutcome texts) in
`fhir_bulk.outcome`, and the spool's files in `fhir_bulk.spool`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from thumpflow.connectors.auth import CredentialError, authorizer
from thumpflow.connectors.fhir_bulk.manifest import (
    ExportFile,
    export_files,
    instant_seconds,
    manifest_json,
)
from thumpflow.connectors.fhir_bulk.outcome import (
    is_transient,
    outcome_issues,
    outcome_text,
    retry_after,
)
from thumpflow.connectors.fhir_bulk.spec import FhirBulkSourceSpec
from thumpflow.connectors.fhir_bulk.spool import Spooled, next_lines, spool_response
from thumpflow.connectors.tls import client_context
from thumpflow.core.batch import Manifest, SourceRecord, Window
from thumpflow.core.clock import Clock, SystemClock
from thumpflow.core.errors import BatchSourceError

_log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
_KEPT_ISSUES = 1000


@dataclass(slots=True, frozen=True)
class ExportIssue:
    """One problem of the export: an OperationOutcome issue from an error file, or an output
    line that is not a JSON object. `origin` names the file and line."""

    origin: str
    severity: str
    code: str
    diagnostics: str


@dataclass(slots=True, frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class FhirBulkSource:
    """A `BatchSource` over a FHIR Bulk Data export; see the module docstring for guarantees."""

    def __init__(
        self, source_id: str, spec: FhirBulkSourceSpec, clock: Clock | None = None
    ) -> None:
        self.source_id = source_id
        self.spec = spec
        self.progress: str | None = None
        self.error_count = 0
        self._clock = clock or SystemClock()
        self._base = spec.base_url.rstrip("/")
        self._auth = authorizer(spec.auth, self._base, spec.request_timeout, self._clock)
        self._timeout = aiohttp.ClientTimeout(total=spec.request_timeout)
        self._status_url: str | None = None
        self._watermark: str | None = None
        self._manifests: list[Manifest] = []
        self._issues: list[ExportIssue] = []

    def read(self, window: Window) -> AsyncIterator[list[SourceRecord]]:
        """Run one export of `window`; yield its resources in chunks (see the module docstring)."""
        return self._read(window)

    def manifests(self) -> list[Manifest]:
        """One manifest per output file of the last export (after `read` has downloaded it)."""
        return list(self._manifests)

    def next_watermark(self) -> str | None:
        """The last export's `transactionTime`; None before a manifest was received."""
        return self._watermark

    def export_errors(self) -> list[ExportIssue]:
        """Issues of the last export's error files and unreadable lines (the first 1,000)."""
        return list(self._issues)

    async def commit(self) -> None:
        """Ask the server to drop the export (`DELETE` status URL); failures are logged."""
        await self._delete()

    async def fail(self, reason: str) -> None:
        """The run failed: drop the server's export as `commit` does (a re-run exports anew)."""
        _log.warning("fhir_bulk %s: run failed, dropping the export: %s", self.source_id, reason)
        await self._delete()

    def _session(self) -> aiohttp.ClientSession:
        ssl_context = client_context(self.spec.tls) if self.spec.tls is not None else None
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else True),
            headers=self.spec.headers,
            timeout=self._timeout,
        )

    async def _read(self, window: Window) -> AsyncIterator[list[SourceRecord]]:
        self._status_url = None
        self._watermark = None
        self._manifests = []
        self._issues = []
        self.progress = None
        self.error_count = 0
        since = window.start if self.spec.since_from_watermark else None
        deadline = self._clock.monotonic() + self.spec.timeout
        spool = Path(
            await asyncio.to_thread(tempfile.mkdtemp, "", "thumpflow-bulk-", self.spec.spool_dir)
        )
        try:
            async with self._session() as session:
                await self._start_auth(session)
                self._status_url = await self._kick_off(session, since, deadline)
                manifest = await self._poll(session, self._status_url, deadline)
                outputs = await self._fetch(session, manifest, spool, since, deadline)
            for spooled in outputs:
                async for chunk in self._records(spooled):
                    yield chunk
        finally:
            await asyncio.to_thread(shutil.rmtree, spool, True)

    def _export_url(self) -> str:
        if self.spec.level == "patient":
            return f"{self._base}/Patient/$export"
        if self.spec.level == "group":
            return f"{self._base}/Group/{self.spec.group_id}/$export"
        return f"{self._base}/$export"

    async def _kick_off(
        self, session: aiohttp.ClientSession, since: str | None, deadline: float
    ) -> str:
        params: dict[str, str] = {}
        if self.spec.types:
            params["_type"] = ",".join(self.spec.types)
        if since:
            params["_since"] = since
        url = self._export_url()
        headers = {"Accept": FHIR_JSON, "Prefer": "respond-async"}
        answer = await self._call(
            session, "GET", url, headers, deadline=deadline, what="export kick-off", params=params
        )
        location = answer.headers.get("Content-Location")
        if answer.status == 202 and location:
            _log.info("fhir_bulk %s: export started (%s level)", self.source_id, self.spec.level)
            return urljoin(url, location)
        if answer.status == 202:
            raise BatchSourceError("export kick-off answered 202 without a Content-Location")
        raise BatchSourceError(
            f"export kick-off refused: HTTP {answer.status}{outcome_text(answer.body)}"
        )

    async def _poll(
        self, session: aiohttp.ClientSession, status_url: str, deadline: float
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        while True:
            answer = await self._call(
                session, "GET", status_url, headers, deadline=deadline, what="export status"
            )
            if answer.status == 202:
                progress = answer.headers.get("X-Progress")
                if progress and progress != self.progress:
                    self.progress = progress[:100]
                    _log.info("fhir_bulk %s: export %s", self.source_id, self.progress)
                await self._wait(answer.headers, deadline, "the export to complete")
                continue
            if answer.status == 200:
                return manifest_json(answer.body)
            raise BatchSourceError(
                f"export failed: HTTP {answer.status}{outcome_text(answer.body)}"
            )

    async def _fetch(
        self,
        session: aiohttp.ClientSession,
        manifest: dict[str, Any],
        spool: Path,
        since: str | None,
        deadline: float,
    ) -> list[Spooled]:
        transaction_time = manifest["transactionTime"]
        created_at = instant_seconds(transaction_time)
        with_token = manifest.get("requiresAccessToken", True) is not False
        outputs = export_files(manifest, "output", "{type}")
        errors = export_files(manifest, "error", "error")
        for index, file in enumerate(errors):
            spooled = await self._download(session, file, spool / f"e{index}", with_token, deadline)
            await self._read_errors(spooled)
        _log.info(
            "fhir_bulk %s: %d output file(s), %d OperationOutcome(s) in error files",
            self.source_id,
            len(outputs),
            self.error_count,
        )
        if self.spec.max_errors is not None and self.error_count > self.spec.max_errors:
            raise BatchSourceError(
                f"the export reported {self.error_count} error(s), more than max_errors "
                f"{self.spec.max_errors}"
            )
        spooled_outputs = []
        for index, file in enumerate(outputs):
            spooled = await self._download(session, file, spool / f"o{index}", with_token, deadline)
            if file.count is not None and file.count != spooled.lines:
                raise BatchSourceError(
                    f"{file.name}: the manifest counts {file.count} resources, the file "
                    f"downloaded has {spooled.lines} lines"
                )
            spooled_outputs.append(spooled)
        window = Window(since, transaction_time)
        self._manifests = [
            Manifest(
                name=s.file.name,
                record_count=s.file.count if s.file.count is not None else s.lines,
                sha256=s.sha256,
                created_at=created_at,
                source=self.source_id,
                window=window,
            )
            for s in spooled_outputs
        ]
        self._watermark = transaction_time
        return spooled_outputs

    async def _download(
        self,
        session: aiohttp.ClientSession,
        file: ExportFile,
        path: Path,
        with_token: bool,
        deadline: float,
    ) -> Spooled:
        what = f"the download of {file.name}"
        renewed = False
        while True:
            credential = await self._credential() if with_token else None
            headers = {"Accept": FHIR_NDJSON, **_authorization(credential)}
            try:
                async with session.get(file.url, headers=headers, allow_redirects=True) as response:
                    if response.status == 200:
                        return await spool_response(response, file, path)
                    status, answer_headers = response.status, dict(response.headers)
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                await self._wait({}, deadline, what, type(exc).__name__)
                continue
            if status == 401 and with_token and not renewed:
                renewed = True
                if await self._renew(credential):
                    continue
            if is_transient(status, body):
                await self._wait(answer_headers, deadline, what, f"HTTP {status}")
                continue
            raise BatchSourceError(
                f"{file.name}: download refused: HTTP {status}{outcome_text(body)}"
            )

    async def _read_errors(self, spooled: Spooled) -> None:
        fh = await asyncio.to_thread(spooled.path.open, "rb")
        try:
            number = 0
            while lines := await asyncio.to_thread(next_lines, fh):
                for line in lines:
                    number += 1
                    if not line.strip():
                        continue
                    self.error_count += 1
                    origin = f"{spooled.file.name} line {number}"
                    for issue in outcome_issues(line):
                        self._keep(ExportIssue(origin, *issue))
        finally:
            await asyncio.to_thread(fh.close)

    async def _records(self, spooled: Spooled) -> AsyncIterator[list[SourceRecord]]:
        fh = await asyncio.to_thread(spooled.path.open, "rb")
        try:
            number = 0
            while lines := await asyncio.to_thread(next_lines, fh):
                chunk: list[SourceRecord] = []
                for line in lines:
                    number += 1
                    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                    if not text.strip():
                        continue
                    origin = f"{spooled.file.name} line {number}"
                    try:
                        data = json.loads(text)
                    except ValueError:
                        data = None
                    if not isinstance(data, dict):
                        self.error_count += 1
                        self._keep(ExportIssue(origin, "error", "structure", "not a JSON object"))
                        continue
                    chunk.append(SourceRecord(data=data, origin=origin, raw=text))
                if chunk:
                    yield chunk
        finally:
            await asyncio.to_thread(fh.close)

    def _keep(self, issue: ExportIssue) -> None:
        if len(self._issues) < _KEPT_ISSUES:
            self._issues.append(issue)

    async def _call(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        deadline: float,
        what: str,
        params: dict[str, str] | None = None,
    ) -> _Answer:
        """One request, repeated after transient failures and once after a 401."""
        renewed = False
        while True:
            credential = await self._credential()
            try:
                async with session.request(
                    method,
                    url,
                    params=params,
                    headers={**headers, **_authorization(credential)},
                    allow_redirects=False,
                ) as response:
                    answer = _Answer(response.status, dict(response.headers), await response.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                await self._wait({}, deadline, what, type(exc).__name__)
                continue
            if answer.status == 401 and not renewed:
                renewed = True
                if await self._renew(credential):
                    continue
            if is_transient(answer.status, answer.body):
                await self._wait(answer.headers, deadline, what, f"HTTP {answer.status}")
                continue
            return answer

    async def _start_auth(self, session: aiohttp.ClientSession) -> None:
        """Read the credentials (token, key) for requests on `session`."""
        try:
            await self._auth.start(session)
        except (OSError, ValueError) as exc:
            raise BatchSourceError(f"unusable credentials: {exc}") from None

    async def _credential(self) -> str | None:
        """The `Authorization` value for the next request (a SMART token is refreshed)."""
        try:
            return await self._auth.authorization()
        except CredentialError as exc:
            raise BatchSourceError(f"no credential: {exc}") from None

    async def _renew(self, rejected: str | None) -> bool:
        """After a 401 to `rejected`: True when a different credential is now at hand."""
        try:
            return await self._auth.renew(rejected)
        except CredentialError as exc:
            raise BatchSourceError(f"no credential after a 401: {exc}") from None

    async def _wait(
        self, headers: Mapping[str, str], deadline: float, what: str, last: str = ""
    ) -> None:
        delay = max(self.spec.poll_interval, retry_after(headers, self._clock.now()))
        if self._clock.monotonic() + delay > deadline:
            detail = f" (last: {last})" if last else ""
            raise BatchSourceError(
                f"gave up waiting for {what}: timeout of {self.spec.timeout:g} s{detail}"
            )
        await self._clock.sleep(delay)

    async def _delete(self) -> None:
        url, self._status_url = self._status_url, None
        if url is None:
            return
        try:
            async with self._session() as session:
                await self._start_auth(session)
                headers = _authorization(await self._credential())
                async with session.delete(url, headers=headers) as response:
                    await response.read()
                    if response.status >= 300:
                        _log.warning(
                            "fhir_bulk %s: DELETE of the export answered HTTP %d (ignored)",
                            self.source_id,
                            response.status,
                        )
        except (aiohttp.ClientError, TimeoutError) as exc:
            _log.warning(
                "fhir_bulk %s: DELETE of the export failed (ignored): %s",
                self.source_id,
                type(exc).__name__,
            )
        except BatchSourceError as exc:
            _log.warning(
                "fhir_bulk %s: DELETE of the export not sent (ignored): %s", self.source_id, exc
            )


def _authorization(credential: str | None) -> dict[str, str]:
    return {} if credential is None else {"Authorization": credential}

"""Classifying FHIR server answers into `Sent`, `Transient` and `Permanent`. Pure, no I/O.

One table decides for a whole response and for each entry of a
batch/transaction-response Bundle (whose `response.status` is a status line):

| answer | result |
|---|---|
| 2xx | `Sent` |
| 404 or 410 to a DELETE | `Sent` (already gone) |
| 412 to a request with `If-Match`, or 409 | `on_version_conflict`: `Transient`/`Permanent` |
| 401 (after the one credential renewal), 408, 429, 5xx | `Transient`, with `Retry-After` |
| any other status (400, 403, 404, 412 without `If-Match`, 422, 3xx, ...) | `Permanent` |

Reasons carry the status and the OperationOutcome's issues as
`severity code: diagnostics` (or `details.text`), at most `_REASON_CHARS`
characters: only what the server said, never the request body.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from thumpflow.core.outcome import Permanent, SendResult, Sent, Transient

ConflictRule = Literal["retry", "dead_letter"]

_REASON_CHARS = 300
_TRANSIENT_STATUS = frozenset({401, 408, 429})


@dataclass(slots=True, frozen=True)
class Answer:
    """What the server answered one request (or one Bundle entry)."""

    status: int
    payload: object = None
    excerpt: str = ""
    retry_after: float | None = None


def classify(
    answer: Answer, *, method: str, if_match: bool, on_conflict: ConflictRule
) -> SendResult:
    """The result for one answer, following the table in the module docstring."""
    status = answer.status
    if 200 <= status < 300:
        return Sent(f"HTTP {status}")
    reason = f"HTTP {status}"
    said = outcome_text(answer.payload) or answer.excerpt
    if said:
        reason = f"{reason}: {said}"
    if method == "DELETE" and status in (404, 410):
        return Sent(f"HTTP {status}: already deleted")
    if status == 409 or (status == 412 and if_match):
        conflict = f"version conflict, {reason}"
        if on_conflict == "retry":
            return Transient(conflict, retry_after=answer.retry_after)
        return Permanent(conflict)
    if status in _TRANSIENT_STATUS or status >= 500:
        return Transient(reason, retry_after=answer.retry_after)
    return Permanent(reason)


def combine(label: str, results: Sequence[tuple[str, SendResult]]) -> SendResult:
    """One result for a batch of entry results (each with its entry label).

    A single permanent entry makes the whole delivery `Permanent` (the flow
    core cannot retry part of a delivery, and resending the rest would meet
    the same refusal); otherwise a transient entry makes it `Transient` (the
    longest `Retry-After` of those entries); otherwise it is `Sent`.
    """
    total = len(results)
    permanent = [f"{name}: {r.reason}" for name, r in results if isinstance(r, Permanent)]
    transient = [(name, r) for name, r in results if isinstance(r, Transient)]
    applied = sum(isinstance(r, Sent) for _, r in results)
    if permanent:
        head = f"{label}: {len(permanent)} of {total} entries refused ({applied} applied): "
        return Permanent(clip(head + "; ".join(permanent)))
    if transient:
        waits = [r.retry_after for _, r in transient if r.retry_after is not None]
        head = f"{label}: {len(transient)} of {total} entries failed ({applied} applied): "
        text = "; ".join(f"{name}: {r.reason}" for name, r in transient)
        return Transient(clip(head + text), retry_after=max(waits) if waits else None)
    return Sent(f"{label}: {total} entries applied")


def entry_answer(response: object) -> Answer:
    """The `Answer` in a response Bundle entry's `response` element."""
    if not isinstance(response, dict):
        return Answer(0, excerpt="entry has no response")
    line = response.get("status")
    status = 0
    if isinstance(line, str) and line[:3].isdigit():
        status = int(line[:3])
    return Answer(status, payload=response.get("outcome"), excerpt=str(line or "no status"))


def outcome_text(payload: object) -> str:
    """`severity code: diagnostics` of each issue of an OperationOutcome, clipped; else ""."""
    if not isinstance(payload, dict) or payload.get("resourceType") != "OperationOutcome":
        return ""
    found = []
    for issue in payload.get("issue") or ():
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        said = issue.get("diagnostics") or (
            details.get("text") if isinstance(details, dict) else None
        )
        kind = " ".join(
            str(issue[name]) for name in ("severity", "code") if isinstance(issue.get(name), str)
        )
        if said or kind:
            found.append(f"{kind}: {said}" if said else kind)
    return clip("; ".join(found))


def body_excerpt(body: bytes) -> tuple[object, str]:
    """(parsed JSON or None, a one-line excerpt of the body when it is not JSON)."""
    if not body:
        return None, ""
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text), ""
    except ValueError:
        return None, clip(" ".join(text.split()))


def clip(text: str) -> str:
    """`text` cut to `_REASON_CHARS` characters."""
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS] + "…"

"""How the FHIR Bulk source reads a server's answers: OperationOutcome issues, which
failures are transient, and how long `Retry-After` asks to wait.

Transient: 429, 502, 503, 504, or a 5xx whose OperationOutcome has an issue
with code `transient`; anything else is final. Issue texts are cut to 300
characters; a body that is not an OperationOutcome has no issues (never an
error). A `Retry-After` that is neither seconds nor an HTTP date means no
wait of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

_TRANSIENT = frozenset({429, 502, 503, 504})
_TEXT_CHARS = 300


def is_transient(status: int, body: bytes) -> bool:
    """Whether an answer with `status` and `body` is worth trying again."""
    if status in _TRANSIENT:
        return True
    if status < 500:
        return False
    return any(issue[1] == "transient" for issue in outcome_issues(body))


def outcome_issues(raw: bytes) -> list[tuple[str, str, str]]:
    """(severity, code, diagnostics) of each issue of an OperationOutcome; [] if it is none."""
    try:
        outcome = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    found = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        text = issue.get("diagnostics")
        if not isinstance(text, str):
            details = issue.get("details")
            text = details.get("text") if isinstance(details, dict) else None
        found.append(
            (
                str(issue.get("severity", "error")),
                str(issue.get("code", "unknown")),
                (text if isinstance(text, str) else "")[:_TEXT_CHARS],
            )
        )
    return found


def outcome_text(body: bytes) -> str:
    """`: <diagnostics>` of an OperationOutcome body, for an error text; "" when it says nothing."""
    said = "; ".join(diagnostics for _, _, diagnostics in outcome_issues(body) if diagnostics)
    return f": {said[:_TEXT_CHARS]}" if said else ""


def retry_after(headers: Mapping[str, str], now: float) -> float:
    """The seconds `Retry-After` asks to wait (0 when absent or unreadable)."""
    value = headers.get("Retry-After")
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return 0.0

"""The classification table, OperationOutcome reasons, batch entries and Retry-After."""

from __future__ import annotations

import time
from email.utils import formatdate

from thumpflow.connectors._http import parse_retry_after
from thumpflow.connectors.fhir._classify import (
    Answer,
    ConflictRule,
    classify,
    combine,
    entry_answer,
    outcome_text,
)
from thumpflow.core.outcome import Permanent, SendResult, Sent, Transient


def outcome(code: str, diagnostics: str) -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


def result(
    status: int, method: str = "PUT", if_match: bool = False, rule: ConflictRule = "retry"
) -> SendResult:
    return classify(Answer(status), method=method, if_match=if_match, on_conflict=rule)


def test_status_table() -> None:
    for status in (200, 201, 204):
        assert isinstance(result(status), Sent)
    for status in (401, 408, 429, 500, 502, 503, 504):
        assert isinstance(result(status), Transient), status
    for status in (301, 400, 403, 404, 405, 410, 412, 422):
        assert isinstance(result(status), Permanent), status
    assert isinstance(result(404, method="DELETE"), Sent)
    assert isinstance(result(410, method="DELETE"), Sent)


def test_version_conflicts_follow_the_rule() -> None:
    assert isinstance(result(412, if_match=True, rule="retry"), Transient)
    assert isinstance(result(412, if_match=True, rule="dead_letter"), Permanent)
    assert isinstance(result(409, rule="retry"), Transient)
    assert isinstance(result(409, rule="dead_letter"), Permanent)
    conflict = result(412, if_match=True)
    assert isinstance(conflict, Transient) and conflict.reason.startswith("version conflict")


def test_reason_has_issue_code_and_diagnostics_clipped() -> None:
    answer = Answer(422, payload=outcome("invalid", "Observation.status: required"))
    refused = classify(answer, method="POST", if_match=False, on_conflict="retry")
    assert refused == Permanent("HTTP 422: error invalid: Observation.status: required")
    long = Answer(400, payload=outcome("invalid", "x" * 1000))
    clipped = classify(long, method="POST", if_match=False, on_conflict="retry")
    assert isinstance(clipped, Permanent) and len(clipped.reason) < 320
    plain = Answer(400, excerpt="bad request")
    assert classify(plain, method="POST", if_match=False, on_conflict="retry") == Permanent(
        "HTTP 400: bad request"
    )
    throttled = Answer(429, retry_after=7.0)
    assert classify(throttled, method="POST", if_match=False, on_conflict="retry") == Transient(
        "HTTP 429", 7.0
    )


def test_outcome_text_uses_details_text_and_ignores_other_resources() -> None:
    detailed = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "required", "details": {"text": "missing subject"}},
            {"severity": "warning", "code": "informational"},
            "junk",
        ],
    }
    assert outcome_text(detailed) == "error required: missing subject; warning informational"
    assert outcome_text({"resourceType": "Patient"}) == ""
    assert outcome_text(None) == ""


def test_batch_entries_combine() -> None:
    ok = ("entry 0", Sent("HTTP 201"))
    throttled = ("entry 1", Transient("HTTP 429", 5.0))
    failing = ("entry 2", Transient("HTTP 503", 9.0))
    refused = ("entry 3", Permanent("HTTP 422: error invalid: bad code"))
    assert combine("batch", [ok, ok]) == Sent("batch: 2 entries applied")
    transient = combine("batch", [ok, throttled, failing])
    assert isinstance(transient, Transient) and transient.retry_after == 9.0
    assert "2 of 3 entries failed (1 applied)" in transient.reason
    permanent = combine("batch", [ok, throttled, refused])
    assert isinstance(permanent, Permanent)
    assert "1 of 3 entries refused (1 applied): entry 3: HTTP 422: error invalid: bad code" in (
        permanent.reason
    )


def test_entry_answer_reads_status_lines() -> None:
    assert entry_answer({"status": "201 Created"}).status == 201
    assert entry_answer({"status": "422", "outcome": outcome("invalid", "d")}).status == 422
    assert entry_answer({"status": "weird"}).status == 0
    assert entry_answer(None).status == 0
    assert isinstance(
        classify(entry_answer(None), method="PUT", if_match=False, on_conflict="retry"), Permanent
    )


def test_retry_after_seconds_and_http_date() -> None:
    now = time.time()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after(None) is None
    in_a_minute = formatdate(now + 60, usegmt=True)
    assert 58 <= (parse_retry_after(in_a_minute, now=now) or 0) <= 61
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0

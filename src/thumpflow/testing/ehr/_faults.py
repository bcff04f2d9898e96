"""Faults the simulated EHR can inject, in the style of the HTTP receiver's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pydantic import TypeAdapter, ValidationError

REJECT_DIAGNOSTICS = "rejected by the simulated EHR: validation fault injected for this resource"


@dataclass(slots=True)
class Faults:
    """Faults to inject; counts are decremented as requests consume them.

    FHIR requests (everything under `/fhir`) check, in this order:
    `delay_seconds` (every request waits), `drop` (the connection is closed
    without a response, nothing applied), `throttle` (429 with
    `Retry-After: retry_after`), `server_errors` (answered
    `server_error_status`, 500/502/503; 503 also carries `Retry-After`),
    then authentication, then the interaction runs; each resource about to
    be written whose type is in `reject_types` (when not empty) and whose
    JSON contains `reject_marker` (when set) fails with 422 and an
    OperationOutcome (the whole transaction, or that batch entry). Last,
    `drop_after_apply` is consumed by a write (POST, PUT, DELETE) that
    succeeded: it is committed, and the connection is closed before the
    response, so the client never hears of it.

    The token endpoint has its own: `token_delay_seconds` (every token
    request waits) and `token_failures` (the next requests are answered
    `token_failure_status` with an OAuth error). Admin endpoints are never
    faulted.
    """

    delay_seconds: float = 0.0
    drop: int = 0
    throttle: int = 0
    retry_after: float = 1.0
    server_errors: int = 0
    server_error_status: int = 503
    drop_after_apply: int = 0
    reject_types: list[str] = field(default_factory=list)
    reject_marker: str | None = None
    token_delay_seconds: float = 0.0
    token_failures: int = 0
    token_failure_status: int = 503

    def rejects(self, type_: str, resource: dict[str, Any]) -> str | None:
        """The 422 diagnostics when this resource is chosen for a validation error, else None."""
        if not self.reject_types and not self.reject_marker:
            return None
        if self.reject_types and type_ not in self.reject_types:
            return None
        if self.reject_marker and self.reject_marker not in json.dumps(
            resource, ensure_ascii=False
        ):
            return None
        return REJECT_DIAGNOSTICS

    def changed(self, changes: dict[str, Any]) -> Faults:
        """A copy with some fields changed and validated.

        Raises TypeError on an unknown field and ValueError on a bad value.
        """
        known = {f.name for f in fields(Faults)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        try:
            updated = _ADAPTER.validate_python({**asdict(self), **changes})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(problems) from None
        for name in ("delay_seconds", "drop", "throttle", "retry_after", "server_errors"):
            if getattr(updated, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 500 <= updated.server_error_status <= 599:
            raise ValueError("server_error_status must be a 5xx status")
        if not 400 <= updated.token_failure_status <= 599:
            raise ValueError("token_failure_status must be a 4xx or 5xx status")
        return updated


_ADAPTER = TypeAdapter(Faults)

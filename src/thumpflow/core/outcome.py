"""What happened to a send, and what the flow core decided about it.

Destinations report a `SendResult` per delivery: `Sent`, `Transient` (worth
retrying: timeouts, 429, 503, MLLP AR/CR, dropped connections) or `Permanent`
(retrying cannot help: validation errors, MLLP AE/CE). They never decide about
retries, ordering or dead-lettering; the flow core does, and records its
decision in the store as an `Outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Sent:
    """The destination accepted the delivery (or had already: a recognised resend)."""

    detail: str = ""


@dataclass(slots=True, frozen=True)
class Transient:
    """A failure worth retrying; `retry_after` is the receiver's own wait, in seconds."""

    reason: str
    retry_after: float | None = None


@dataclass(slots=True, frozen=True)
class Permanent:
    """A failure no retry can mend; the delivery goes to the dead-letter list."""

    reason: str


SendResult = Sent | Transient | Permanent


@dataclass(slots=True, frozen=True)
class Delivered:
    delivery_id: int
    at: float
    attempts: int
    destination_id: str
    ordering_key: str
    sequence: int | None
    detail: str = ""


@dataclass(slots=True, frozen=True)
class Retrying:
    delivery_id: int
    at: float
    attempts: int
    next_attempt_at: float
    reason: str
    first_failed_at: float


@dataclass(slots=True, frozen=True)
class Died:
    delivery_id: int
    at: float
    attempts: int
    reason: str


@dataclass(slots=True, frozen=True)
class Superseded:
    delivery_id: int
    at: float
    reason: str


Outcome = Delivered | Retrying | Died | Superseded

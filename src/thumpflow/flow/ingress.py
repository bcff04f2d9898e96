"""Ingress of one channel: from received bytes to a durable admission and its ACK.

Guarantees:
- No loss: the positive ACK (AA, or CA in enhanced mode) is returned only
  after `Store.admit` has durably committed the event and its deliveries.
- Nothing silently dropped: every input gets an answer. Input that cannot be
  decoded, parsed, framed or transformed (whatever fails: a character set
  that cannot be looked up, bytes no codec reads, a structure error) is kept
  raw as a reject (`Store.reject`) and answered with a NAK whose ERR segment
  names what is wrong and where (AE/CR: do not resend as is). When the store
  itself fails the answer is AR/CE (resend later). A committed message always
  gets its ACK: when one cannot be built from the message's own header, a
  minimal valid ACK (`build_ack_for_raw`) is sent instead.
- Exactly once: a resend of the same MSH-10 from the same sender (MSH-3/4)
  with the same content (MSH-7, the send time, left out) is answered with the
  original ACK code and not processed again. The same MSH-10 with different
  content is a reused control id (senders' counters reset): admitted as a new
  event, flagged `control_id_reused` in the audit trail and the timeline,
  counted (`thumpflow_control_ids_reused_total`) and logged without content;
  never dropped.
- Backpressure: `is_open` is false while any destination of the channel is
  past its high-water mark; sources stop reading until `wait_open` returns.
- Views: `on_commit` (if given) is called after every committed admission,
  so the views (`thumpflow.views.live`) catch up at once.
- Pause: `pause` closes the ingress the same way until `resume` (an
  operator's act); an MLLP sender is then held by TCP flow control, its
  messages unread and unanswered, rather than refused (see README).
- Batches: a frame holding an HL7 batch (FHS/BHS … BTS/FTS) has its counts
  checked, then each message is handled as if it came alone, and the answer
  is a batch of their ACKs.
- HTTP: `submit_hl7` and `submit_fhir` admit one message or FHIR resource
  the same way (same store, same backpressure, same rejects) and answer
  with a `Submission` instead of an ACK. With a sender's idempotency key
  the event is keyed by it (scoped to the channel) instead of MSH-10, and a
  repeat whose body differs from the first is a `conflict`, not a duplicate.
  FHIR content is validated against R4 first; invalid content is kept as a
  reject with the issues' paths.
- Metrics (`IngressMetrics`): every admitted message counts as received,
  every recognised resend as a duplicate, every kept reject under its reason
  class, every store failure answered AR/CE as such; counted after the store
  answered, so a figure never runs ahead of what is durable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from thumpflow.core.clock import Clock
from thumpflow.core.errors import MessageError, StoreError
from thumpflow.core.event import Admission, Admitted, Delivery, Duplicate, Event, Reject
from thumpflow.core.ports import Store
from thumpflow.fhir import FhirIssue, validate
from thumpflow.flow.fhir_events import FhirRouting
from thumpflow.flow.metrics import IngressMetrics
from thumpflow.flow.outbox import Outbox
from thumpflow.flow.pipeline import ChannelPipeline, transform_failure
from thumpflow.flow.reading import read_batch, read_message
from thumpflow.hl7v2 import (
    Message,
    accept_ack_wanted,
    ack_mode,
    build_ack,
    build_ack_for_raw,
    content_digest,
)
from thumpflow.hl7v2.ack import hl7_timestamp

log = logging.getLogger("thumpflow.flow.ingress")

_POSITIVE = {"original": "AA", "enhanced": "CA"}
_REJECT = {"original": "AE", "enhanced": "CR"}
_RETRY_LATER = {"original": "AR", "enhanced": "CE"}


@dataclass(slots=True, frozen=True)
class Submission:
    """What became of one message or resource handed in by `submit_hl7` / `submit_fhir`.

    - `accepted`: durably committed now; `event_id` is the new event.
    - `duplicate`: its idempotency key was committed before; nothing new was
      written; `event_id` is the original event.
    - `conflict`: the sender's idempotency key was committed before for a
      different body (or content type); nothing was written.
    - `invalid`: kept as reject `reject_id`; `error` (HL7 v2) or `issues`
      (FHIR) say what is wrong and where.
    - `unavailable`: the store failed; nothing is kept; send again later.
    """

    status: Literal["accepted", "duplicate", "conflict", "invalid", "unavailable"]
    event_id: str | None = None
    reject_id: int | None = None
    error: MessageError | None = None
    issues: tuple[FhirIssue, ...] = ()


class ChannelIngress:
    """The `Ingress` of one channel; see the module docstring."""

    def __init__(
        self,
        pipeline: ChannelPipeline,
        store: Store,
        outboxes: Sequence[Outbox],
        clock: Clock,
        metrics: IngressMetrics,
        *,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.channel_id = pipeline.channel_id
        self._on_commit = on_commit
        self._metrics = metrics
        self._pipeline = pipeline
        self._store = store
        self._outboxes = {outbox.destination_id: outbox for outbox in outboxes}
        self._clock = clock
        self._fhir = FhirRouting(pipeline.channel)
        self._open = asyncio.Event()
        self._open.set()
        self.paused = False
        for outbox in outboxes:
            outbox.on_blocking_change(self._blocking_changed)
        self._blocking_changed()

    def pause(self) -> None:
        """Stop sources reading until `resume`."""
        self.paused = True
        self._blocking_changed()

    def resume(self) -> None:
        self.paused = False
        self._blocking_changed()

    def _blocking_changed(self) -> None:
        if self.paused or any(outbox.blocking for outbox in self._outboxes.values()):
            self._open.clear()
        else:
            self._open.set()

    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait_open(self) -> None:
        await self._open.wait()

    async def receive(
        self, raw: bytes, peer: str, framing_error: str | None = None
    ) -> bytes | None:
        now = self._clock.now()
        if framing_error is not None:
            error = MessageError(framing_error, code="100")
            return await self._reject(
                raw, peer, error, now, reason="framing", framing_error_only=True
            )
        if raw.lstrip(b"\r\n\t \x0b")[:3] in (b"FHS", b"BHS"):
            return await self._receive_batch(raw, peer, now)
        return await self._receive_message(raw, peer, now)

    async def _receive_batch(self, raw: bytes, peer: str, now: float) -> bytes:
        """A batch (FHS/BHS … BTS/FTS) in one frame: each message admitted on its own.

        The counts in BTS-1/FTS-1 are checked first; a batch whose counts do not
        match is kept whole as a reject and answered with one NAK. Otherwise each
        message is handled exactly as if it had come alone (idempotent, its own
        reject if it is bad), and the answer is a batch of their ACKs with the
        count in BTS-1.
        """
        try:
            batch = read_batch(raw)
        except MessageError as err:
            nak = await self._reject(raw, peer, err, now, reason="batch")
            return nak if nak is not None else build_ack_for_raw(raw, "AE", err)
        acks = []
        for message in batch.messages:
            ack = await self._receive_message(message.to_bytes(), peer, now)
            if ack is not None:
                acks.append(ack.rstrip(b"\r"))
        stamp = hl7_timestamp(now).encode()
        lines = [b"BHS|^~\\&|||||" + stamp, *acks, b"BTS|" + str(len(acks)).encode()]
        if batch.file_header is not None:
            lines = [b"FHS|^~\\&|||||" + stamp, *lines, b"FTS|1"]
        return b"\r".join(lines) + b"\r"

    async def _receive_message(self, raw: bytes, peer: str, now: float) -> bytes | None:
        try:
            message = read_message(raw)
        except MessageError as err:
            return await self._reject(raw, peer, err, now, reason="structure")
        mode = ack_mode(message)
        try:
            result = self._pipeline.run(message, raw, now)
        except Exception as err:
            failure = transform_failure(err)
            return await self._reject(raw, peer, failure, now, message, reason="transform")
        admission = Admission(
            received=result.received,
            derived=result.derived,
            deliveries=result.deliveries,
            ack_code=_POSITIVE[mode],
            audit_detail="filtered" if result.filtered else None,
            content_digest=content_digest(raw),
            conversion_warnings=result.conversion_warnings,
        )
        outcome = await self._commit(admission, peer)
        if outcome is None:
            code = _RETRY_LATER[mode]
            error = MessageError("could not store the message; send it again later", code="207")
            return _ack(message, raw, code, error) if accept_ack_wanted(message, False) else None
        code = outcome.ack_code if isinstance(outcome, Duplicate) else _POSITIVE[mode]
        if not accept_ack_wanted(message, code in _POSITIVE.values()):
            return None
        return _ack(message, raw, code)

    async def _commit(self, admission: Admission, peer: str) -> Admitted | Duplicate | None:
        """Admit, count, hand new deliveries to their outboxes; None when the store failed."""
        try:
            outcome = await self._store.admit(admission)
        except StoreError:
            self._metrics.store_failures.inc()
            log.exception(
                "channel %s: could not commit a received message",
                self.channel_id,
                extra={"channel": self.channel_id, "peer": peer},
            )
            return None
        if isinstance(outcome, Duplicate):
            self._metrics.duplicates.inc()
        else:
            self._metrics.received.inc()
            if self._on_commit is not None:
                self._on_commit()
            if outcome.reused_control_id_of is not None:
                self._metrics.control_ids_reused.inc()
                log.warning(
                    "channel %s: a message from %s reused the control id of event %s with "
                    "different content; admitted as new event %s",
                    self.channel_id,
                    peer,
                    outcome.reused_control_id_of,
                    outcome.event_id,
                    extra={"channel": self.channel_id, "peer": peer},
                )
            self._offer(outcome.deliveries)
        return outcome

    async def submit_hl7(
        self, raw: bytes, peer: str, key: str | None = None, via: str | None = None
    ) -> Submission:
        """Admit one HL7 v2 message (not a batch) handed in over HTTP; see `Submission`.

        Without `key` a resend is recognised by sender and MSH-10, as over
        MLLP. `via` is recorded in the `received` audit entry.
        """
        now = self._clock.now()
        try:
            message = read_message(raw)
        except MessageError as err:
            return await self._invalid(raw, peer, err, now, "structure")
        try:
            result = self._pipeline.run(message, raw, now)
        except Exception as err:
            failure = transform_failure(err)
            return await self._invalid(raw, peer, failure, now, "transform")
        received = result.received
        if key is not None:
            received = dataclasses.replace(received, idempotency_key=self._http_key(key))
        admission = Admission(
            received=received,
            derived=result.derived,
            deliveries=result.deliveries,
            ack_code=_POSITIVE[ack_mode(message)],
            audit_detail="filtered" if result.filtered else via,
            content_digest=content_digest(raw) if key is None else None,
            conversion_warnings=result.conversion_warnings,
        )
        return await self._submitted(admission, peer, conflicts=key is not None)

    async def submit_fhir(
        self,
        resource: dict[str, Any] | None,
        raw: bytes,
        peer: str,
        key: str | None = None,
        *,
        source_system: str,
        via: str | None = None,
        scoped_key: str | None = None,
    ) -> Submission:
        """Admit one FHIR R4 resource or Bundle (decoded `resource`, bytes `raw`).

        `resource` None means `raw` is not a JSON object; it is kept as a
        reject like any content failing R4 validation (warnings do not
        fail). `key` is a sender's idempotency key (a repeat with another
        body is a conflict); `scoped_key` an idempotency key the caller
        made itself (a subscription's event number: a repeat is a duplicate
        whatever its body). With neither, every submission is a new event.
        """
        now = self._clock.now()
        issues = (
            validate(resource)
            if resource is not None
            else [FhirIssue("(body)", "error", "structure", "not a JSON object with resourceType")]
        )
        errors = tuple(issue for issue in issues if issue.severity == "error")
        if resource is None or errors:
            reason = "invalid FHIR: " + "; ".join(str(issue) for issue in errors[:5])
            reject_id = await self.keep(raw, peer, reason, now, "fhir")
            if reject_id is None:
                return Submission("unavailable")
            return Submission("invalid", reject_id=reject_id, issues=errors)
        if key is not None:
            scoped_key = self._http_key(key)
        event = self._fhir.event(resource, raw, now, scoped_key, source_system)
        admission = Admission(
            received=event, deliveries=self._fhir.deliveries(event), audit_detail=via
        )
        return await self._submitted(admission, peer, conflicts=key is not None)

    async def submit_document(
        self,
        raw: bytes,
        peer: str,
        key: str | None,
        *,
        content_type: str,
        event_type: str,
        entity: tuple[str, str],
        occurred_at: float | None,
        via: str | None = None,
    ) -> Submission:
        """Admit one JSON document the caller has read and checked (the views' bed-status
        JSON): one event of `content_type`, ordered by `entity`, routed like FHIR content
        (to every destination without a `when`). `key` as for `submit_fhir`."""
        now = self._clock.now()
        scoped = self._http_key(key) if key is not None else None
        event = dataclasses.replace(
            self._fhir.event({}, raw, now, scoped, peer),
            content_type=content_type,
            event_type=event_type,
            entity_type=entity[0],
            entity_id=entity[1],
            occurred_at=now if occurred_at is None else occurred_at,
        )
        admission = Admission(
            received=event, deliveries=self._fhir.deliveries(event), audit_detail=via
        )
        return await self._submitted(admission, peer, conflicts=key is not None)

    def _http_key(self, key: str) -> str:
        return f"http:{self.channel_id}|{key}"

    async def _submitted(self, admission: Admission, peer: str, *, conflicts: bool) -> Submission:
        outcome = await self._commit(admission, peer)
        if outcome is None:
            return Submission("unavailable")
        if isinstance(outcome, Admitted):
            return Submission("accepted", event_id=outcome.event_id)
        if conflicts:
            original = await self._original(outcome.original_event_id)
            received = admission.received
            if original is not None and (
                original.body != received.body or original.content_type != received.content_type
            ):
                return Submission("conflict", event_id=outcome.original_event_id)
        return Submission("duplicate", event_id=outcome.original_event_id)

    async def _original(self, event_id: str) -> Event | None:
        """The first event of a key, to compare bodies; None when it cannot be read."""
        try:
            return await self._store.event(event_id)
        except StoreError:
            return None

    async def _invalid(
        self, raw: bytes, peer: str, error: MessageError, now: float, reason: str
    ) -> Submission:
        reject_id = await self.keep(raw, peer, error.describe(), now, reason)
        if reject_id is None:
            return Submission("unavailable")
        return Submission("invalid", reject_id=reject_id, error=error)

    def _offer(self, deliveries: Sequence[Delivery]) -> None:
        by_destination: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            by_destination.setdefault(delivery.destination_id, []).append(delivery)
        for destination_id, batch in by_destination.items():
            self._outboxes[destination_id].offer(batch)

    async def _reject(
        self,
        raw: bytes,
        peer: str,
        error: MessageError,
        now: float,
        message: Message | None = None,
        *,
        reason: str,
        framing_error_only: bool = False,
    ) -> bytes | None:
        """Keep the input as a reject and build the NAK, if one is owed.

        A complete frame is always answered; bytes that only failed framing
        (garbage between frames) are answered only when they look like a
        message, since nobody may be waiting for an answer to noise. `reason`
        is the class counted in `thumpflow_rejected_total` (one of
        `flow.metrics.REJECT_REASONS`).
        """
        reject_id = await self.keep(raw, peer, error.describe(), now, reason)
        if reject_id is None:
            if message is None:
                return build_ack_for_raw(raw, "AR", error) if _looks_like_message(raw) else None
            return _ack(message, raw, _RETRY_LATER[ack_mode(message)], error)
        if message is not None:
            if not accept_ack_wanted(message, False):
                return None
            return _ack(message, raw, _REJECT[ack_mode(message)], error)
        if framing_error_only and not _looks_like_message(raw):
            return None
        return build_ack_for_raw(raw, "AE", error)

    async def keep(
        self, raw: bytes, peer: str, reason_text: str, now: float, reason: str
    ) -> int | None:
        """Keep input as a reject, log and count it; its id, or None when the store failed."""
        try:
            reject_id = await self._store.reject(
                Reject(self.channel_id, now, peer, raw, reason_text)
            )
        except StoreError:
            self._metrics.store_failures.inc()
            log.exception(
                "channel %s: could not keep rejected input",
                self.channel_id,
                extra={"channel": self.channel_id, "peer": peer},
            )
            return None
        log.warning(
            "channel %s: rejected input from %s kept as reject %d: %s",
            self.channel_id,
            peer,
            reject_id,
            reason_text,
            extra={"channel": self.channel_id, "peer": peer},
        )
        self._metrics.rejected[reason].inc()
        return reject_id


def _ack(message: Message, raw: bytes, code: str, error: MessageError | None = None) -> bytes:
    """The ACK from the message's own header; a minimal one when that cannot be built."""
    try:
        return build_ack(message, code, error=error)
    except Exception as err:
        log.warning("could not build an ACK from the message's header (%s)", type(err).__name__)
        return build_ack_for_raw(raw, code, error)


def _looks_like_message(raw: bytes) -> bool:
    return raw.lstrip(b"\r\n\t \x0b").startswith(b"MSH")

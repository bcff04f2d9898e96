"""The channel pipeline: parse, filter, choose a lane, transform, route. Pure.

`ChannelPipeline.run` turns one parsed message into everything its admission
commits: the received event, the events a transform derived from it, and the
deliveries to each destination whose routing conditions hold. It does no I/O,
so it is tested without sockets or a store, and `thumpflow try` will show each
stage. A message rejected by the filter is still admitted (kept and audited as
filtered) but has no deliveries. For a channel with a `ledger`, every
delivery of a message carries the message's business key and content hash
(`flow/ledger.py`); other channels pay nothing for it. The warnings of the
transform's conversions to FHIR (what was converted only in part: no message
map, a required segment missing, ...) come with the result, so the admission
records them in the message's audit trail.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from thumpflow.config.jobs import Job
from thumpflow.config.model import Channel, Condition
from thumpflow.core.errors import MessageError
from thumpflow.core.event import Event, NewDelivery
from thumpflow.core.ids import new_ulid
from thumpflow.core.lanes import Lane
from thumpflow.flow.hl7_facts import entity_version, event_type, parse_hl7_time
from thumpflow.flow.ledger import LedgerProjection
from thumpflow.hl7v2 import Message
from thumpflow.mapping import reporting_warnings
from thumpflow.transform import check_outputs

Predicate = Callable[[Message], bool]
Transform = Callable[[Event, Message], Iterable[object]]


def compile_condition(condition: Condition) -> Predicate:
    """A predicate for one condition (see `Condition`)."""
    if condition.any is not None:
        options = [compile_condition(option) for option in condition.any]
        return lambda message: any(option(message) for option in options)
    path = condition.path
    assert path is not None
    if condition.equals is not None:
        expected = condition.equals
        return lambda message: message.get(path) == expected
    if condition.in_ is not None:
        allowed = frozenset(condition.in_)
        return lambda message: message.get(path) in allowed
    if condition.not_in is not None:
        banned = frozenset(condition.not_in)
        return lambda message: message.get(path) not in banned
    if condition.prefix is not None:
        start = condition.prefix
        return lambda message: message.get(path).startswith(start)
    if condition.matches is not None:
        pattern = re.compile(condition.matches)
        return lambda message: pattern.search(message.get(path)) is not None
    wanted = bool(condition.exists)
    return lambda message: (message.get(path) != "") == wanted


def compile_all(conditions: Sequence[Condition]) -> Predicate:
    """A predicate that holds when every condition holds (always, for none)."""
    predicates = [compile_condition(condition) for condition in conditions]
    if not predicates:
        return lambda message: True
    if len(predicates) == 1:
        return predicates[0]
    return lambda message: all(predicate(message) for predicate in predicates)


def describe_exception(err: Exception) -> str:
    """Type and place of an exception, without its message (which may hold patient data)."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(err).__name__}{where}"


def transform_failure(err: Exception) -> MessageError:
    """The reject reason for a transform that raised `err`, fit for a NAK, a log and the list.

    A `MessageError` (`TransformError`, the FHIR mapping's `ConversionError`)
    carries a reason that names fields and rules, never values, and is
    given whole. Any other exception may quote the message (a `KeyError`
    holding an MRN), so only its type and place are given, with the remedy.
    """
    if isinstance(err, MessageError):
        return MessageError(f"transform failed: {err.describe()}", code=err.code)
    return MessageError(
        f"transform failed: {describe_exception(err)} (raise "
        "thumpflow.transform.TransformError to give a reason)",
        code="207",
    )


@dataclass(slots=True, frozen=True)
class PipelineResult:
    received: Event
    derived: tuple[Event, ...]
    deliveries: tuple[NewDelivery, ...]
    filtered: bool
    conversion_warnings: tuple[str, ...] = ()


class ChannelPipeline:
    """One channel's compiled pipeline.

    `partner` is the job that `reconciles` the channel (`Config.partner`): its
    schema types the channel's ledger record, so both sides hash alike.
    """

    def __init__(
        self, channel: Channel, transform: Transform | None = None, partner: Job | None = None
    ) -> None:
        self.channel = channel
        self.channel_id = channel.id
        self._transform = transform
        self._filter = compile_all(channel.filter)
        self._lanes = [(rule.lane, compile_all(rule.when)) for rule in channel.lanes.rules]
        self._default_lane = channel.lanes.default
        self._routes = [
            (destination.id, compile_all(destination.when)) for destination in channel.destinations
        ]
        self._ids = [destination.id for destination in channel.destinations]
        self._key = channel.ordering_key
        self._version_path = channel.entity_version
        self._zone = ZoneInfo(channel.timezone)
        self._ledger: LedgerProjection | None = None
        if channel.ledger is not None:
            types = {spec.name: spec.type for spec in partner.schema_} if partner else {}
            version = partner.version_field if partner else None
            self._ledger = LedgerProjection(channel.ledger, types, version)

    def source_system(self, message: Message) -> str:
        """The sender: MSH-3 and MSH-4 (application and facility)."""
        return f"{message.sending_application}@{message.sending_facility}"

    def lane(self, message: Message) -> Lane:
        for lane, predicate in self._lanes:
            if predicate(message):
                return lane
        return self._default_lane

    def accepts(self, message: Message) -> bool:
        return self._filter(message)

    def ordering_entity(self, message: Message) -> tuple[str, str]:
        """(entity type, entity id); messages without one are ordered per channel."""
        entity = message.get(self._key.path)
        if not entity:
            return "Channel", self.channel_id
        if self._key.authority_path is not None:
            authority = message.get(self._key.authority_path)
            if authority:
                entity = f"{authority}|{entity}"
        return self._key.entity_type, entity

    def event(self, message: Message, raw: bytes, received_at: float) -> Event:
        """The received event for a parsed message."""
        source = self.source_system(message)
        entity_type, entity_id = self.ordering_entity(message)
        occurred = parse_hl7_time(message.get("EVN-2") or message.get("MSH-7"), self._zone)
        sequence = None
        if self._version_path is not None:
            sequence = entity_version(message.get(self._version_path))
        return Event(
            event_id=new_ulid(int(received_at * 1000)),
            idempotency_key=f"{source}|{message.control_id}",
            source_system=source,
            channel_id=self.channel_id,
            event_type=event_type(message),
            entity_type=entity_type,
            entity_id=entity_id,
            occurred_at=occurred if occurred is not None else received_at,
            received_at=received_at,
            body=raw,
            sequence=sequence,
            lane=self.lane(message),
            location=message.get("PV1-3.1") or None,
            correlation_id=message.control_id or None,
        )

    def run(self, message: Message, raw: bytes, received_at: float) -> PipelineResult:
        """Filter, transform and route one message.

        Raises whatever a transform raises, and `TransformError` for an
        output the store would refuse (`thumpflow.transform.check_outputs`);
        `transform_failure` says either in words fit for a NAK and a log.
        The result's `conversion_warnings` are those of the transform's
        conversions to FHIR, in order (texts naming message type and segment,
        never a value).
        """
        received = self.event(message, raw, received_at)
        if not self._filter(message):
            return PipelineResult(received, (), (), filtered=True)
        targets = [destination for destination, holds in self._routes if holds(message)]
        heard: list[str] = []
        if self._transform is None:
            outputs: list[tuple[Event, tuple[str, ...] | None]] = [(received, None)]
            derived: tuple[Event, ...] = ()
        else:
            with reporting_warnings(heard.append):
                outputs = check_outputs(received, self._transform(received, message), self._ids)
            derived = tuple(event for event, _ in outputs)
        key = digest = None
        version: int | None = None
        if self._ledger is not None:
            projected = self._ledger.project(message)
            if projected is not None:
                key, digest, version = projected
        deliveries = tuple(
            NewDelivery(
                event_id=event.event_id,
                destination_id=destination,
                ordering_key=event.ordering_key,
                lane=event.lane,
                sequence=event.sequence,
                business_key=key,
                content_hash=digest,
                ledger_version=version,
            )
            for event, only in outputs
            for destination in targets
            if only is None or destination in only
        )
        return PipelineResult(
            received, derived, deliveries, filtered=False, conversion_warnings=tuple(heard)
        )

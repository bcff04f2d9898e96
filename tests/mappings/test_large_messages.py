"""Conversion work grows with the message, not with its square: a large or hostile
message (thousands of OBX under one OBR, each with its NTE) costs steps in
proportion to its segments. Measured in segment-id reads, not seconds, so the
test is the same on a loaded machine."""

from __future__ import annotations

from typing import Any

import pytest

from thumpflow.hl7v2 import Message
from thumpflow.mapping import _engine, convert


class _CountedIds(list[str]):
    """A message's segment ids that count how often they are read by position."""

    reads = 0

    def __getitem__(self, index: Any) -> Any:
        _CountedIds.reads += 1
        return super().__getitem__(index)


def oru(observations: int) -> bytes:
    head = (
        b"MSH|^~\\&|LAB|GEN|EHR|GEN|20261206083000||ORU^R01^ORU_R01|C1|P|2.5.1\r"
        b"PID|1||P1^^^GEN^MR||Doe^Jo\rPV1|1|I\rOBR|1|O1|F1|24323-8^Panel^LN\r"
    )
    return head + b"".join(
        b"OBX|%d|NM|%d-1^Test %d^LN||%d.5|mg||N|||F\rNTE|1||note %d\r" % (i, i, i, i, i)
        for i in range(1, observations + 1)
    )


def reads_to_convert(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    table = Message.segment_table

    def counted(message: Message) -> tuple[list[str], list[list[str]]]:
        ids, fields = table(message)
        return _CountedIds(ids), fields

    monkeypatch.setattr(Message, "segment_table", counted)
    _CountedIds.reads = 0
    bundle = convert(raw, bundle_type="collection")
    return _CountedIds.reads, bundle


def test_observations_under_one_report_cost_steps_in_proportion_to_their_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small, _ = reads_to_convert(oru(300), monkeypatch)
    large, bundle = reads_to_convert(oru(1200), monkeypatch)
    assert large < 5 * small, (small, large)  # four times the segments; n² would be 16 times
    (report,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert len(report["result"]) == 1200
    notes = [
        e["resource"]["note"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert len(notes) == 1200 and notes[-1] == [{"text": "note 1200"}]


def test_many_alike_segments_get_their_ids_in_steps_in_proportion_to_their_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Identical AL1 segments make resources with one id basis: the n-th is `#n`."""
    made = []
    original = _engine.deterministic_id

    def counted(*parts: str) -> str:
        made.append(parts)
        return original(*parts)

    monkeypatch.setattr(_engine, "deterministic_id", counted)

    def ids(allergies: int) -> tuple[int, list[str]]:
        made.clear()
        raw = (
            b"MSH|^~\\&|REG|GEN|EHR|GEN|20261206083000||ADT^A01^ADT_A01|C1|P|2.5.1\r"
            b"PID|1||P1^^^GEN^MR||Doe^Jo\rPV1|1|I\r"
        ) + b"AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives\r" * allergies
        bundle = convert(raw, bundle_type="collection")
        return len(made), [
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "AllergyIntolerance"
        ]

    small, _ = ids(100)
    large, allergy_ids = ids(400)
    assert large < 5 * small, (small, large)  # n² would be 16 times
    assert len(set(allergy_ids)) == 400

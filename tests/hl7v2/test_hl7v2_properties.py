"""Property-based tests: round trips, escapes, set/get, and never-raise promises."""

from __future__ import annotations

import contextlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import Delimiters, Message, build_ack_for_raw, escape, unescape

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SEGMENT_IDS = st.from_regex(r"[A-Z][A-Z0-9]{2}", fullmatch=True).filter(
    lambda s: s not in ("MSH", "FHS", "BHS")
)


@st.composite
def delimiters(draw: st.DrawFn) -> Delimiters:
    chars = draw(st.lists(st.sampled_from(string.punctuation), min_size=6, max_size=6, unique=True))
    truncation = chars[5] if draw(st.booleans()) else None
    return Delimiters(*chars[:5], truncation=truncation)


Leaf = str
Field = list[list[list[Leaf]]]


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, Delimiters, list[tuple[str, list[Field]]]]:
    d = draw(delimiters())
    component = st.lists(TEXT, min_size=1, max_size=3)
    repetition = st.lists(component, min_size=1, max_size=3)
    field = st.lists(repetition, min_size=1, max_size=2)
    segments = draw(st.lists(st.tuples(SEGMENT_IDS, st.lists(field, max_size=4)), max_size=5))

    def wire(field: Field) -> str:
        return d.repetition.join(
            d.component.join(d.subcomponent.join(escape(s, d) for s in comp) for comp in rep)
            for rep in field
        )

    msh = f"MSH{d.field}{d.encoding_characters}{d.field}APP{d.field}FAC"
    lines = [msh] + [d.field.join([sid, *(wire(f) for f in fields)]) for sid, fields in segments]
    seps = draw(
        st.lists(st.sampled_from(["\r", "\n", "\r\n"]), min_size=len(lines), max_size=len(lines))
    )
    lead = draw(st.sampled_from(["", "\r\n", " \n"]))
    trail = draw(st.sampled_from(["", "\r", "\n\n"]))
    text = lead + "".join(line + sep for line, sep in zip(lines, seps, strict=True))
    text = text[: -len(seps[-1])] + trail if draw(st.booleans()) else text
    return text.encode("utf-8"), d, segments


@settings(max_examples=150)
@given(messages())
def test_parse_serialise_round_trip_and_leaf_access(
    case: tuple[bytes, Delimiters, list[tuple[str, list[Field]]]],
) -> None:
    raw, d, segments = case
    msg = Message.parse(raw)
    assert msg.delimiters == d
    assert msg.get("MSH-3") == "APP"
    assert msg.segment_ids() == ["MSH", *(sid for sid, _ in segments)]
    seen: dict[str, int] = {}
    for sid, fields in segments:
        seen[sid] = occ = seen.get(sid, 0) + 1
        for f, field in enumerate(fields, start=1):
            for r, rep in enumerate(field, start=1):
                for c, comp in enumerate(rep, start=1):
                    for s, leaf in enumerate(comp, start=1):
                        assert msg.get(f"{sid}[{occ}]-{f}[{r}].{c}.{s}") == leaf
    assert msg.to_bytes() == raw


@settings(max_examples=300)
@given(delimiters(), st.text(st.characters(blacklist_categories=("Cs",))))
def test_unescape_inverts_escape(d: Delimiters, text: str) -> None:
    escaped = escape(text, d)
    assert not any(c in escaped for c in (d.field, d.component, d.repetition, d.subcomponent))
    assert "\r" not in escaped and "\n" not in escaped
    assert unescape(escaped, d) == text


PATHS = st.builds(
    lambda sid, occ, f, r, c, s: f"{sid}[{occ}]-{f}[{r}].{c}.{s}",
    st.sampled_from(["PID", "OBX", "ZZZ"]),
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 3),
)
BASE = (
    b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\r\n"
    b"PID|1||X^Y~Z||Doe^Jane\r\nOBX|1|ST|c||v1\r\nOBX|2|ST|c||v\\F\\2\r\n\r\n"
)


@settings(max_examples=150)
@given(st.lists(st.tuples(PATHS, TEXT), min_size=1, max_size=4))
def test_set_then_get(writes: list[tuple[str, str]]) -> None:
    msg = Message.parse(BASE)
    expected: dict[str, str] = {}
    for path, value in writes:
        msg.set(path, value)
        expected[path] = value
    for path, value in expected.items():
        assert msg.get(path) == value
    again = Message.parse(msg.to_bytes())
    for path, value in expected.items():
        assert again.get(path) == value
    assert again.to_bytes() == msg.to_bytes()
    assert msg.to_bytes().startswith(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\r\n")


RAW = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda b: b"MSH" + b, st.binary(max_size=200)),
    st.builds(lambda b: b"MSH|^~\\&|" + b, st.binary(max_size=200)),
    st.builds(lambda b: b"\r\n MSH|^~\\&|A|B|C|D|||ADT^A01|" + b, st.binary(max_size=200)),
)


@settings(max_examples=400)
@given(RAW)
def test_nak_for_raw_never_raises(raw: bytes) -> None:
    nak = build_ack_for_raw(raw, "AR", MessageError("bad", segment="PID", field=3, code="102"))
    ack = Message.parse(nak)
    assert ack.get("MSA-1") == "AR"
    assert ack.get("ERR-3.1") == "102"
    assert b"\x0b" not in nak and b"\x1c" not in nak


@settings(max_examples=400)
@given(RAW)
def test_parse_raises_only_message_error(raw: bytes) -> None:
    try:
        msg = Message.parse(raw)
    except MessageError:
        return
    assert msg.to_bytes() == raw
    msg.segment_ids()
    for path in ("MSH-3", "MSH-9.2", "MSH-10", "MSH-18", "PID-3[2].1", "ZZZ[2]-1.1.1"):
        msg.get(path)
    with contextlib.suppress(MessageError):
        msg.validate_structure()
    assert isinstance(msg.encoding, str)

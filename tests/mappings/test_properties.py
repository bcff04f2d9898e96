"""Property: varied valid v2 messages of every supported structure convert to valid R4.

The messages are the golden inputs (one or more per message map, so every
structure is drawn) varied by hypothesis: optional segments dropped or
repeated, fields given extra repetitions, and components replaced by text
full of delimiters and escapes (escaped as a sender must). Each converts
deterministically to a Bundle with zero validator errors, or, when the
variation removed every segment the map reads, fails with a ConversionError
naming the segment missing; never anything else.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thumpflow.cli.mapping_test import find_cases
from thumpflow.fhir import validate
from thumpflow.hl7v2 import escape
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS
from thumpflow.mapping import ConversionError, convert, to_json

CASES = find_cases(Path(__file__).parent)
INPUTS = [
    [s for s in (c / "input.hl7").read_bytes().decode("utf-8").replace("\n", "\r").split("\r") if s]
    for c in CASES
]

_text = st.text(
    alphabet=st.sampled_from([*"aZ09 .-/&|^~\\#'\"", "\u00e9", "\u00fc", "\u4e2d"]),
    min_size=0,
    max_size=14,
)
_edit = st.tuples(st.integers(0, 40), st.integers(1, 30), st.integers(1, 6), _text)


def _vary(
    segments: list[str],
    drop: set[int],
    repeat: set[int],
    edits: list[tuple[int, int, int, str]],
    extra_reps: set[int],
) -> bytes:
    out: list[str] = []
    for i, seg in enumerate(segments):
        if i > 0 and i in drop:
            continue
        out.append(seg)
        if i > 0 and i in repeat:
            out.append(seg)
    for seg_no, field_no, comp_no, text in edits:
        i = 1 + seg_no % max(1, len(out) - 1)
        if i >= len(out) or out[i].startswith("MSH"):
            continue
        fields = out[i].split("|")
        while len(fields) <= field_no:
            fields.append("")
        if field_no in extra_reps:
            fields[field_no] = fields[field_no] + "~" + fields[field_no]
        reps = fields[field_no].split("~")
        comps = reps[0].split("^")
        while len(comps) < comp_no:
            comps.append("")
        comps[comp_no - 1] = escape(text, DEFAULT_DELIMITERS)
        reps[0] = "^".join(comps)
        fields[field_no] = "~".join(reps)
        out[i] = "|".join(fields)
    return "\r".join(out).encode("utf-8")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.integers(0, len(INPUTS) - 1),
    segments=st.tuples(
        st.sets(st.integers(1, 12), max_size=4), st.sets(st.integers(1, 12), max_size=3)
    ),
    edits=st.lists(_edit, max_size=6),
    extra_reps=st.sets(st.integers(1, 30), max_size=3),
    bundle_type=st.sampled_from(["transaction", "batch", "collection"]),
)
def test_varied_messages_of_every_structure_convert_to_valid_r4(
    case: int,
    segments: tuple[set[int], set[int]],
    edits: list[tuple[int, int, int, str]],
    extra_reps: set[int],
    bundle_type: str,
) -> None:
    drop, repeat = segments
    raw = _vary(INPUTS[case], drop, repeat, edits, extra_reps)
    try:
        bundle = convert(raw, bundle_type=bundle_type)  # type: ignore[arg-type]
    except ConversionError as exc:
        assert "is missing" in exc.reason and exc.segment, exc.reason
        return
    text = to_json(bundle)
    assert text == to_json(convert(raw, bundle_type=bundle_type))  # type: ignore[arg-type]
    errors = [f"{i.path}: {i.message}" for i in validate(json.loads(text)) if i.severity == "error"]
    assert errors == []
    # What `convert` returns (its decimals `FhirDecimal`) validates as its JSON does.
    assert validate(bundle) == validate(json.loads(text))


def test_the_property_draws_every_message_map() -> None:
    from thumpflow.hl7v2 import Message
    from thumpflow.mapping import all_maps, map_for

    drawn = set()
    for segments in INPUTS:
        msg = Message.parse("\r".join(segments).encode("utf-8"))
        drawn.add(map_for(msg.message_type, msg.trigger_event, msg.get("MSH-9.3"))[0])
    assert drawn == set(all_maps())

"""Memoised data type maps (`memo: true`, `thumpflow.mapping._memo`) never change output.

Converting a sequence of messages with the memo gives, byte for byte, what
converting them without it gives: across varied messages (coded elements
replaced by text full of delimiters and escapes, timezones), across two
channels whose naming-system tables differ, and after a caller has emptied
every dict and list of the Bundles it got. The memo is bounded, keeps only
what JSON gives back equal, and only pure maps may be memoised.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.mappings.edits import replace_component
from thumpflow.mapping import (
    ConversionError,
    FhirDecimal,
    MapError,
    _memo,
    convert,
    naming_table,
    to_json,
    using_naming_systems,
)
from thumpflow.mapping._compile import Compiler
from thumpflow.testing.generators import adt_a01, adt_a08, oru_r01

CHANNELS = (
    naming_table({"HOSP": "http://a.example/hosp", "UHC": "http://a.example/uhc"}),
    naming_table({"HOSP": "http://b.example/hosp"}, base="http://b.example/ns/"),
)

_text = st.text(
    alphabet=st.sampled_from([*"aZ09 .-/&|^~\\#'\"", "\u00e9", "\u4e2d"]),
    max_size=10,
)
# (segment, field, component, text): coded fields (OBX-3, OBX-6, AL1-3, DG1-3,
# PID-15, ...) among others, so memoised maps meet new and known elements.
_edit = st.tuples(st.integers(1, 20), st.integers(2, 20), st.integers(1, 12), _text)
_message = st.tuples(
    st.sampled_from([adt_a01, adt_a08, oru_r01]),
    st.integers(0, 5),
    st.lists(_edit, max_size=4),
    st.sampled_from(["", "-0500", "+0130"]),
    st.integers(0, 1),
)


def _raw(kind: Any, seed: int, edits: list[tuple[int, int, int, str]], tz: str) -> bytes:
    segments = kind(f"MRN{seed}", f"C{seed}", seed=seed).decode("utf-8").split("\r")
    msh = segments[0].split("|")
    msh[6] += tz
    segments[0] = "|".join(msh)
    for seg_no, field_no, comp_no, text in edits:
        i = 1 + seg_no % (len(segments) - 1)
        segments[i] = replace_component(segments[i], field_no, comp_no, text)
    return "\r".join(segments).encode("utf-8")


def _outputs(messages: list[tuple[bytes, int]], *, spoil: bool) -> list[bytes]:
    """Each message converted in its channel; with `spoil`, every dict and
    list of each Bundle is emptied after it is serialised, as a caller may."""
    out = []
    for raw, channel in messages:
        with using_naming_systems(CHANNELS[channel]):
            try:
                bundle = convert(raw, bundle_type="collection")
            except ConversionError as exc:
                out.append(repr((exc.reason, exc.segment, exc.field)).encode())
                continue
        out.append(to_json(bundle))
        if spoil:
            _empty(bundle)
    return out


def _empty(value: Any) -> None:
    if type(value) is dict:
        for item in value.values():
            _empty(item)
        value.clear()
    elif type(value) is list:
        for item in value:
            _empty(item)
        value.clear()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=st.lists(_message, min_size=1, max_size=6))
def test_memoised_conversion_gives_what_unmemoised_conversion_gives(
    drawn: list[tuple[Any, int, list[tuple[int, int, int, str]], str, int]],
) -> None:
    messages = [(_raw(kind, seed, edits, tz), channel) for kind, seed, edits, tz, channel in drawn]
    with _memo.memoising(False):
        expected = _outputs(messages, spoil=False)
    with _memo.memoising(True):
        # The first pass fills the memo, the second is served from it.
        assert _outputs(messages, spoil=True) == expected
        assert _outputs(messages, spoil=True) == expected
        assert _memo._memos


def test_channels_and_timezones_have_memos_of_their_own() -> None:
    raw = oru_r01("MRN1", "C1", seed=1, n_obx=3)
    with _memo.memoising(True):
        for table in CHANNELS:
            with using_naming_systems(table):
                convert(raw)
        convert(raw.replace(b"|20240701", b"|20240701-0500", 1))
        assert len(_memo._memos) == 3
        assert all(_memo._memos.values())


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memo, "ENTRIES", 4)
    monkeypatch.setattr(_memo, "CONTEXTS", 2)
    with _memo.memoising(True):
        memo = _memo.memo_for(("a",))
        for i in range(10):
            _memo.remember(memo, (0, str(i)), {"text": str(i)})
            assert len(memo) <= 4
        _memo.memo_for(("b",))
        _memo.memo_for(("c",))
        assert len(_memo._memos) <= 2
        _memo.remember(memo, (0, "x" * (_memo.LONGEST + 1)), {"text": "x"})
        assert (0, "x" * (_memo.LONGEST + 1)) not in memo


@pytest.mark.parametrize("value", [{"value": FhirDecimal("1.50")}, {"value": math.nan}])
def test_only_what_json_gives_back_equal_is_kept(value: dict[str, Any]) -> None:
    with _memo.memoising(True):
        memo = _memo.memo_for(("kept",))
        assert _memo.remember(memo, (0, "1.50"), value) is value
        kept = memo.get((0, "1.50"))
        assert kept is None or _memo.recall(kept) == value


def test_memoising_off_keeps_nothing() -> None:
    with _memo.memoising(False):
        memo = _memo.memo_for(("off",))
        _memo.remember(memo, (0, "a"), {"text": "a"})
        assert memo == {}


def test_only_a_pure_data_type_map_may_be_memoised() -> None:
    datatypes = {
        "HD[Organization]": {
            "resourceType": "Organization",
            "entries": [{"from": 1, "to": "name"}],
        },
        "X[Impure]": {
            "memo": True,
            "entries": [{"from": 1, "to": "a", "type": "HD[Organization]"}],
        },
        "X[Pure]": {"memo": True, "entries": [{"from": 1, "to": "a"}]},
    }
    segments = {
        name: {"resourceType": "Patient", "entries": [{"from": 2, "to": "b", "type": dt}]}
        for name, dt in (("S[Pure]", "X[Pure]"), ("S[Impure]", "X[Impure]"))
    }
    compiler = Compiler({}, datatypes, segments)
    compiler.segment("S[Pure]", "test")
    assert list(compiler.memo_slots) == ["dt_X_Pure__1"]
    with pytest.raises(MapError, match=r"X\[Impure\] is not pure"):
        compiler.segment("S[Impure]", "test")

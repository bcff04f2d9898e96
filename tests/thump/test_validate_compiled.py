"""The compiled fast paths mean exactly what the detailed ones do.

`RecordValidator.validate` (generated fast path first) must answer what
`validate_detailed` answers, value for value and type for type, on any input;
`content_hasher(fields)` must give `content_hash` on any record;
`RecordValidator.prepare` must answer `validate`'s typed record with its
`canonical_json`, or None.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.config.jobs import FieldSpec, RuleSpec
from thumpflow.core.records import canonical_json, content_hash, content_hasher
from thumpflow.thump.validate import RecordValidator

FIELDS = [
    FieldSpec(name="id", required=True),
    FieldSpec(name="name"),
    FieldSpec(name="short", max_length=3, pattern="[A-Z]+"),
    FieldSpec(name="sex", type="code", allowed=["M", "F", "U"]),
    FieldSpec(name="dob", type="date"),
    FieldSpec(name="seen", type="datetime", required=True),
    FieldSpec(name="left", type="datetime"),
    FieldSpec(name="charge", type="decimal"),
    FieldSpec(name="count", type="integer"),
    FieldSpec(name="flag", type="boolean"),
    # The configuration refuses constraints on other types; the validators still agree.
    FieldSpec.model_construct(
        name="day", type="date", required=False, max_length=None, pattern="2024-.*", allowed=None
    ),
]
RULES = [RuleSpec(id="left-after-seen", field="left", op="ge", other="seen")]

VALUES: dict[str, list[Any]] = {
    "id": ["E1", " E2 ", "", "  ", None, 7, "a|b", "\u00a0"],
    "name": ["Müller", "", " ", None, 3, ["x"], "O'Brien"],
    "short": ["AB", "ABCD", "ab", "", None, "A B"],
    "sex": ["M", "F", "X", "m", "", None, " M"],
    "dob": [
        "1950-03-14",
        " 1950-03-14 ",
        "1950-02-30",
        "19500314",
        "1950-W01-1",
        "",
        None,
        date(1950, 3, 14),
        datetime(1950, 3, 14),
        "１９５０-03-14",
    ],
    "seen": [
        "2024-02-01T05:15:00Z",
        "2024-02-01T05:15:00-00:00",
        "2024-02-01T05:15:00+05:30",
        "2024-02-01T05:15:00.000Z",
        "2024-02-01T05:15Z",
        "2024-02-01 05:15",
        "2024-02-01T05:15:00.5+01:00",
        "2024-02-01T05:15:00+0100",
        "2024-02-01T25:15",
        "2024-02-01",
        "",
        None,
        datetime(2024, 2, 1, tzinfo=UTC),
    ],
    "left": ["2024-03-01T15:40:00Z", "2024-01-01T00:00:00Z", "2024-03-01T15:40", "", None],
    "charge": [
        "123.45",
        ".5",
        "+1",
        "1e5",
        "00.50",
        " 7 ",
        "",
        None,
        1.5,
        3,
        Decimal("2.5"),
        True,
        "0.0000001",
        "-0",
        "-0.000",
        "1234567890123456789.5",
    ],
    "count": [
        "42",
        "-3",
        " 5 ",
        "4.0",
        "",
        None,
        8,
        2.0,
        False,
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "+7",
    ],
    "flag": ["yes", "N", "1", "maybe", "", None, True, 1],
    "day": ["2024-01-02", "2023-01-02", "", None],
}


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, dict) and isinstance(right, dict):
        return list(left) == list(right) and all(
            type(left[k]) is type(right[k]) and left[k] == right[k] for k in left
        )
    return bool(left == right)


@pytest.mark.parametrize("unknown", ["keep", "drop", "reject"])
def test_fast_path_answers_what_the_detailed_path_answers(unknown: str) -> None:
    validator = RecordValidator(FIELDS, RULES, unknown_fields=unknown, required=["name"])
    rng = random.Random(4)
    for _ in range(4000):
        record: dict[str, Any] = {}
        for spec in FIELDS:
            if rng.random() < 0.95:
                record[spec.name] = rng.choice(VALUES[spec.name])
        if rng.random() < 0.2:
            record["extra"] = rng.choice(["x", 1, None])
        assert _same(validator.validate(record), validator.validate_detailed(record)), record


def _check_prepared(validator: RecordValidator, record: dict[str, Any]) -> bool:
    prepared = validator.prepare(record)
    if prepared is None:
        return False
    typed, canonical, values = prepared
    assert _same(typed, validator.validate(record)), record
    assert canonical == canonical_json(typed), record
    loaded = json.loads(canonical)
    assert values == tuple(loaded[name] for name in typed), record
    assert [type(v) for v in values] == [type(loaded[name]) for name in typed], record
    return True


@pytest.mark.parametrize("unknown", ["keep", "drop", "reject"])
def test_prepare_answers_the_typed_record_with_its_canonical_json(unknown: str) -> None:
    validator = RecordValidator(FIELDS, RULES, unknown_fields=unknown, required=["name"])
    rng = random.Random(5)
    accepted = 0
    for _ in range(4000):
        record: dict[str, Any] = {}
        for spec in FIELDS:  # text values only (the first valid): the fast path decides each
            if rng.random() < 0.98:
                values = VALUES[spec.name]
                record[spec.name] = rng.choice(values[:4]) if rng.random() < 0.2 else values[0]
        if rng.random() < 0.2:
            record["extra"] = "x"
        kept = "extra" in record and unknown == "keep"
        answered = _check_prepared(validator, record)
        valid = not isinstance(validator.validate(record), list)
        assert answered == (valid and not kept), record
        accepted += valid
    assert accepted > 100


# Texts of the inlined types, valid and not, in the forms files hold them.
_DIGITS = st.integers(0, 9999)
_DATE_TEXTS = st.one_of(
    st.dates().map(date.isoformat),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}\Z"),
)
_DATETIME_TEXTS = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(sep=" ", timespec="minutes")),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?\Z"),
)
_DECIMAL_TEXTS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.from_regex(r"\A[+-]?(\d{1,25}(\.\d{0,12})?|\.\d{1,12})\Z"),
)
_INTEGER_TEXTS = st.one_of(st.integers().map(str), st.from_regex(r"\A[+-]?\d{1,22}\Z"))
_TEXTS = st.text(max_size=12)
TYPED_FIELDS = [
    FieldSpec(name="key", required=True),
    FieldSpec(name="t", type="string"),
    FieldSpec(name="d", type="date"),
    FieldSpec(name="dt", type="datetime"),
    FieldSpec(name="n", type="decimal"),
    FieldSpec(name="i", type="integer"),
    FieldSpec(name="b", type="boolean"),
]


@settings(max_examples=400)
@given(
    st.fixed_dictionaries(
        {
            "key": st.text(min_size=1, max_size=8),
            "t": _TEXTS,
            "d": st.one_of(_DATE_TEXTS, _TEXTS),
            "dt": st.one_of(_DATETIME_TEXTS, _TEXTS),
            "n": st.one_of(_DECIMAL_TEXTS, _TEXTS),
            "i": st.one_of(_INTEGER_TEXTS, _TEXTS),
            "b": st.sampled_from(["yes", "no", "1", "0", "", "maybe"]),
        }
    )
)
def test_prepared_json_is_canonical_json_for_any_text(record: dict[str, Any]) -> None:
    validator = RecordValidator(TYPED_FIELDS)
    if not _check_prepared(validator, record):
        result = validator.validate(record)
        if not isinstance(result, list):
            # Only integers beyond 64 bits (bound the usual way) go unprepared when valid.
            assert not -(2**63) <= result["i"] < 2**63


def test_a_valid_record_takes_the_fast_path() -> None:
    validator = RecordValidator(FIELDS, RULES)
    record = {
        "id": "E1", "name": "Ana", "short": "AB", "sex": "F", "dob": "1950-03-14",
        "seen": "2024-02-01T05:15:00Z", "left": "2024-03-01T15:40:00Z", "charge": "12.50",
        "count": "3", "flag": "yes", "day": "2024-01-02",
    }  # fmt: skip
    typed = validator._fast(record)
    assert typed is not None
    assert _same(typed, validator.validate_detailed(record))


RECORDS: list[dict[str, Any]] = [
    {"a": "x", "b": None, "c": date(2024, 1, 2)},
    {"a": 'Müller "q" \\ \n', "b": datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "c": Decimal("1.50")},
    {"a": 1, "b": 2.5, "c": True},
    {"a": float("nan"), "b": [1, date(2024, 1, 1)], "c": {"z": 1, "y": Decimal("2")}},
    {"a": b"\x00\xff", "b": (1, 2), "c": ""},
    {"a": "x", "b": "y"},
    {"a": "x", "b": "y", "c": "z", "d": "w"},
    {"c": "z", "a": "x", "b": "y"},
    {},
]


@pytest.mark.parametrize("record", RECORDS)
def test_hasher_gives_content_hash(record: dict[str, Any]) -> None:
    for fields in (["a", "b", "c"], ["c", "b", "a"], ["a"], []):
        assert content_hasher(fields)(record) == content_hash(record)


def test_hasher_does_not_take_invented_keys_for_present_ones() -> None:
    record = defaultdict(str, {"a": "x", "z": "y"})
    assert content_hasher(["a", "b"])(record) == content_hash({"a": "x", "z": "y"})


def test_hasher_gives_content_hash_on_many_records() -> None:
    values = ["", "é", "\u2028", None, 0, -1, 1.25, Decimal("-0.00"), date(1, 1, 1)]
    hasher = content_hasher(["k", "v"])
    for k, v in itertools.product(values, repeat=2):
        record = {"k": k, "v": v}
        assert hasher(record) == content_hash(record)


def _same_prepared(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is right
    return _same(left[0], right[0]) and left[1:] == right[1:]


@pytest.mark.parametrize("unknown", ["keep", "drop", "reject"])
def test_row_preparer_answers_what_prepare_answers_on_the_same_record(unknown: str) -> None:
    """Rows of text in a CSV header's order: columns in any order, some declared fields
    missing from the header, undeclared columns (kept, dropped or rejected)."""
    validator = RecordValidator(FIELDS, RULES, unknown_fields=unknown, required=["name"])
    rng = random.Random(6)
    names = [spec.name for spec in FIELDS]
    answered = 0
    for round_ in range(60):
        header = rng.sample(names, k=len(names) - (round_ % 3))
        if round_ % 4 == 0:
            header.insert(rng.randrange(len(header) + 1), "extra")
        prepare_row = validator.row_preparer(header)
        for _ in range(80):
            row = []
            for column in header:
                texts = [v for v in VALUES.get(column, ["x", ""]) if isinstance(v, str)]
                row.append(texts[0] if rng.random() < 0.8 else rng.choice(texts))
            expected = validator.prepare(dict(zip(header, row, strict=True)))
            assert _same_prepared(prepare_row(row), expected), (header, row)
            answered += expected is not None
    assert answered > 200

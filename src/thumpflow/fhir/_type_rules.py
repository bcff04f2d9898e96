"""Invariants of R4 data types, checked wherever a value of the type occurs (an element,
a choice variant such as `valueQuantity`, an extension's value).

Each rule is the R4.0.1 constraint of that key and severity (the official
StructureDefinitions, `profiles-types.json`): per-1 (Period), qty-3 (Quantity and every
profile of it), drt-1 (Duration), age-1 (Age), cnt-3 (Count), dis-1 (Distance), rng-2
(Range), rat-1 (Ratio), cpt-2 (ContactPoint), att-1 (Attachment), tim-1, 2, 4 to 10
(Timing.repeat) and txt-2 (Narrative.div has text). An element counts
as present when its value or its `_element` extensions are (FHIRPath `exists()`).

Orderings follow FHIRPath: dateTimes are compared precision by precision, instants
across time zones; where one value stops at a precision the other has and they agree up
to it, FHIRPath's answer is empty (undetermined). A certain violation is an error; an
undetermined comparison is a warning under the same key, because validators differ on
whether an empty invariant result fails. Quantities (rng-2) are compared only in the
same unit; others are not judged. Messages never repeat values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from html import unescape
from typing import Any

from thumpflow.fhir._context import Context

UCUM = "http://unitsofmeasure.org"

_DATE_TIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_TAG = re.compile(r"<[^>]*>")


def has(obj: dict[str, Any], key: str) -> bool:
    """FHIRPath `exists()` of a property: its value or its primitive extensions."""
    return key in obj or "_" + key in obj


def _parts(value: Any) -> tuple[tuple[int, ...], datetime | None] | None:
    """The date parts as written, and the instant when a time is given; None if unreadable."""
    if type(value) is not str:
        return None
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    parts = tuple(int(p) for p in (year, month, day) if p is not None)
    if hour is None:
        return parts, None
    try:
        local = datetime(parts[0], parts[1], parts[2], int(hour), int(minute))
    except ValueError:
        return None
    seconds = Decimal(second) + (Decimal(fraction) if fraction else 0)
    instant = local + timedelta(seconds=float(seconds))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        instant -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return parts, instant.replace(tzinfo=UTC)


def order(first: Any, second: Any) -> bool | None:
    """FHIRPath `first <= second` on two dateTime strings: True, False or None (empty).

    Unreadable values give True (the structural check reports them).
    """
    a, b = _parts(first), _parts(second)
    if a is None or b is None:
        return True
    if a[1] is not None and b[1] is not None:
        return a[1] <= b[1]
    for x, y in zip(a[0], b[0], strict=False):
        if x != y:
            return x < y
    if len(a[0]) == len(b[0]) and a[1] is None and b[1] is None:
        return True
    return None


def check_order(
    first: Any, second: Any, path: str, code: str, message: str, *, ctx: Context
) -> None:
    """Report `code` at `path` unless `first <= second`: an error when certainly not, a
    warning when FHIRPath cannot tell (different precisions that agree)."""
    result = order(first, second)
    if result is False:
        ctx.error(path, code, message)
    elif result is None:
        ctx.add(
            path,
            "warning",
            code,
            f"{message} (undetermined: the values have different precisions and agree"
            " up to the coarser one, so FHIRPath's comparison is empty)",
        )


def _period(value: dict[str, Any], path: str, ctx: Context) -> None:
    if "start" in value and "end" in value:
        check_order(
            value["start"],
            value["end"],
            path,
            "per-1",
            "If present, start SHALL have a lower value than end",
            ctx=ctx,
        )


def _quantity(value: dict[str, Any], path: str, ctx: Context) -> None:
    if has(value, "code") and not has(value, "system"):
        ctx.error(
            path, "qty-3", "If a code for the unit is present, the system SHALL also be present"
        )


def _positive(value: dict[str, Any]) -> bool | None:
    number = _decimal(value.get("value"))
    return None if number is None else number > 0


def _duration(value: dict[str, Any], path: str, ctx: Context) -> None:
    _quantity(value, path, ctx)
    if has(value, "code") and not (value.get("system") == UCUM and has(value, "value")):
        ctx.error(
            path,
            "drt-1",
            "There SHALL be a code if there is a value and it SHALL be an expression of time."
            "  If system is present, it SHALL be UCUM.",
        )


def _coded_ucum(value: dict[str, Any]) -> bool:
    """(code.exists() or value.empty()) and (system.empty() or system = %ucum)."""
    return (has(value, "code") or not has(value, "value")) and (
        not has(value, "system") or value.get("system") == UCUM
    )


def _age(value: dict[str, Any], path: str, ctx: Context) -> None:
    _quantity(value, path, ctx)
    if not _coded_ucum(value) or _positive(value) is False:
        ctx.error(
            path,
            "age-1",
            "There SHALL be a code if there is a value and it SHALL be an expression of time."
            "  If system is present, it SHALL be UCUM.  If value is present, it SHALL be"
            " positive.",
        )


def _count(value: dict[str, Any], path: str, ctx: Context) -> None:
    _quantity(value, path, ctx)
    number = value.get("value")
    whole = type(number) is not float or number.is_integer()
    if not _coded_ucum(value) or value.get("code", "1") != "1" or not whole:
        ctx.error(
            path,
            "cnt-3",
            'There SHALL be a code with a value of "1" if there is a value. If system is'
            " present, it SHALL be UCUM.  If present, the value SHALL be a whole number.",
        )


def _distance(value: dict[str, Any], path: str, ctx: Context) -> None:
    _quantity(value, path, ctx)
    if not _coded_ucum(value):
        ctx.error(
            path,
            "dis-1",
            "There SHALL be a code if there is a value and it SHALL be an expression of"
            " length.  If system is present, it SHALL be UCUM.",
        )


def _decimal(number: Any) -> Decimal | None:
    if type(number) not in (int, float):
        return None
    try:
        return Decimal(repr(number))
    except InvalidOperation:
        return None


def _unit(quantity: dict[str, Any]) -> tuple[Any, ...]:
    if "code" in quantity:
        return ("code", quantity.get("system"), quantity["code"])
    return ("unit", quantity.get("unit"))


def _range(value: dict[str, Any], path: str, ctx: Context) -> None:
    low, high = value.get("low"), value.get("high")
    if type(low) is not dict or type(high) is not dict or _unit(low) != _unit(high):
        return
    a, b = _decimal(low.get("value")), _decimal(high.get("value"))
    if a is not None and b is not None and a > b:
        ctx.error(path, "rng-2", "If present, low SHALL have a lower value than high")


def _ratio(value: dict[str, Any], path: str, ctx: Context) -> None:
    numerator, denominator = "numerator" in value, "denominator" in value
    if numerator != denominator or not (numerator or "extension" in value):
        ctx.error(
            path,
            "rat-1",
            "Numerator and denominator SHALL both be present, or both are absent. If both"
            " are absent, there SHALL be some extension present",
        )


def _contact_point(value: dict[str, Any], path: str, ctx: Context) -> None:
    if has(value, "value") and not has(value, "system"):
        ctx.error(path, "cpt-2", "A system is required if a value is provided.")


def _attachment(value: dict[str, Any], path: str, ctx: Context) -> None:
    if has(value, "data") and not has(value, "contentType"):
        ctx.error(path, "att-1", "If the Attachment has data, it SHALL have a contentType")


def _narrative(value: dict[str, Any], path: str, ctx: Context) -> None:
    div = value.get("div")
    if type(div) is not str or "<img" in div:
        return
    if not unescape(_TAG.sub("", div)).strip():
        ctx.error(f"{path}.div", "txt-2", "The narrative SHALL have some non-whitespace content")


_TIMING = (
    (
        "tim-1",
        "if there's a duration, there needs to be duration units",
        "duration",
        "durationUnit",
    ),
    ("tim-2", "if there's a period, there needs to be period units", "period", "periodUnit"),
    ("tim-6", "If there's a periodMax, there must be a period", "periodMax", "period"),
    ("tim-7", "If there's a durationMax, there must be a duration", "durationMax", "duration"),
    ("tim-8", "If there's a countMax, there must be a count", "countMax", "count"),
)


def _timing_repeat(value: dict[str, Any], path: str, ctx: Context) -> None:
    for code, message, present, needed in _TIMING:
        if has(value, present) and not has(value, needed):
            ctx.error(path, code, message)
    for code, key in (("tim-4", "duration"), ("tim-5", "period")):
        number = _decimal(value.get(key))
        if number is not None and number < 0:
            ctx.error(f"{path}.{key}", code, f"{key} SHALL be a non-negative value")
    when = value.get("when")
    if has(value, "offset") and (
        not has(value, "when")
        or (type(when) is list and any(w in ("C", "CM", "CD", "CV") for w in when))
    ):
        ctx.error(
            path, "tim-9", "If there's an offset, there must be a when (and not C, CM, CD, CV)"
        )
    if has(value, "timeOfDay") and has(value, "when"):
        ctx.error(path, "tim-10", "If there's a timeOfDay, there cannot be a when, or vice versa")


# Type name (as in the element tables, backbone elements by path) -> its invariant check.
TYPE_RULES: dict[str, Callable[[dict[str, Any], str, Context], None]] = {
    "Period": _period,
    "Quantity": _quantity,
    "SimpleQuantity": _quantity,
    "Duration": _duration,
    "Age": _age,
    "Count": _count,
    "Distance": _distance,
    "Range": _range,
    "Ratio": _ratio,
    "ContactPoint": _contact_point,
    "Attachment": _attachment,
    "Narrative": _narrative,
    "Timing.repeat": _timing_repeat,
}

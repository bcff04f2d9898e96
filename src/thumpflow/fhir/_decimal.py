"""A FHIR `decimal` that keeps the digits it was written with.

FHIR distinguishes `1.5` from `1.50` (precision is part of the value), which a
Python float cannot hold. Converters put a `FhirDecimal` where a decimal goes;
`validate` accepts it as a decimal when its text has the decimal's lexical
form, and the JSON writers (`thumpflow.mapping.to_json`) write the text as
the number.
"""

from __future__ import annotations


class FhirDecimal:
    """A FHIR `decimal` kept as the sender wrote it, in JSON number syntax.

    `text` has the FHIR decimal lexical form with a fraction
    (`-?(0|[1-9][0-9]*)[.][0-9]+`), which is also a JSON number, so `to_json`
    writes it verbatim; `float(d)` is its value. Two are equal when their text is:
    `1.5` and `1.50` are different statements of precision.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __float__(self) -> float:
        return float(self.text)

    def __eq__(self, other: object) -> bool:
        return type(other) is FhirDecimal and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"FhirDecimal({self.text!r})"

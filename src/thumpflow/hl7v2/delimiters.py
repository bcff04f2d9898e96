"""The delimiter set of one HL7 v2 message, read from MSH-1 and MSH-2."""

from __future__ import annotations

import dataclasses
import string

from thumpflow.core.errors import MessageError

_ALLOWED = frozenset(string.punctuation)


@dataclasses.dataclass(frozen=True, slots=True)
class Delimiters:
    """Field, component, repetition, escape and subcomponent characters, plus the
    v2.7 truncation character (the optional 5th character of MSH-2).

    Construction guarantees a usable set: every delimiter is one printable,
    non-alphanumeric ASCII character (so never CR, LF or a space) and all are
    distinct; otherwise `MessageError(segment="MSH", field=2, code="102")`.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None
    _escape_map: dict[int, str] = dataclasses.field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        chars = [self.field, self.component, self.repetition, self.escape, self.subcomponent]
        if self.truncation is not None:
            chars.append(self.truncation)
        for c in chars:
            if len(c) != 1 or c not in _ALLOWED:
                raise MessageError(
                    "delimiters must be single printable non-alphanumeric ASCII characters",
                    segment="MSH",
                    field=2,
                    code="102",
                )
        if len(set(chars)) != len(chars):
            raise MessageError("delimiters must be distinct", segment="MSH", field=2, code="102")
        e = self.escape
        mapping = {
            ord(e): f"{e}E{e}",
            ord(self.field): f"{e}F{e}",
            ord(self.component): f"{e}S{e}",
            ord(self.repetition): f"{e}R{e}",
            ord(self.subcomponent): f"{e}T{e}",
            13: f"{e}X0D{e}",
            10: f"{e}X0A{e}",
        }
        if self.truncation is not None:
            mapping[ord(self.truncation)] = f"{e}P{e}"
        object.__setattr__(self, "_escape_map", mapping)

    @property
    def encoding_characters(self) -> str:
        """The MSH-2 value: component, repetition, escape, subcomponent[, truncation]."""
        return (
            self.component
            + self.repetition
            + self.escape
            + self.subcomponent
            + (self.truncation or "")
        )

    @classmethod
    def from_msh(cls, field_separator: str, encoding_characters: str) -> Delimiters:
        """The set declared by MSH-1 and MSH-2 (also FHS/BHS-1 and -2).

        MSH-2 must hold 4 characters, or 5 with a v2.7 truncation character;
        anything else raises `MessageError(segment="MSH", field=2, code="102")`.
        Results are cached: the same declaration yields the same object.
        """
        key = field_separator + encoding_characters
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        n = len(encoding_characters)
        if n not in (4, 5):
            raise MessageError(
                f"encoding characters must be 4 or 5 characters long, found {n}",
                segment="MSH",
                field=2,
                code="102",
            )
        delims = cls(
            field_separator,
            encoding_characters[0],
            encoding_characters[1],
            encoding_characters[2],
            encoding_characters[3],
            encoding_characters[4] if n == 5 else None,
        )
        if len(_CACHE) < 256:
            _CACHE[key] = delims
        return delims


_CACHE: dict[str, Delimiters] = {}

DEFAULT_DELIMITERS = Delimiters()

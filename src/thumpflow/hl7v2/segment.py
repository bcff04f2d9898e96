"""One segment of a message, with lazy field splitting and path access."""

from __future__ import annotations

from typing import Protocol

from thumpflow.hl7v2.delimiters import Delimiters
from thumpflow.hl7v2.escape import escape, unescape
from thumpflow.hl7v2.path import compile_field_path

# Characters tolerated around segments: blank lines, stray MLLP framing bytes,
# a byte order mark.
WHITESPACE = " \t\r\n\x0b\x0c\x1c\ufeff"
WHITESPACE_BYTES = b" \t\r\n\x0b\x0c\x1c\xef\xbb\xbf"
# Segments whose field 1 is the field separator and field 2 the encoding characters.
HEADER_SEGMENTS = frozenset({"MSH", "FHS", "BHS"})


class SegmentOwner(Protocol):
    """What a segment inside a message needs from it."""

    @property
    def encoding(self) -> str: ...

    def segment_changed(self, position: int, text: str, fields: list[str]) -> None: ...


def segment_id(text: str, field_separator: str) -> str:
    """The segment id: the text before the first field separator, trimmed."""
    if text[3:4] == field_separator:
        return text[:3]
    return text.split(field_separator, 1)[0].strip(WHITESPACE)


def split_fields(text: str, field_separator: str) -> list[str]:
    """The fields of a segment, indexed by field number (index 0 is the id);
    for MSH/FHS/BHS index 1 is the field separator itself."""
    fields = text.split(field_separator)
    if fields[0].strip(WHITESPACE) in HEADER_SEGMENTS:
        fields.insert(1, field_separator)
    return fields


# Hot path: positional indices avoid packing a tuple per lookup.
def element(  # noqa: PLR0917
    fields: list[str], d: Delimiters, field: int, rep: int, comp: int, sub: int
) -> str:
    """The escaped text at compiled path indices (see `thumpflow.hl7v2.path`)."""
    if field >= len(fields):
        return ""
    value = fields[field]
    if not value:
        return ""
    if field <= 2 and fields[1] == d.field:
        return value if rep <= 1 and comp <= 1 and sub <= 1 else ""
    if rep > 1 or d.repetition in value:
        value = _pick(value, d.repetition, rep or 1)
    if comp:
        value = _pick(value, d.component, comp)
        if sub:
            value = _pick(value, d.subcomponent, sub)
    return value


def elements(  # noqa: PLR0917
    fields: list[str], d: Delimiters, field: int, rep: int, comp: int, sub: int
) -> list[str]:
    """Every repetition of a field, each narrowed to `comp`/`sub`, escaped."""
    if rep:
        raise ValueError("get_all takes a path without a repetition index")
    value = fields[field] if field < len(fields) else ""
    if not value:
        return []
    if field <= 2 and fields[1] == d.field:
        return [value] if comp <= 1 and sub <= 1 else [""]
    reps = value.split(d.repetition)
    if comp:
        reps = [_pick(r, d.component, comp) for r in reps]
        if sub:
            reps = [_pick(r, d.subcomponent, sub) for r in reps]
    return reps


def _pick(value: str, sep: str, index: int) -> str:
    if sep in value:
        parts = value.split(sep)
        return parts[index - 1] if index <= len(parts) else ""
    return value if index == 1 else ""


class Segment:
    """A segment. Fields are split on first access; `get` and friends take
    segment-relative paths `FIELD[repetition].COMPONENT.SUBCOMPONENT`.

    Numbering follows the standard: in MSH, FHS and BHS field 1 is the field
    separator and field 2 the encoding characters, both returned literally.
    Reads never raise for absent data (they return "" or []); malformed paths
    raise ValueError. `charset` (a Python codec, for `\\X..\\` escapes) applies to
    a standalone segment; one inside a message uses the message's encoding.
    Writes through a segment obtained from a `Message` are reflected in that
    message's serialisation.
    """

    __slots__ = ("_charset", "_delims", "_fields", "_header", "_owner", "_pos", "_text", "id")

    def __init__(
        self,
        text: str,
        delims: Delimiters,
        *,
        charset: str = "utf-8",
        owner: SegmentOwner | None = None,
        position: int = 0,
        fields: list[str] | None = None,
    ) -> None:
        self._text = text
        self._delims = delims
        self._charset = charset
        self._owner = owner
        self._pos = position
        self._fields = fields
        self.id = segment_id(text, delims.field)
        self._header = self.id in HEADER_SEGMENTS

    @property
    def text(self) -> str:
        """The segment as on the wire (escaped), without a segment separator."""
        return self._text

    @property
    def field_count(self) -> int:
        """The number of fields present, trailing empty ones included."""
        return len(self._split()) - 1

    def _split(self) -> list[str]:
        fields = self._fields
        if fields is None:
            fields = self._fields = split_fields(self._text, self._delims.field)
        return fields

    def raw_at(self, field: int, rep: int, comp: int, sub: int) -> str:
        """The escaped text at compiled indices (see `thumpflow.hl7v2.path`)."""
        return element(self._fields or self._split(), self._delims, field, rep, comp, sub)

    def all_at(self, field: int, rep: int, comp: int, sub: int) -> list[str]:
        """Every repetition of a field, each narrowed to `comp`/`sub`, escaped."""
        return elements(self._split(), self._delims, field, rep, comp, sub)

    def unescape(self, raw: str) -> str:
        """Wire text of this segment's message decoded (see `escape.unescape`)."""
        if self._delims.escape not in raw:
            return raw
        owner = self._owner
        return unescape(raw, self._delims, self._charset if owner is None else owner.encoding)

    def get(self, path: str) -> str:
        """The unescaped text at `path` (e.g. `3[2].1`), "" when absent.

        A path that stops above the leaf returns that element whole, lower
        delimiters included (`get("5")` of `Smith^John` is `Smith^John`); escaped
        delimiters inside it are unescaped too, so use `get_raw` to split further.
        """
        return self.unescape(self.raw_at(*compile_field_path(path)))

    def get_raw(self, path: str) -> str:
        """The text at `path` exactly as on the wire (escaped), "" when absent."""
        return self.raw_at(*compile_field_path(path))

    def get_all(self, path: str) -> list[str]:
        """Every repetition of the field at `path` (no repetition index), each
        narrowed to the addressed component/subcomponent and unescaped."""
        return [self.unescape(r) for r in self.all_at(*compile_field_path(path))]

    def set(self, path: str, value: str) -> None:
        """Store `value` as text at `path`, escaping it; missing fields,
        repetitions, components and subcomponents are created empty.

        A path without repetition and component replaces the whole field (all
        repetitions); with a component but no repetition it writes in the first
        repetition. Field 1 and 2 of MSH/FHS/BHS (the delimiters) raise ValueError.
        """
        self.set_at(*compile_field_path(path), escape(value, self._delims))

    def set_raw(self, path: str, value: str) -> None:
        """Store wire-format `value` at `path` as `set` does, without escaping.

        ValueError if `value` holds a field separator, CR or LF, or a delimiter
        of the addressed level or above (e.g. a component separator when a
        component is addressed), since it would change the structure around it.
        """
        field, rep, comp, sub = compile_field_path(path)
        d = self._delims
        forbidden = d.field + "\r\n"
        if rep or comp:
            forbidden += d.repetition
        if comp:
            forbidden += d.component
        if sub:
            forbidden += d.subcomponent
        if any(c in value for c in forbidden):
            raise ValueError(f"raw value holds delimiters not allowed at path {path!r}")
        self.set_at(field, rep, comp, sub, value)

    def set_at(self, field: int, rep: int, comp: int, sub: int, value: str) -> None:
        """Store already-escaped `value` at compiled indices (see `set`)."""
        if self._header and field <= 2:
            raise ValueError(f"{self.id}-1 and {self.id}-2 (the delimiters) cannot be set")
        d = self._delims
        fields = list(self._split())
        if len(fields) <= field:
            fields.extend([""] * (field + 1 - len(fields)))
        if rep == 0 and comp == 0:
            fields[field] = value
        else:
            reps = fields[field].split(d.repetition)
            ri = (rep or 1) - 1
            if len(reps) <= ri:
                reps.extend([""] * (ri + 1 - len(reps)))
            if comp == 0:
                reps[ri] = value
            else:
                comps = reps[ri].split(d.component)
                if len(comps) < comp:
                    comps.extend([""] * (comp - len(comps)))
                if sub == 0:
                    comps[comp - 1] = value
                else:
                    subs = comps[comp - 1].split(d.subcomponent)
                    if len(subs) < sub:
                        subs.extend([""] * (sub - len(subs)))
                    subs[sub - 1] = value
                    comps[comp - 1] = d.subcomponent.join(subs)
                reps[ri] = d.component.join(comps)
            fields[field] = d.repetition.join(reps)
        self._fields = fields
        wire = [fields[0], *fields[2:]] if self._header else fields
        self._text = d.field.join(wire)
        if self._owner is not None:
            self._owner.segment_changed(self._pos, self._text, fields)

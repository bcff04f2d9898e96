"""HL7 v2 escape sequences (chapter 2.7).

`unescape(escape(s, d), d) == s` holds for every string `s` and delimiter set `d`.
`unescape` never raises: sequences it does not interpret (formatting such as
`\\H\\`, `\\.sp\\`, charset switches `\\C..\\`, `\\M..\\`, locally defined `\\Z..\\`,
unknown ones) and malformed ones (no closing escape character, bad hex) are kept
verbatim.
"""

from __future__ import annotations

import re

from thumpflow.hl7v2.delimiters import Delimiters

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def escape(text: str, delims: Delimiters) -> str:
    """`text` with every delimiter character, the escape character itself, the
    truncation character (v2.7), CR (`\\X0D\\`) and LF (`\\X0A\\`) escaped, ready
    to be placed in one field, component or subcomponent."""
    return text.translate(delims._escape_map)


def unescape(text: str, delims: Delimiters, charset: str = "utf-8") -> str:
    """`text` (as on the wire) with escape sequences replaced by what they stand for.

    `\\F\\ \\S\\ \\T\\ \\R\\ \\E\\` become the delimiters, `\\P\\` the truncation
    character (when the set has one), `\\.br\\` a line feed, and `\\Xhh..\\` the
    bytes it encodes decoded with the Python codec `charset` (bytes that are not
    valid in it, or an unknown codec, fall back to Latin-1 so nothing is lost).
    """
    e = delims.escape
    if e not in text:
        return text
    out: list[str] = []
    i = 0
    while True:
        j = text.find(e, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(e, j + 1)
        if k < 0:
            out.append(text[j:])
            break
        replacement = _sequence(text[j + 1 : k], delims, charset)
        out.append(text[j : k + 1] if replacement is None else replacement)
        i = k + 1
    return "".join(out)


def _sequence(body: str, d: Delimiters, charset: str) -> str | None:
    if len(body) == 1:
        if body == "F":
            return d.field
        if body == "S":
            return d.component
        if body == "T":
            return d.subcomponent
        if body == "R":
            return d.repetition
        if body == "E":
            return d.escape
        if body == "P":
            return d.truncation
        return None
    if body == ".br":
        return "\n"
    if body[:1] == "X" and _HEX.fullmatch(body, 1):
        data = bytes.fromhex(body[1:])
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            return data.decode("latin-1")
    return None

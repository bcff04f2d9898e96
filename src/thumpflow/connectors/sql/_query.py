"""Named window parameters in SQL text, and identifier quoting. Pure.

`sqlite3` takes `:name` parameters as they are; psycopg needs `%(name)s`.

A parameter is `:name` outside string literals, quoted identifiers, comments
and dollar-quoted bodies; `::type` casts and `a[lo:hi]` slices are not
parameters.
"""

from __future__ import annotations

import re

WINDOW_PARAMETERS = ("window_start", "window_end")
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_IDENTIFIER = re.compile(rf"{IDENTIFIER}(\.{IDENTIFIER})?")

_TOKEN = re.compile(
    r"""
      (?<![\w$])[Ee]'(?:[^'\\]|\\.|'')*'?         # E'...' with backslash escapes
    | '(?:[^']|'')*'?                             # string literal
    | "(?:[^"]|"")*"?                             # quoted identifier
    | --[^\n]*                                    # line comment
    | /\*.*?(?:\*/|\Z)                            # block comment
    | (?<![\w$])\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z)   # dollar quoting
    | ::                                          # cast
    | (?<!\w):(?P<name>[A-Za-z_]\w*)              # named parameter
    """,
    re.VERBOSE | re.DOTALL,
)


def _split(query: str) -> list[tuple[str, str | None]]:
    """The query as (text, None) chunks and ("", parameter name) markers, in order."""
    parts: list[tuple[str, str | None]] = []
    position = 0
    for match in _TOKEN.finditer(query):
        name = match.group("name")
        if name is None:
            continue
        parts.append((query[position : match.start()], None))
        parts.append(("", name))
        position = match.end()
    parts.append((query[position:], None))
    return parts


def parameters(query: str) -> set[str]:
    """The names of the `:name` parameters the query uses."""
    return {name for _, name in _split(query) if name is not None}


def for_psycopg(query: str) -> str:
    """The query for psycopg: `:name` becomes `%(name)s`, a literal `%` becomes `%%`."""
    return "".join(
        text.replace("%", "%%") if name is None else f"%({name})s" for text, name in _split(query)
    )


def quote(identifier: str) -> str:
    """A quoted identifier, `schema.table` quoted part by part.

    Raises ValueError for anything but letters, digits and underscores (at
    most one dot), so a name can never break out of its quotes.
    """
    if not _IDENTIFIER.fullmatch(identifier):
        raise ValueError(f"not a safe SQL identifier: {identifier!r}")
    return ".".join(f'"{part}"' for part in identifier.split("."))

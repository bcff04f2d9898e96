"""A statement with its values inlined, byte for byte as `psycopg.ClientCursor.mogrify` writes it.

The writer inlines every row it writes into its pending script (see
`_script`), and `mogrify`'s per-call work (a query object, the template
parsed, every value looked up, the text decoded and encoded again) was
about a third of the writer thread's time. `Literals` keeps, per
connection, psycopg's own dumper for each scalar type the store writes
(`str`, `int`, `float`, `bytes`, `bool`, None) and asks it to quote each
value (`Dumper.quote`, psycopg's public client-side quoting); it adds the
type cast that `mogrify` adds to a quoted value of a type other than text,
and escapes text for NUL as the connection's own text dumper does
(`escape_text`).

A list of such scalars (`ANY(?)`, `unnest(?::text[])`) is written as an
array constructor of quoted elements, `ARRAY['a',NULL]`, which the server
reads to the same array as `mogrify`'s one array literal; `mogrify` with
psycopg's array dumper was about a sixth of the writer thread's busy time.

Guarantees: every value is quoted by psycopg, never by us; a scalar is
the bytes `mogrify` would give (a test compares them on hostile values),
and a list reaches the server as the same array as through `mogrify`
(tested there); a statement with any other kind of value (an empty or
nested list or one of NULLs only, text on a connection whose encoding is not UTF-8), or a
literal `%` in its text, is left to `mogrify` (`render` returns None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.adapt import PyFormat

from thumpflow.store.postgresql._db import escape_text

_TEXT = PyFormat.TEXT
_TEXT_OID = 25
Quote = Callable[[Any], bytes]


@lru_cache(maxsize=512)
def template(query: bytes) -> tuple[bytes, ...] | None:
    """`query` (psycopg's `%s` form) split at its placeholders; None when it has
    another `%` form, which `mogrify` must read."""
    parts = tuple(query.split(b"%s"))
    if any(b"%" in part for part in parts):
        return None
    return parts


class Literals:
    """Quoting of the scalar values of one connection (see the module docstring)."""

    __slots__ = ("_quote",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        adapters = conn.adapters
        # Text goes through psycopg's default (compiled) text dumper, escaped first
        # as the connection's registered text dumper (`NulSafeTextDumper`) would.
        quote_text = self._quoting(psycopg.adapters.get_dumper(str, _TEXT)(str, conn), conn)
        ints = adapters.get_dumper(int, _TEXT)(int, conn)
        self._quote: dict[type, Quote] = {
            int: lambda value: bytes(ints.upgrade(value, _TEXT).quote(value)),
            float: self._quoting(adapters.get_dumper(float, _TEXT)(float, conn), conn),
            bytes: self._quoting(adapters.get_dumper(bytes, _TEXT)(bytes, conn), conn),
            bool: self._quoting(adapters.get_dumper(bool, _TEXT)(bool, conn), conn),
        }
        # The registered text dumper writes UTF-8 whatever the connection's encoding;
        # the default one writes that encoding: the same only when it is UTF-8.
        if conn.info.encoding == "utf-8":
            self._quote[str] = lambda value: quote_text(escape_text(value))

    @staticmethod
    def _quoting(dumper: Any, conn: psycopg.Connection[Any]) -> Quote:
        """`dumper.quote`, with the cast `mogrify` adds to a quoted value whose type
        is known and not text (`'\\x00'::bytea`)."""
        quote: Quote = dumper.quote
        oid = dumper.oid
        info = conn.adapters.types.get(oid) if oid and oid != _TEXT_OID else None
        if info is None:
            return lambda value: bytes(quote(value))
        cast = b"::" + info.name.encode("ascii")

        def quoted(value: Any) -> bytes:
            text = bytes(quote(value))
            return text + cast if text.endswith(b"'") else text

        return quoted

    def render(self, parts: tuple[bytes, ...], values: Sequence[Any]) -> bytes | None:
        """The statement `parts` (from `template`) with `values` inlined; None when
        a value is not a scalar this class quotes (the caller uses `mogrify`)."""
        if len(values) != len(parts) - 1:
            return None
        quote = self._quote
        out = [parts[0]]
        for value, part in zip(values, parts[1:], strict=True):
            if value is None:
                out.append(b"NULL")
            else:
                quoting = quote.get(type(value))
                if quoting is not None:
                    out.append(quoting(value))
                elif type(value) is list and value:
                    elements = self._elements(value)
                    if elements is None:
                        return None
                    out.append(elements)
                else:
                    return None
            out.append(part)
        return b"".join(out)

    def _elements(self, values: list[Any]) -> bytes | None:
        """`ARRAY[...]` of the quoted `values`; None when one is not a scalar, or
        when all are NULL (the array's type would not be known)."""
        quote = self._quote
        out = []
        typed = False
        for value in values:
            if value is None:
                out.append(b"NULL")
                continue
            quoting = quote.get(type(value))
            if quoting is None:
                return None
            out.append(quoting(value))
            typed = True
        return b"ARRAY[" + b",".join(out) + b"]" if typed else None

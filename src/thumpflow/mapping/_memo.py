"""Results of pure data type maps, remembered across messages.

Hospital traffic repeats the same coded elements message after message (a
LOINC code, a unit, an HL7 table's code), so the generated function of a
data type map marked `memo: true` is not run again for an element text it
has converted before: its result is kept, as compact JSON, in a memo, and
each use gets a new copy (`recall`), so a caller writing into what it got
changes nothing kept.

Guarantees:

- Only pure data type maps may be marked (`Compiler` checks, when the maps
  compile, and refuses an impure one): those that build no resource, read
  no other part of the message and call no Python hook, nor any map that
  does. Their result depends only
  on the element's text and on what `context_key` holds: the delimiters and
  truncation character, the message's character set (unescaping), its
  default timezone (MSH-7) and the naming-system table in use (its identity
  and the process-wide tables' generation). A memo serves one such context.
- A result is kept only when it is made of JSON's types (dicts with text
  keys, lists, text, booleans, integers, finite floats, None), which JSON
  gives back equal: one holding anything else (a `FhirDecimal`, NaN) is not
  kept, and is computed every time. (Generated maps make no tuples.)
- Memory is bounded: at most `CONTEXTS` memos, each of at most `ENTRIES`
  results of elements of at most `LONGEST` characters; a full memo (or set of
  memos) is emptied and fills again.
- Thread safe under the GIL: every step is one dict operation; a memo
  emptied while another conversion reads it only costs that one a miss.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from thumpflow.hl7v2.delimiters import Delimiters
from thumpflow.mapping._naming import table_in_use

CONTEXTS = 8
ENTRIES = 8192
LONGEST = 256

Memo = dict[tuple[int, str], bytes]

_memos: dict[tuple[Any, ...], Memo] = {}
_enabled = True
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)

recall = orjson.loads

# What makes a generated data type function impure: building a resource,
# reading the message, a hook; and the data type functions it calls.
_IMPURE = re.compile(r"\bx\.(?:add|refs|mget|sget)\b|\bH_")
_CALLED = re.compile(r"\b(dt_\w+)\(")


def is_pure(source: str, fname: str, pure: set[str]) -> bool:
    """Whether generated data type function `fname` (its `source`) builds no
    resource, reads nothing but its element (and what `context_key` holds),
    calls no hook and calls only itself and functions in `pure`."""
    if _IMPURE.search(source):
        return False
    return all(name in pure or name == fname for name in _CALLED.findall(source))


def context_key(delimiters: Delimiters, encoding: str, tz: str) -> tuple[Any, ...]:
    """What a pure data type map's result depends on besides the element's
    text, for a message with these delimiters, character set and default
    timezone, converted with the naming-system table in use."""
    d = delimiters
    table, generation = table_in_use()
    return (
        d.repetition,
        d.component,
        d.subcomponent,
        d.escape,
        d.truncation,
        encoding,
        tz,
        table,
        generation,
    )


def memo_for(key: tuple[Any, ...]) -> Memo:
    """The memo of the results converted in the context `key` (see `context_key`)."""
    memo = _memos.get(key)
    if memo is None:
        if len(_memos) >= CONTEXTS:
            _memos.clear()
        memo = _memos[key] = {}
    return memo


def remember(memo: Memo, key: tuple[int, str], value: Any) -> Any:
    """Keep `value` (the result for `key`: a memo slot, an element's text) in
    `memo` when JSON holds it exactly and the text is short enough (and
    memoising is on); returns `value`."""
    if len(key[1]) > LONGEST or not _enabled:
        return value
    try:
        kept = orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return value
    if b"null" in kept and recall(kept) != value:
        return value
    if len(memo) >= ENTRIES:
        memo.clear()
    memo[key] = kept
    return value


def forget() -> None:
    """Drop every result kept (for measurements: as if no element had been met before)."""
    _memos.clear()


@contextmanager
def memoising(enabled: bool) -> Iterator[None]:
    """Conversions inside run with memoising on or off (process-wide; for tests
    and measurements); what was kept is dropped either way."""
    global _enabled
    before = _enabled
    _enabled = enabled
    _memos.clear()
    try:
        yield
    finally:
        _enabled = before
        _memos.clear()

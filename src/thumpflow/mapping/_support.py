"""What the generated map functions and the engine share at run time.

`Ctx` is the per-message state a generated function reads (delimiters,
unescaping, the default timezone, message-level reads, registration of
resources built from data types); the aliases name the generated functions'
signatures; `read_keys` reads what a function has written.
`component_text` reads one component for the data type maps written in
Python; `as_create` turns a conditional update into a create-if-absent.
`MapError` is raised, at import, for a map that cannot be compiled.
`has_controls` and `NO_CONTROLS` find and drop the control characters FHIR's
strings refuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from thumpflow.core.errors import ThumpflowError

if TYPE_CHECKING:
    from thumpflow.hl7v2 import Message

# The C0 control characters FHIR's string types refuse (all but tab, LF and
# CR): dropped from what a message says, raw or as a `\Xhh\` escape.
_CONTROLS = "".join(map(chr, [*range(9), 11, 12, *range(14, 32)]))
_CONTROL = re.compile(f"[{re.escape(_CONTROLS)}]")
# Every control byte to NUL (itself one), every other byte to itself.
_CONTROL_TO_NUL = bytes.maketrans(_CONTROLS.encode("ascii"), bytes(len(_CONTROLS)))
NO_CONTROLS = str.maketrans("", "", _CONTROLS)


def has_controls(message: Message) -> bool:
    """Whether the message may hold a control character FHIR refuses: its bytes hold one
    of those byte values, or, for text that its character set cannot encode (given to
    `Message.parse` as str), its text holds one of those characters."""
    try:
        raw = message.to_bytes()
    except UnicodeError:
        return _CONTROL.search(message.to_str()) is not None
    return b"\x00" in raw.translate(_CONTROL_TO_NUL)


class MapError(ThumpflowError):
    """A map file that cannot be compiled; names the map and the entry."""


class Ctx:
    """Per-message evaluation state read by generated functions: delimiters,
    the unescape function, the default timezone, message-level reads and the
    registration of resources built from data types (see `_engine`), and
    `refs`: the Reference each element that built such a resource gave, by
    (data type function, element text), so an element met again in the
    message is not built again (the result would be the same resource);
    `memo`: the results of pure data type maps kept across messages of the
    same context (see `_memo`); `sget`: reads in the scope the rule being
    applied runs in (its group instance, else the message; `_Run.scope_get`)."""

    __slots__ = (
        "add",
        "comp",
        "esc",
        "memo",
        "mget",
        "refs",
        "rep",
        "sget",
        "sub",
        "tz",
        "unescape",
    )

    def __init__(  # noqa: PLR0917
        self,
        rep: str,
        comp: str,
        sub: str,
        esc: str,
        unescape: Callable[[str], str],
        tz: str,
        mget: Callable[[str], str],
        add: Callable[..., dict[str, Any]],
    ) -> None:
        self.rep = rep
        self.comp = comp
        self.sub = sub
        self.esc = esc
        self.unescape = unescape
        self.tz = tz
        self.mget = mget
        self.add = add
        self.refs: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.memo: dict[tuple[int, str], bytes] = {}
        self.sget = mget


Parts = list[str]
Fill = Callable[[Parts, Ctx, dict[str, Any]], tuple[str, ...] | None]


class Condition(NamedTuple):
    """A condition as code to inline: `prelude` (lines) reads the elements
    `expression` tests from a segment's fields `p`, with the context's
    locals (`_codegen.context_locals`) defined."""

    prelude: tuple[str, ...]
    expression: str


# A message map's program (see `_program`): (run, segment ids, segments'
# fields, positions of each segment id) -> None.
Program = Callable[[Any, list[str], list[Parts], dict[str, list[int]]], None]


def component_text(components: Parts, number: int, x: Ctx) -> str:
    """The unescaped, stripped text of component `number` (from 1) of an
    element split into its (escaped) components: its first subcomponent, ""
    when the component is absent or null (`""`)."""
    raw = components[number - 1] if len(components) >= number else ""
    if not raw:
        return ""
    first = raw.split(x.sub, 1)[0]
    if first == '""':
        return ""
    return (x.unescape(first) if x.esc in first else first).strip()


def gather_items(held: dict[str, Any], met: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Append to each list `keys` of resource `held` the items of the same
    resource `met` again that it does not hold yet (`_Run.add_datatype_resource`)."""
    for key in keys:
        for item in met.get(key) or ():
            items = held.setdefault(key, [])
            if item not in items:
                items.append(item)


def read_keys(node: Any, *keys: str) -> Any:
    """The value under `keys` (nested dict keys), or None (`_out` in generated code)."""
    for key in keys:
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node


def as_create(entry: dict[str, Any]) -> None:
    """Make a transaction entry's conditional update (`PUT Type?identifier=`)
    a create that happens only when no resource holds that identifier (`POST
    Type` with `ifNoneExist`): a stored resource is then referred to as it
    is, never rewritten (FHIR R4 http.html#ccreate). An entry without a
    request (a collection) or already a create, or one updating by id, is
    left as it is."""
    request = entry.get("request")
    if request is None or request["method"] != "PUT":
        return
    rtype, query, search = request["url"].partition("?")
    if query:
        entry["request"] = {"method": "POST", "url": rtype, "ifNoneExist": search}

"""Identifier systems for HL7 v2 namespaces (HD-1, EI-2, CX-4.1): the naming-system tables.

`system_for(namespace)` gives the `Identifier.system` for an assigning
authority's namespace id, always a valid absolute URI:

1. a namespace that is itself an ISO OID (`2.16.840.1.113883.4.6`) →
   `urn:oid:<oid>`; a UUID → `urn:uuid:<uuid>`; an absolute URI without
   spaces (`http://...`, `urn:...`) → itself;
2. a namespace listed in the table in use (exact match, then
   case-insensitive) → the URI listed;
3. anything else → the table's base followed by the namespace,
   percent-encoded (`GHH LAB` → `http://thumpflow.invalid/naming-system/GHH%20LAB`).
   The `.invalid` host (RFC 2606) says plainly that the system is not a
   published one: list the namespace in the table to give it its real URI.

The table in use is the process-wide one (section `naming_systems` of the
maps, `maps/naming-systems.yaml`, plus what `configure_naming_systems`
adds), unless a conversion runs inside `using_naming_systems(table)`: then
it is `table`, a `NamingTable` made by `naming_table` whose entries (and
base, when it has one) come before the process-wide table's. That is how a
channel has a table of its own when two senders use the same namespace for
different authorities. The scope is a context variable, so concurrent
conversions in other threads or tasks keep their own.

Results are memoised per table and namespace; `configure_naming_systems`
invalidates every memo (conversion is pure given the tables).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import quote

import yaml

DEFAULT_BASE = "http://thumpflow.invalid/naming-system/"

_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NO_SPACE = re.compile(r"\S+")
# An absolute URI: a scheme (RFC 3986 section 3.1), a colon and something after it.
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S")
_URI = re.compile(r"(?:https?://[^\s]+|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[^\s]+)")
_MEMO_LIMIT = 65536


class NamingTable:
    """Namespace → system URI entries and a base, over an optional parent table.

    Lookups try this table's entries (exact, then case-insensitive), then the
    parent's; the base is this table's, else the parent's.
    """

    __slots__ = ("_base", "_exact", "_folded", "_generation", "_memo", "_parent")

    def __init__(
        self,
        entries: Mapping[str, str] | None = None,
        *,
        base: str | None = None,
        parent: NamingTable | None = None,
    ) -> None:
        self._exact: dict[str, str] = dict(entries or {})
        self._folded = {ns.casefold(): uri for ns, uri in self._exact.items()}
        self._base = base
        self._parent = parent
        self._memo: dict[str, str] = {}
        self._generation = _generation

    def _listed(self, namespace: str) -> str | None:
        found = self._exact.get(namespace) or self._folded.get(namespace.casefold())
        if found is None and self._parent is not None:
            return self._parent._listed(namespace)
        return found

    def _base_uri(self) -> str:
        if self._base is not None:
            return self._base
        return DEFAULT_BASE if self._parent is None else self._parent._base_uri()

    def system_for(self, namespace: str) -> str:
        """The system URI for `namespace` (stripped, non-empty); see the module docstring."""
        if self._generation != _generation:
            self._memo.clear()
            self._generation = _generation
        found = self._memo.get(namespace)
        if found is not None:
            return found
        if _OID.fullmatch(namespace):
            found = self._listed(namespace) or "urn:oid:" + namespace
        elif _UUID.fullmatch(namespace):
            found = "urn:uuid:" + namespace.lower()
        elif _URI.fullmatch(namespace):
            found = namespace
        else:
            found = self._listed(namespace) or self._base_uri() + quote(namespace, safe="")
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[namespace] = found
        return found


_generation = 0
_PROCESS = NamingTable()
_ACTIVE: ContextVar[NamingTable] = ContextVar("thumpflow_naming_table", default=_PROCESS)


def _checked(namespace: str, uri: object, where: str) -> str:
    if not isinstance(uri, str) or _URI.fullmatch(uri) is None:
        raise ValueError(f"{where}: naming system for {namespace!r} is not an absolute URI")
    return uri


def _checked_base(base: str | None, where: str) -> str | None:
    if base is not None:
        _checked("(default base)", base + "x", where)
    return base


def configure_naming_systems(
    table: Mapping[str, str], *, base: str | None = None, where: str = "naming systems"
) -> None:
    """Add `table` (namespace → system URI) to the process-wide table and,
    with `base`, replace its base. Raises ValueError naming `where` and the
    namespace for a URI that is not absolute (nothing is changed then)."""
    global _generation
    checked = {str(ns): _checked(str(ns), uri, where) for ns, uri in table.items()}
    if _checked_base(base, where) is not None:
        _PROCESS._base = base
    _PROCESS._exact.update(checked)
    _PROCESS._folded.update({ns.casefold(): uri for ns, uri in checked.items()})
    _generation += 1


def naming_table(
    table: Mapping[str, str], *, base: str | None = None, where: str = "naming systems"
) -> NamingTable:
    """A table whose entries and `base` come before the process-wide table's
    (for `using_naming_systems`). Raises ValueError like `configure_naming_systems`."""
    checked = {str(ns): _checked(str(ns), uri, where) for ns, uri in table.items()}
    return NamingTable(checked, base=_checked_base(base, where), parent=_PROCESS)


@contextmanager
def using_naming_systems(table: NamingTable | None) -> Iterator[None]:
    """Conversions inside use `table` (None: the process-wide table); restored after."""
    token = _ACTIVE.set(_PROCESS if table is None else table)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def read_naming_systems(path: Path) -> dict[str, str]:
    """The table of YAML file `path` (namespace: URI). Raises ValueError naming the file
    (and the line, for an entry) when it cannot be read, is not such a mapping, lists
    a namespace twice or a URI that is not absolute."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read naming systems: {type(exc).__name__}") from None
    if not isinstance(node, yaml.MappingNode):
        raise ValueError(f"{path}: naming systems must be a mapping of namespace to URI")
    table: dict[str, str] = {}
    for key, value in node.value:
        where = f"{path}:{key.start_mark.line + 1}"
        if not isinstance(key, yaml.ScalarNode):
            raise ValueError(f"{where}: a namespace must be a plain text")
        if key.value in table:
            raise ValueError(f"{where}: namespace {key.value!r} is listed twice")
        uri = value.value if isinstance(value, yaml.ScalarNode) else None
        table[key.value] = _checked(key.value, uri, where)
    return table


def table_in_use() -> tuple[NamingTable, int]:
    """The table in use and the generation of the process-wide table: what
    `system_for` gives depends on nothing else."""
    return _ACTIVE.get(), _generation


def system_for(namespace: str) -> str:
    """The system URI for `namespace` in the table in use; see the module docstring."""
    return _ACTIVE.get().system_for(namespace)


def uri(text: str, default_tz: str = "") -> str | None:
    """Map primitive `uri`: the stripped text when it is a URI FHIR accepts (no
    whitespace), and a `urn:oid:` or `urn:uuid:` one only with a well-formed
    OID or UUID after the prefix; else None, so the element is left out (and a
    map's fallback, such as the naming-system table, applies). A sender's HD-2
    marked ISO but holding no OID never becomes an invalid `urn:oid:` system;
    one that carries the prefix itself (`urn:oid:1.2.36.1`, as some v2.8
    senders write it) gets it once (maps write `urn:oid:{4.2}`); an OID the
    naming-system table lists becomes the URI listed (FHIR: a code system or
    identifier system with a URI is named by it, not by its OID)."""
    text = text.strip()
    if _NO_SPACE.fullmatch(text) is None:
        return None
    if not text.startswith("urn:"):
        return text
    for prefix, form in (("urn:oid:", _OID), ("urn:uuid:", _UUID)):
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if rest.startswith(prefix):
                rest = rest[len(prefix) :]
            if form.fullmatch(rest) is None:
                return None
            # An OID the table lists (NPI, SSN ...) is its canonical URI.
            return system_for(rest) if prefix == "urn:oid:" else prefix + rest
    return text


def url(text: str, default_tz: str = "") -> str | None:
    """Map primitive `url` (R4's `url`, a locator: RFC 1738 URLs always name
    their scheme): what `uri` gives when it is absolute (`mllp://host:2575`,
    `https://...`, `urn:oid:...`); None for anything else, such as a host name
    alone or a CLIA number written where a network address goes, so the
    element is left out (and its fallback, such as data-absent-reason, applies)."""
    found = uri(text, default_tz)
    return found if found is not None and _ABSOLUTE.match(found) else None


def naming_system(text: str, default_tz: str = "") -> str | None:
    """Map primitive `naming_system`: `system_for` of the stripped text, None when empty."""
    text = text.strip()
    return system_for(text) if text else None

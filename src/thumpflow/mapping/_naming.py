"""Identifier systems for HL7 v2 namespaces (HD-1, EI-2, CX-4.1): the naming-system table.

`system_for(namespace)` gives the `Identifier.system` for an assigning
authority's namespace id, always a valid absolute URI:

1. a namespace that is itself an ISO OID (`2.16.840.1.113883.4.6`) →
   `urn:oid:<oid>`; a UUID → `urn:uuid:<uuid>`; an absolute URI without
   spaces (`http://...`, `urn:...`) → itself;
2. a namespace listed in the table (section `naming_systems` of the maps,
   `maps/naming-systems.yaml`,
   plus what `configure_naming_systems` adds; exact match, then
   case-insensitive) → the URI listed;
3. anything else → the default base followed by the namespace,
   percent-encoded (`GHH LAB` → `http://thumpflow.invalid/naming-system/GHH%20LAB`).
   The `.invalid` host (RFC 2606) says plainly that the system is not a
   published one: list the namespace in the table to give it its real URI.

Results are memoised per namespace; `configure_naming_systems` clears the
memo. The table is process-wide (conversion is pure given the table).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import yaml

DEFAULT_BASE = "http://thumpflow.invalid/naming-system/"

_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_URI = re.compile(r"(?:https?://[^\s]+|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[^\s]+)")


class _Table:
    __slots__ = ("base", "exact", "folded", "memo")

    def __init__(self) -> None:
        self.exact: dict[str, str] = {}
        self.folded: dict[str, str] = {}
        self.memo: dict[str, str] = {}
        self.base = DEFAULT_BASE


_TABLE = _Table()


def _checked(namespace: str, uri: str, where: str) -> str:
    if not isinstance(uri, str) or _URI.fullmatch(uri) is None:
        raise ValueError(f"{where}: naming system for {namespace!r} is not an absolute URI")
    return uri


def configure_naming_systems(
    table: Mapping[str, str], *, base: str | None = None, where: str = "naming systems"
) -> None:
    """Add `table` (namespace → system URI) to the naming-system table and,
    with `base`, replace the default base. Raises ValueError naming `where`
    and the namespace for a URI that is not absolute (nothing is changed)."""
    checked = {str(ns): _checked(str(ns), uri, where) for ns, uri in table.items()}
    if base is not None:
        _checked("(default base)", base + "x", where)
        _TABLE.base = base
    _TABLE.exact.update(checked)
    _TABLE.folded.update({ns.casefold(): uri for ns, uri in checked.items()})
    _TABLE.memo.clear()


def read_naming_systems(path: Path) -> dict[str, str]:
    """The table of YAML file `path` (namespace: URI). Raises ValueError naming the file
    when it cannot be read, is not such a mapping, or lists a URI that is not absolute."""
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read naming systems: {type(exc).__name__}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path}: naming systems must be a mapping of namespace to URI")
    return {str(ns): _checked(str(ns), uri, str(path)) for ns, uri in table.items()}


def system_for(namespace: str) -> str:
    """The system URI for `namespace` (stripped, non-empty); see the module docstring."""
    found = _TABLE.memo.get(namespace)
    if found is not None:
        return found
    if _OID.fullmatch(namespace):
        found = "urn:oid:" + namespace
    elif _UUID.fullmatch(namespace):
        found = "urn:uuid:" + namespace.lower()
    elif _URI.fullmatch(namespace):
        found = namespace
    else:
        found = _TABLE.exact.get(namespace) or _TABLE.folded.get(namespace.casefold())
        if found is None:
            found = _TABLE.base + quote(namespace, safe="")
    if len(_TABLE.memo) < 65536:
        _TABLE.memo[namespace] = found
    return found


def naming_system(text: str, default_tz: str = "") -> str | None:
    """Map primitive `naming_system`: `system_for` of the stripped text, None when empty."""
    text = text.strip()
    return system_for(text) if text else None

"""Field paths: `SEG[occurrence]-FIELD[repetition].COMPONENT.SUBCOMPONENT`.

All indices are 1-based. A compiled path is a tuple
`(segment, occurrence, field, repetition, component, subcomponent)` where
repetition 0 means "not given" (read as the first), and component or
subcomponent 0 means "not addressed" (the whole enclosing element).
Malformed paths raise ValueError naming the path (paths are code, not data).
Compiled paths are cached, so repeated lookups cost one dict access.
"""

from __future__ import annotations

import re

MAX_INDEX = 9999

Path = tuple[str, int, int, int, int, int]
FieldPath = tuple[int, int, int, int]

_PATH = re.compile(
    r"([A-Z][A-Z0-9]{2})(?:\[([0-9]+)\])?-([0-9]+)(?:\[([0-9]+)\])?(?:\.([0-9]+)(?:\.([0-9]+))?)?"
)
_FIELD_PATH = re.compile(r"([0-9]+)(?:\[([0-9]+)\])?(?:\.([0-9]+)(?:\.([0-9]+))?)?")
_CACHE_LIMIT = 4096
_paths: dict[str, Path] = {}
_field_paths: dict[str, FieldPath] = {}


def _index(text: str | None, path: str, default: int) -> int:
    if text is None:
        return default
    value = int(text)
    if not 1 <= value <= MAX_INDEX:
        raise ValueError(f"index out of range 1..{MAX_INDEX} in path {path!r}")
    return value


def compile_path(path: str) -> Path:
    """The compiled form of a message path such as `PID-3[2].1` or `OBX[3]-5`."""
    compiled = _paths.get(path)
    if compiled is not None:
        return compiled
    m = _PATH.fullmatch(path)
    if m is None:
        raise ValueError(f"malformed HL7 path {path!r}; expected SEG[n]-FIELD[n].COMP.SUB")
    seg, occ, fld, rep, comp, sub = m.groups()
    compiled = (
        seg,
        _index(occ, path, 1),
        _index(fld, path, 0),
        _index(rep, path, 0),
        _index(comp, path, 0),
        _index(sub, path, 0),
    )
    if len(_paths) >= _CACHE_LIMIT:
        _paths.clear()
    _paths[path] = compiled
    return compiled


def compile_field_path(path: str) -> FieldPath:
    """The compiled form of a segment-relative path such as `3[2].1` or `5.1.1`."""
    compiled = _field_paths.get(path)
    if compiled is not None:
        return compiled
    m = _FIELD_PATH.fullmatch(path)
    if m is None:
        raise ValueError(f"malformed field path {path!r}; expected FIELD[n].COMP.SUB")
    fld, rep, comp, sub = m.groups()
    compiled = (
        _index(fld, path, 0),
        _index(rep, path, 0),
        _index(comp, path, 0),
        _index(sub, path, 0),
    )
    if len(_field_paths) >= _CACHE_LIMIT:
        _field_paths.clear()
    _field_paths[path] = compiled
    return compiled

"""What a conversion run keeps of the resources it builds, and where rules apply.

`Built` is one resource of the Bundle with its id, the text a Reference to
it holds and its Bundle entry; `search_escape` escapes a business identifier
for a search URL; `segment_positions` and `group_instances` find the
segments rules apply to (by segment id, by group instance, `with_leading`
the instance an optional start segment leaves open, `carried` the enclosing
scope's segments each instance holds too), `skipped` those
of a group hidden from them, `anchors_of` the segments a `follows` rule's
segments belong to, `first_anchored` the one segment a `follows` rule
without `each` applies to, `drop_claimed` the identifiers of a resource
another holds (`identifier_keys` them by type, system and value),
`content_text` and `alias` what `_Run.register` compares and returns for
alike resources. Pure helpers of `_engine` and the programs (`_program`):
no I/O, nothing kept between messages.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from thumpflow.fhir import FhirDecimal, deterministic_id


class Built:
    """One resource of the Bundle: its id, the text a Reference to it holds
    (`urn:uuid:<id>`, in a batch `Type/<id>`), its Bundle entry, the segment
    (index in the message) it was built from (-1: built by a data type map)
    and the one a `follows` rule's segment follows (-1: none).

    Made empty and then given every attribute (by `_engine._Run.register`,
    its only maker): a class without `__init__` is made without a call of
    Python code, a quarter of the cost of registering a resource."""

    __slots__ = ("anchor", "entry", "ref", "resource", "rid", "seg")

    resource: dict[str, Any]
    rid: str
    ref: str
    entry: dict[str, Any]
    seg: int
    anchor: int


_SEARCH_SAFE = re.compile(r"[A-Za-z0-9:/._~-]*")


def search_escape(text: str) -> str:
    """`text` as a token search parameter value (FHIR escapes, then URL quoting)."""
    # ASCII letters and digits only (most identifiers) need no regex to tell.
    if (text.isalnum() and text.isascii()) or _SEARCH_SAFE.fullmatch(text):
        return text
    for ch in ("\\", "|", ",", "$"):
        text = text.replace(ch, "\\" + ch)
    return quote(text, safe=":/.-_~")


def segment_positions(ids: list[str]) -> dict[str, list[int]]:
    """The positions in `ids` of each segment id."""
    at: dict[str, list[int]] = {}
    for pos, sid in enumerate(ids):
        found = at.get(sid)
        if found is None:
            at[sid] = [pos]
        else:
            found.append(pos)
    return at


def group_instances(
    segs: list[int], ids_of: list[str], starts: tuple[str, ...], runs: bool = False
) -> list[list[int]]:
    """Split `segs` into group instances: a start segment opens a new instance
    unless it continues the current one in `starts` order (ORC then OBR), or,
    with `runs`, comes right after a segment of its own id (RAS's
    ADMINISTRATION, `{RXA} RXR`: a run of RXAs is one instance)."""
    instances: list[list[int]] = []
    current: list[int] | None = None
    seen: set[str] = set()
    high = -1
    last = ""
    for i in segs:
        sid = ids_of[i]
        if sid in starts:
            k = starts.index(sid)
            if current is None or (sid in seen and not (runs and last == sid)) or k < high:
                current = []
                instances.append(current)
                seen = set()
                high = -1
            seen.add(sid)
            high = max(high, k)
        if current is not None:
            current.append(i)
        last = sid
    return instances


def carried(
    segs: list[int], ids_of: list[str], instances: list[list[int]], carry: tuple[str, ...]
) -> list[list[int]]:
    """`instances` (of `segs`), each holding too, before its own segments, the
    first segment of `segs` of each id in `carry` that comes before it and
    that it lacks: a nested group's view of its enclosing instance (RAS: each
    ADMINISTRATION sees its ORDER's ORC)."""
    firsts: list[int] = []
    for sid in carry:
        firsts.extend(next(([i] for i in segs if ids_of[i] == sid), []))
    firsts.sort()
    out: list[list[int]] = []
    for instance in instances:
        own = {ids_of[i] for i in instance}
        head = [i for i in firsts if i < instance[0] and ids_of[i] not in own]
        out.append(head + instance if head else instance)
    return out


def with_leading(
    segs: list[int], ids_of: list[str], instances: list[list[int]], after: tuple[str, ...]
) -> list[list[int]]:
    """`instances` (of `segs`) preceded by the segments before the first of
    them (all of `segs` when there is none) that come after `segs`' opening
    run of `after` ids, as one instance of its own when there are any: a
    group whose start segment is optional (BAR's VISIT without PV1, before a
    visit with one)."""
    end = instances[0][0] if instances else -1
    lead: list[int] = []
    for i in segs:
        if i == end:
            break
        if lead or ids_of[i] not in after:
            lead.append(i)
    return [lead, *instances] if lead else instances


def skipped(
    ids_of: list[str], starts: tuple[str, ...], after: tuple[str, ...], ends: tuple[str, ...]
) -> list[int]:
    """The positions in `ids_of` of a skipped group's segments (see
    `_rules.Skip`): once a segment of `after` has come, each segment of
    `starts` opens an instance, which holds every segment up to the next of
    `ends` (not included), else to the message's end."""
    found: list[int] = []
    seen = inside = False
    for pos, sid in enumerate(ids_of):
        if inside and sid in ends:
            inside = False
        elif not inside and seen and sid in starts:
            inside = True
        if inside:
            found.append(pos)
        elif sid in after:
            seen = True
    return found


def anchors_of(
    ids_of: list[str], segs: list[int], positions: list[int], follows: tuple[str, ...]
) -> dict[int, int]:
    """For each of `positions` (increasing, in `segs`, of segments with one
    id), the segment (index in the message) that it belongs to under a
    `follows` rule: the nearest `follows[0]` before it, stepping back only
    over segments like itself, NTEs, `follows[1:]` (a PRT after PID and
    PD1 belongs to the PID; one after OBX, NTE and PRT to that OBX) and
    Z-segments (a site's own, which no standard group places: an OBX after
    OBR and ZBR is the OBR's); -2 when there is none, so the rule does not
    apply. A walk ends where the previous
    one began, taking its result: n OBX after one OBR cost n steps, not n²/2."""
    anchors: dict[int, int] = {}
    start, known = -1, -2
    for pos in positions:
        i = segs[pos]
        own = ids_of[i]
        j = i - 1
        found = -2
        while j >= 0:
            if j == start:
                found = known
                break
            sid = ids_of[j]
            if sid == follows[0]:
                found = j
                break
            if sid not in (own, "NTE") and sid not in follows and sid[:1] != "Z":
                break
            j -= 1
        anchors[pos] = found
        start, known = i - 1, found
    return anchors


def first_anchored(
    ids_of: list[str], segs: list[int], positions: list[int], choices: tuple[tuple[str, ...], ...]
) -> tuple[int, int]:
    """The segment (position in `segs`) a `follows` rule without `each`
    applies to, and the one it belongs to: the first of `positions` that
    follows `choices[0]` (see `anchors_of`), else the first that follows
    `choices[1]` (the rule's `else_follows`: RXE's own TQ1, else the
    ORC's); (`positions[0]`, -2) when none does."""
    for follows in choices:
        anchors = anchors_of(ids_of, segs, positions, follows)
        for pos in positions:
            if anchors[pos] != -2:
                return pos, anchors[pos]
    return positions[0], -2


def identifier_keys(rtype: str, resource: dict[str, Any], path: str) -> list[tuple[str, str, str]]:
    """(rtype, system, value) of each identifier with a value at `path`
    (a list, or one) of `resource`."""
    value = resource.get(path)
    return [
        (rtype, str(e.get("system", "")), str(e["value"]))
        for e in (value if type(value) is list else [value] if value else [])
        if type(e) is dict and e.get("value")
    ]


def drop_claimed(
    rtype: str,
    resource: dict[str, Any],
    path: str,
    built: dict[str, Built],
    *,
    held: dict[tuple[str, str, str], int],
    seg: int,
) -> tuple[str, str] | None:
    """Drop from `resource` (from segment `seg`) the identifiers at `path`
    (a list, or one) that another resource of type `rtype` holds already:
    one of `built` has it as its id's basis, or another segment's `distinct`
    resource holds it (`held`: (type, system, value) -> segment, see
    `_Run.hold`); remove `path` when none is left; return the first
    identifier left with a value (None: none). Every one is dropped, not
    only the first: two orders with the same placer and filler numbers kept
    apart by the filler would be two conditional updates that both match
    the stored order, one resource touched twice by the transaction. Two
    dict lookups an identifier: a message of many repeated orders stays
    linear."""
    held_ids = resource[path]
    left: list[Any] = held_ids if type(held_ids) is list else [held_ids]

    def claimed(ident: tuple[str, str]) -> bool:
        other = held.get((rtype, *ident))
        return (other is not None and other != seg) or deterministic_id(rtype, *ident) in built

    left = [
        e
        for e in left
        if not (e.get("value") and claimed((str(e.get("system", "")), str(e["value"]))))
    ]
    taken = next(
        ((str(e.get("system", "")), str(e["value"])) for e in left if e.get("value")), None
    )
    if left:
        resource[path] = left
    else:
        del resource[path]
    return taken


def _content_key(value: Any) -> str:
    if type(value) is FhirDecimal:
        return value.text
    raise TypeError(f"{type(value).__name__} in a resource")


def content_text(resource: dict[str, Any]) -> str:
    """A resource's content but its id, as text (equal for equal content)."""
    return json.dumps(
        {k: v for k, v in resource.items() if k != "id"},
        sort_keys=True,
        ensure_ascii=False,
        default=_content_key,
    )


def alias(same: Built, seg: int, anchor: int) -> Built:
    """Resource `same` as registered again from segment `seg` (following `anchor`)."""
    b = Built()
    b.resource = same.resource
    b.rid = same.rid
    b.ref = same.ref
    b.entry = same.entry
    b.seg = seg
    b.anchor = anchor
    return b

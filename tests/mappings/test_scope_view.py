"""A scope's `visible()` names are what `lookup` finds (`thumpflow.mapping._scope`).

The engine writes references from `Scope.visible()`, one view per scope
made after every rule has run, instead of `lookup` walking the enclosing
scopes for each reference; the two must agree on every name, at every depth,
with empty lists, shadowed names and names only an enclosing scope has.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from thumpflow.mapping._scope import Built, Scope

NAMES = st.sampled_from(["patient", "encounter", "performer", "device", "*"])
LEVEL = st.dictionaries(NAMES, st.integers(min_value=0, max_value=2), max_size=4)


def built(n: int) -> Built:
    return Built({"resourceType": "Patient"}, "Patient", f"id{n}", f"urn:uuid:id{n}", None)


@given(levels=st.lists(LEVEL, min_size=1, max_size=4))
def test_the_view_of_every_scope_is_what_lookup_finds(levels: list[dict[str, int]]) -> None:
    scopes: list[Scope] = []
    parent = None
    made = 0
    for level in levels:
        scope = Scope(parent)
        for name, count in level.items():
            scope.names[name] = [built(made + k) for k in range(count)]
            made += count
        scopes.append(scope)
        parent = scope
    for scope in reversed(scopes):
        view = scope.visible()
        for name in ["patient", "encounter", "performer", "device", "*", "absent"]:
            assert view.get(name, []) == scope.lookup(name)
        assert scope.visible() is view

"""`AccessStore`: token hashes kept and revoked with their audit entries; appended acts."""

from __future__ import annotations

from tests.store.support import run
from thumpflow.core.access import Role
from thumpflow.core.event import AuditEntry
from thumpflow.core.ports import StateStore

from .conftest import StoreFactory

T0 = 1_700_000_000.0


def test_tokens_are_issued_found_by_hash_and_revoked_audited(store_factory: StoreFactory) -> None:
    async def body(store: StateStore) -> None:
        ops = await store.add_token("ops", Role.OPERATOR, "h" * 64, "admin:root", T0, reason="r1")
        viewer = await store.add_token("wall", Role.VIEWER, "v" * 64, "admin:root", T0 + 1)
        assert ops < viewer
        found = await store.token_by_hash("h" * 64)
        assert found is not None
        assert (found.token_id, found.name, found.role, found.created_by) == (
            ops,
            "ops",
            Role.OPERATOR,
            "admin:root",
        )
        assert (found.created_at, found.revoked_at) == (T0, None)
        assert await store.token_by_hash("x" * 64) is None
        assert await store.revoke_token(ops, "admin:root", "left the team", T0 + 2)
        assert not await store.revoke_token(ops, "admin:root", "again", T0 + 3)
        assert not await store.revoke_token(9999, "admin:root", "unknown", T0 + 3)
        assert await store.token_by_hash("h" * 64) is None
        tokens = await store.tokens()
        assert [(t.token_id, t.revoked_at) for t in tokens] == [(ops, T0 + 2), (viewer, None)]
        entries = await store.audit(f"token:{ops}")
        assert [(e.action, e.actor, e.detail) for e in entries] == [
            ("token.revoked", "admin:root", "left the team"),
            ("token.issued", "admin:root", "ops (operator): r1"),
        ]
        assert all("h" * 64 not in e.detail for e in entries)

    run(store_factory.make, body)


def test_append_audit_returns_increasing_entry_ids_kept_as_given(
    store_factory: StoreFactory,
) -> None:
    async def body(store: StateStore) -> None:
        first = await store.append_audit(
            AuditEntry(T0, "user:alice", "login", "session:alice", "signed in")
        )
        second = await store.append_audit(
            AuditEntry(T0 + 1, "user:alice", "payload.viewed", "EVT1", "ticket 42")
        )
        assert 0 < first < second
        [entry] = await store.audit("EVT1")
        assert (entry.entry_id, entry.at, entry.actor, entry.action, entry.detail) == (
            second,
            T0 + 1,
            "user:alice",
            "payload.viewed",
            "ticket 42",
        )
        assert [e.entry_id for e in await store.audit(action="login")] == [first]

    run(store_factory.make, body)

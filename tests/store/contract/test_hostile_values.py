"""Storage contract: any text a message can carry is stored and matched, NUL included.

HL7 v2 fields may hold any character a sender's codec decodes, NUL among
them (SQLite's `json_each` once cut keys at NUL; PostgreSQL's `text` refuses
NUL outright). Whatever the backend, an event whose key, entity and other
fields carry such characters is admitted, found again as a duplicate,
readable, and searchable; a reject keeps its raw bytes.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.support import admission, event, run
from thumpflow.core.event import Admitted, DeadLetterFilter, Duplicate, Reject
from thumpflow.core.ports import StateStore

from .conftest import StoreFactory

HOSTILE = ["\x00", "A\x00B", "\x00\x00", "é\x00ü", "\x01\x1f\x7f", "%s", "?", "'; --", "\\x00"]


def test_nul_and_control_characters_in_keys_and_fields_are_stored_and_matched(
    store_factory: StoreFactory,
) -> None:
    async def body(store: StateStore) -> None:
        for n, text in enumerate(HOSTILE):
            received = event(key=f"SIM|GEN|{text}|{n}", entity=f"MRN{text}{n}")
            first = await store.admit(admission("ehr", received=received))
            assert isinstance(first, Admitted), text
            again = await store.admit(admission("ehr", received=received))
            assert isinstance(again, Duplicate), text
            stored = await store.event(received.event_id)
            assert stored is not None
            assert (stored.idempotency_key, stored.entity_id) == (
                received.idempotency_key,
                received.entity_id,
            )
        assert await store.dead_letters(DeadLetterFilter(reason_contains="\x00")) == []

    run(store_factory.make, body)


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=st.text(min_size=1, max_size=12))
def test_any_text_in_a_reject_reason_and_peer_is_kept(
    store_factory: StoreFactory, text: str
) -> None:
    async def body(store: StateStore) -> None:
        reject_id = await store.reject(Reject("adt-in", 1.0, f"peer{text}", b"\x00raw", text))
        kept = await store.reject_by_id(reject_id)
        assert kept == Reject("adt-in", 1.0, f"peer{text}", b"\x00raw", text)

    run(store_factory.make, body)

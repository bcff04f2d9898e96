"""PostgreSQL text escaping: any Python text round-trips, and equal values stay equal."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from thumpflow.store.postgresql._db import escape_text, unescape_text

TEXT = st.text(alphabet=st.sampled_from("\x00\uffff0a|é"), max_size=12) | st.text(max_size=20)


@given(TEXT)
def test_escaping_round_trips_and_leaves_no_nul(text: str) -> None:
    stored = escape_text(text)
    assert "\x00" not in stored
    assert unescape_text(stored) == text


@given(TEXT, TEXT)
def test_escaping_keeps_equality_and_difference(first: str, second: str) -> None:
    assert (escape_text(first) == escape_text(second)) == (first == second)


def test_text_without_nul_or_the_escape_is_stored_as_is() -> None:
    for text in ("MRN123", "GEN|MRN 42", "Doe^Jane", "\\E\\", ""):
        assert escape_text(text) is text

"""The NDJSON writer's key log keeps the last record of every key, whether a batch is taken in
one go (all keys new) or item by item."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.batch import NdjsonEncoder
from thumpflow.connectors.batch_destination import KeyLog
from thumpflow.core.batch import BatchItem

_KEYS = st.sampled_from(["a", "b", "c", "k" * 33, "k" * 40, "é" * 32])
_BATCHES = st.lists(
    st.lists(st.tuples(_KEYS, st.integers(0, 2)), max_size=6).map(
        lambda pairs: pairs or [("a", 0)]
    ),
    max_size=8,
)


def _text(key: str, content: int) -> bytes:
    return f'{{"k":"{key}","v":{content}}}'.encode()


def _item(key: str, content: int) -> BatchItem:
    return BatchItem(key, {}, "", "test", canonical=_text(key, content))


@settings(max_examples=300)
@given(batches=_BATCHES, offset=st.integers(0, 5))
def test_the_log_keeps_the_last_record_of_each_key(
    batches: list[list[tuple[str, int]]], offset: int
) -> None:
    written = bytearray(b"h" * offset)

    def read(start: int, length: int) -> bytes:
        return bytes(written[start : start + length])

    log = KeyLog(offset)
    latest: dict[str, bytes] = {}
    order: list[str] = []
    skipped_expected = 0
    for batch in batches:
        expected_lines = []
        for key, content in batch:
            line = _text(key, content) + b"\n"
            if latest.get(key) == line:
                skipped_expected += 1
                continue
            latest[key] = line
            if key in order:
                order.remove(key)
            order.append(key)
            expected_lines.append(line)
        lines, skipped = log.append(
            [_item(key, content) for key, content in batch],
            NdjsonEncoder(),
            read,
        )
        assert lines == expected_lines
        skipped_expected -= skipped
        written.extend(b"".join(lines))
        assert log.end == len(written)
    assert skipped_expected == 0
    kept = b"".join(bytes(written[start:stop]) for start, stop in log.kept())
    assert kept == b"".join(latest[key] for key in order)
    assert log.count == len(latest)

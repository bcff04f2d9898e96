"""MLLP framing: frames survive any chunking; garbage, oversized and truncated input is kept."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.connectors.mllp.framing import FramingError, MllpDecoder, frame

MSG = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||123\r"


def decode_all(stream: bytes, cuts: list[int], limit: int = 1 << 20) -> list[bytes | FramingError]:
    decoder = MllpDecoder(limit)
    out: list[bytes | FramingError] = []
    prev = 0
    for cut in [*sorted(cuts), len(stream)]:
        out.extend(decoder.feed(stream[prev:cut]))
        prev = cut
    out.extend(decoder.finish())
    return out


def test_one_frame_in_one_chunk() -> None:
    assert MllpDecoder(1024).feed(frame(MSG)) == [MSG]


def test_several_frames_in_one_chunk_and_split_end_block() -> None:
    decoder = MllpDecoder(1024)
    data = frame(b"one") + frame(b"two") + frame(b"three")
    cut = data.index(b"\x1c", data.index(b"three"))
    assert decoder.feed(data[: cut + 1]) == [b"one", b"two"]
    assert decoder.feed(data[cut + 1 :]) == [b"three"]
    assert decoder.buffered == 0


def test_end_block_byte_inside_message_is_content() -> None:
    assert MllpDecoder(1024).feed(frame(b"a\x1cb")) == [b"a\x1cb"]


def test_garbage_before_a_frame_is_kept() -> None:
    out = decode_all(b"junk" + frame(MSG), [])
    assert out[0] == FramingError("garbage", b"junk", 4)
    assert out[1] == MSG
    assert "4 bytes" in out[0].describe()


def test_whitespace_between_frames_is_not_garbage() -> None:
    assert decode_all(frame(b"a") + b"\r\n" + frame(b"b") + b"\n", [5]) == [b"a", b"b"]


def test_garbage_at_end_of_stream() -> None:
    assert decode_all(frame(b"a") + b"tail", [2]) == [b"a", FramingError("garbage", b"tail", 4)]


def test_oversized_frame_keeps_the_limit_and_counts_the_rest() -> None:
    big = b"x" * 5000
    stream = frame(big) + frame(b"after")
    for cuts in ([], [1], [100, 200, 4000], list(range(0, len(stream), 7))):
        out = decode_all(stream, cuts, limit=1000)
        assert out == [FramingError("oversized", b"x" * 1000, 5000), b"after"], cuts


def test_oversized_frame_resyncs_at_next_start_block() -> None:
    stream = b"\x0b" + b"y" * 3000 + frame(b"next")
    out = decode_all(stream, [50, 2000], limit=100)
    assert out == [FramingError("oversized", b"y" * 100, 3000), b"next"]


def test_oversized_frame_is_not_buffered() -> None:
    decoder = MllpDecoder(100)
    decoder.feed(b"\x0b")
    for _ in range(100):
        decoder.feed(b"z" * 1000)
        assert decoder.buffered <= 101
    assert decoder.feed(b"\x1c\x0d") == [FramingError("oversized", b"z" * 100, 100_000)]


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    body = b"q" * 64
    for cut in range(len(frame(body)) + 1):
        assert decode_all(frame(body), [cut], limit=64) == [body]


def test_start_block_inside_unfinished_frame_reports_truncated() -> None:
    stream = b"\x0bpartial" + frame(b"whole")
    out = decode_all(stream, [3])
    assert out == [FramingError("truncated", b"partial", 7), b"whole"]


def test_unfinished_frame_at_end_of_stream_is_truncated() -> None:
    assert decode_all(frame(b"a") + b"\x0bcut", [4]) == [
        b"a",
        FramingError("truncated", b"cut", 3),
    ]


def test_describe_names_sizes_only() -> None:
    text = FramingError("oversized", b"PID|secret", 99).describe()
    assert "secret" not in text
    assert "99" in text


messages = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c\x0d", b"")),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300)
@given(messages, st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_any_chunking_decodes_to_the_same_frames(msgs: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(m) for m in msgs)
    cuts = [c % (len(stream) + 1) for c in cuts]
    assert decode_all(stream, cuts) == msgs


@settings(max_examples=200)
@given(
    st.lists(st.binary(max_size=400), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
)
def test_any_chunking_of_any_bytes_gives_the_same_result(
    parts: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(p) if i % 2 else p for i, p in enumerate(parts))
    cuts = [c % (len(stream) + 1) for c in cuts]
    whole = decode_all(stream, [], limit=150)
    assert decode_all(stream, cuts, limit=150) == whole
    assert decode_all(stream, list(range(len(stream))), limit=150) == whole


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\n", b" ", b"x", b"MSH|", b"\x1c\r"]),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=12),
    st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_pending_says_whether_finish_would_report_something(
    parts: list[bytes], limit: int, cuts: list[int]
) -> None:
    stream = b"".join(parts)
    decoder = MllpDecoder(limit)
    prev = 0
    for cut in [*sorted(c for c in cuts if c <= len(stream)), len(stream)]:
        decoder.feed(stream[prev:cut])
        prev = cut
    pending = decoder.pending
    assert pending == bool(decoder.finish())
    assert not decoder.pending


def test_whitespace_after_a_frame_is_not_pending() -> None:
    decoder = MllpDecoder(64)
    decoder.feed(frame(b"a") + b"\r\n")
    assert not decoder.pending
    decoder.feed(b"\x0bMSH")
    assert decoder.pending

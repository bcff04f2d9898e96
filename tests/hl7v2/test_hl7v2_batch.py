"""Splitting files of messages and parsing HL7 batch files."""

from __future__ import annotations

import pytest

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import parse_batch, split_messages


def _msg(n: int, sep: str = "\r") -> str:
    return f"MSH|^~\\&|A|B|||||ADT^A01|C{n}|P|2.5{sep}PID|1||P{n}{sep}"


def test_split_plain_messages_any_separators() -> None:
    data = (_msg(1) + _msg(2, "\n") + "\n\n" + _msg(3, "\r\n")).encode()
    parts = split_messages(data)
    assert parts == [_msg(1).encode(), _msg(2, "\n").encode(), _msg(3, "\r\n").encode()]


def test_split_removes_mllp_framing_and_batch_wrappers() -> None:
    data = (
        f"FHS|^~\\&|A\r\nBHS|^~\\&|A\r\n\x0b{_msg(1)}\x1c\r\x0b{_msg(2)}\x1c\rBTS|2\r\nFTS|1\r\n"
    ).encode()
    assert split_messages(data) == [_msg(1).encode(), _msg(2).encode()]


def test_split_without_final_separator_and_empty_input() -> None:
    assert split_messages(b"MSH|^~\\&|A\rPID|1") == [b"MSH|^~\\&|A\rPID|1"]
    assert split_messages(b"") == []
    assert split_messages(b"\r\n\r\n") == []


def test_split_rejects_content_outside_messages() -> None:
    with pytest.raises(MessageError) as info:
        split_messages(b"\r\nPID|1||SECRET\r" + _msg(1).encode())
    assert (info.value.segment_index, info.value.code) == (1, "100")
    assert "line 2 is outside any message" in str(info.value)
    assert "SECRET" not in str(info.value)


def test_full_batch_file() -> None:
    data = (
        "FHS|^~\\&|SENDER|FAC|||20240301\r"
        f"BHS|^~\\&|SENDER|FAC\r{_msg(1)}{_msg(2)}BTS|2\r"
        f"BHS|^~\\&|SENDER|FAC\r{_msg(3)}BTS|1\r"
        "FTS|2\r"
    ).encode()
    batch = parse_batch(data)
    assert batch.file_header is not None and batch.file_header.get("3") == "SENDER"
    assert batch.file_header.get("1") == "|"
    assert batch.file_trailer is not None and batch.file_trailer.get("1") == "2"
    assert len(batch.batches) == 2
    assert [m.control_id for m in batch.batches[0].messages] == ["C1", "C2"]
    assert [m.control_id for m in batch.messages] == ["C1", "C2", "C3"]
    assert batch.batches[1].header is not None
    assert batch.batches[1].trailer is not None and batch.batches[1].trailer.get("1") == "1"
    assert batch.messages[2].get("PID-3") == "P3"
    assert batch.messages[0].to_bytes() == _msg(1).encode()


def test_lone_batch_without_file_header() -> None:
    batch = parse_batch(f"BHS|^~\\&|S\n{_msg(1, chr(10))}BTS|1\n".encode())
    assert batch.file_header is None and batch.file_trailer is None
    assert len(batch.batches) == 1
    assert batch.messages[0].get("PID-3") == "P1"


def test_file_header_without_batch_header() -> None:
    batch = parse_batch(f"FHS|^~\\&|S\r{_msg(1)}{_msg(2)}FTS|1\r".encode())
    assert len(batch.batches) == 1
    assert batch.batches[0].header is None and batch.batches[0].trailer is None
    assert len(batch.messages) == 2


def test_bare_messages_and_empty_counts() -> None:
    assert len(parse_batch((_msg(1) + _msg(2)).encode()).messages) == 2
    batch = parse_batch(f"BHS|^~\\&|S\r{_msg(1)}BTS\rFTS\r".encode())
    assert len(batch.messages) == 1


@pytest.mark.parametrize(
    ("data", "segment", "fragment"),
    [
        (f"BHS|^~\\&\r{_msg(1)}{_msg(2)}BTS|3\r", "BTS", "declares 3 messages, counted 2"),
        (f"FHS|^~\\&\rBHS|^~\\&\r{_msg(1)}BTS|1\rFTS|2\r", "FTS", "declares 2 batches, counted 1"),
        (f"FHS|^~\\&\r{_msg(1)}FTS|0\r", "FTS", "declares 0 batches, counted 1"),
    ],
)
def test_wrong_counts(data: str, segment: str, fragment: str) -> None:
    with pytest.raises(MessageError) as info:
        parse_batch(data.encode())
    err = info.value
    assert (err.segment, err.field, err.code) == (segment, 1, "100")
    assert fragment in str(err)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (f"{_msg(1)}BTS|1\r", "100"),
        (f"BHS|^~\\&\r{_msg(1)}BTS|x\r", "102"),
        (f"BHS|^~\\&\r{_msg(1)}BTS|1\rBTS|1\r", "100"),
        (f"FHS|^~\\&\r{_msg(1)}FTS|1\r{_msg(2)}", "100"),
        (f"BHS|^~\\&\r{_msg(1)}FHS|^~\\&\r", "100"),
        ("PID|1||x\r", "100"),
        ("BHS|^^\\&\r", "102"),
        (f"BHS|^~\\&\r{_msg(1)}MSH|^~\\&Q\r", "102"),
    ],
)
def test_structural_errors(data: str, code: str) -> None:
    with pytest.raises(MessageError) as info:
        parse_batch(data.encode())
    assert info.value.code == code
    assert info.value.segment_index is not None or info.value.segment is not None

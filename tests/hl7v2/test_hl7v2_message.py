"""Message parsing, path access, serialisation and structural errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import Delimiters, Message

ADT = (
    "MSH|^~\\&|EPIC|STMARYS^1.2.3^ISO|HUB|OPS|20240301120000||ADT^A01^ADT_A01|CTRL1|P^T|2.5.1"
    "|||AL|NE\r"
    "EVN|A01|20240301120000\r"
    "PID|1||MRN1^^^HOSP^MR~999^^^SSA^SS||Smith\\T\\Jones^John^Q~Smith^J||19800101|M\r"
    "OBX|1|ST|a^A||first\r"
    "OBX|2|ST|b^B||second\\F\\part\r"
    "OBX|3|CE|c^C||x&y&z^text\r"
    "ZPV|1|custom^z\r"
)


@pytest.fixture
def msg() -> Message:
    return Message.parse(ADT.encode())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("MSH-1", "|"),
        ("MSH-2", "^~\\&"),
        ("MSH-3", "EPIC"),
        ("MSH-4", "STMARYS^1.2.3^ISO"),
        ("MSH-4.2", "1.2.3"),
        ("MSH-9", "ADT^A01^ADT_A01"),
        ("MSH-9.2", "A01"),
        ("MSH-11.2", "T"),
        ("PID-3", "MRN1^^^HOSP^MR"),
        ("PID-3[1].1", "MRN1"),
        ("PID-3[2].1", "999"),
        ("PID-3[2].5", "SS"),
        ("PID-3[3].1", ""),
        ("PID-5", "Smith&Jones^John^Q"),
        ("PID-5.1", "Smith&Jones"),
        ("PID-5.1.1", "Smith&Jones"),
        ("PID-5[2].2", "J"),
        ("PID-5.4", ""),
        ("PID-8", "M"),
        ("PID-8.1", "M"),
        ("PID-8.2", ""),
        ("PID-99", ""),
        ("OBX-5", "first"),
        ("OBX[2]-5", "second|part"),
        ("OBX[3]-5.1.2", "y"),
        ("OBX[3]-5.1.4", ""),
        ("OBX[3]-5.2", "text"),
        ("OBX[4]-5", ""),
        ("ZPV-2.2", "z"),
        ("NTE-1", ""),
    ],
)
def test_get(msg: Message, path: str, expected: str) -> None:
    assert msg.get(path) == expected


def test_get_raw_keeps_escapes(msg: Message) -> None:
    assert msg.get_raw("PID-5.1") == "Smith\\T\\Jones"
    assert msg.get_raw("OBX[2]-5") == "second\\F\\part"
    assert msg.get_raw("ZZZ-1") == ""


def test_get_all(msg: Message) -> None:
    assert msg.get_all("PID-3.1") == ["MRN1", "999"]
    assert msg.get_all("PID-5.1") == ["Smith&Jones", "Smith"]
    assert msg.get_all("PID-3") == ["MRN1^^^HOSP^MR", "999^^^SSA^SS"]
    assert msg.get_all("PID-4") == []
    assert msg.get_all("NTE-3") == []
    with pytest.raises(ValueError, match="repetition"):
        msg.get_all("PID-3[1]")


@pytest.mark.parametrize(
    "path", ["PID", "PID-", "PID-0", "pid-3", "PID-3.", "PID-3[0]", "PID-3.1.1.1", "-3", "PID-x"]
)
def test_malformed_paths_raise_value_error(msg: Message, path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        msg.get(path)


def test_convenience_properties(msg: Message) -> None:
    assert msg.control_id == "CTRL1"
    assert (msg.message_type, msg.trigger_event, msg.message_structure) == ("ADT", "A01", "ADT_A01")
    assert msg.version == "2.5.1"
    assert msg.sending_application == "EPIC"
    assert msg.sending_facility == "STMARYS"
    assert msg.processing_id == "P"
    assert (msg.accept_ack_type, msg.application_ack_type) == ("AL", "NE")
    assert msg.charset == ""
    assert msg.encoding == "utf-8"
    assert msg.charset_warning is None
    assert msg.header_field(4, 1) == "STMARYS"


def test_segments(msg: Message) -> None:
    assert msg.segment_ids() == ["MSH", "EVN", "PID", "OBX", "OBX", "OBX", "ZPV"]
    obx = msg.segment("OBX", 2)
    assert obx is not None
    assert obx.id == "OBX"
    assert obx.get("5") == "second|part"
    assert obx.get_raw("5") == "second\\F\\part"
    assert obx.field_count == 5
    assert msg.segment("OBX", 4) is None
    assert msg.segment("NTE") is None
    assert [s.get("1") for s in msg.segments_named("OBX")] == ["1", "2", "3"]
    pid = msg.segment("PID")
    assert pid is not None
    assert pid.get("3[2].1") == "999"
    assert pid.get_all("3.1") == ["MRN1", "999"]
    assert msg.segment_index(pid) == 3
    msh = msg.segment("MSH")
    assert msh is not None
    assert (msh.get("1"), msh.get("2"), msh.get("10")) == ("|", "^~\\&", "CTRL1")


def test_segment_table_is_the_segments_ids_and_fields_indexed_or_not() -> None:
    raw = ADT.replace("EVN|", "\rEVN|").encode()  # a blank line, skipped
    lines = [line for line in ADT.split("\r") if line]
    fresh = Message.parse(raw)
    ids, table = fresh.segment_table()
    assert ids == ["MSH", "EVN", "PID", "OBX", "OBX", "OBX", "ZPV"]
    assert table[0][:3] == ["MSH", "|", "^~\\&"]
    assert table[1:] == [line.split("|") for line in lines[1:]]
    # The lists are the message's own split, as its reads see it.
    assert fresh.segment_table()[1][2] is table[2]
    indexed = Message.parse(raw)
    indexed.segment("OBX", 2)
    indexed.set("ZPV-2", "changed")
    indexed.set("ZZZ-1", "appended")
    ids2, table2 = indexed.segment_table()
    assert ids2 == [*ids, "ZZZ"]
    assert table2[:6] == table[:6]
    assert table2[6] == ["ZPV", "1", "changed"]
    assert table2[7] == ["ZZZ", "appended"]


@given(
    lines=st.lists(st.sampled_from(["PID|1", "OBX|1|NM", "NTE|1", "", " ", "ZPV|x"]), max_size=12),
    appended=st.booleans(),
)
def test_segment_positions_are_where_each_id_is_in_the_segment_table(
    lines: list[str], appended: bool
) -> None:
    """With or without blank lines skipped, before or after a segment is appended."""
    message = Message.parse("\r".join(["MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5", *lines]))
    if appended:
        message.set("ZZZ-1", "appended")
    ids, _ = message.segment_table()
    expected: dict[str, list[int]] = {}
    for pos, sid in enumerate(ids):
        expected.setdefault(sid, []).append(pos)
    assert message.segment_positions() == expected


def test_round_trip_is_byte_exact(msg: Message) -> None:
    assert msg.to_bytes() == ADT.encode()
    msg.get("OBX[3]-5")
    msg.segment_ids()
    assert msg.to_bytes() == ADT.encode()


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_separators(sep: str) -> None:
    raw = ADT.replace("\r", sep).encode()
    m = Message.parse(raw)
    assert m.get("OBX[2]-5") == "second|part"
    assert m.get("MSH-16") == "NE"
    assert m.segment_ids()[-1] == "ZPV"
    assert m.to_bytes() == raw


def test_mixed_separators_blank_lines_and_whitespace() -> None:
    raw = b"\r\n \x0bMSH|^~\\&|A|B|||||ORU^R01|9|P|2.5\r\nPID|1||7\n\nOBX|1\rOBX|2\r\n\r\n\x1c\r"
    m = Message.parse(raw)
    assert m.segment_ids() == ["MSH", "PID", "OBX", "OBX"]
    assert m.get("PID-3") == "7"
    assert m.get("OBX[2]-1") == "2"
    assert m.control_id == "9"
    assert m.to_bytes() == raw


def test_str_input() -> None:
    m = Message.parse(ADT)
    assert m.get("PID-5.2") == "John"
    assert m.to_str() == ADT
    assert m.to_bytes() == ADT.encode()


def test_custom_delimiters() -> None:
    raw = b"MSH*!@$%*APP*FAC*R*RF*20240101**ADT!A08*C9*P*2.4\rPID*1**A!B!C@D!E**X$F$Y%Z!W\r"
    m = Message.parse(raw)
    assert m.delimiters == Delimiters("*", "!", "@", "$", "%")
    assert m.get("MSH-1") == "*"
    assert m.get("MSH-2") == "!@$%"
    assert m.trigger_event == "A08"
    assert m.get("PID-3[2].2") == "E"
    assert m.get("PID-5.1") == "X*Y%Z"
    assert m.get("PID-5.1.1") == "X*Y"
    assert m.get("PID-5.1.2") == "Z"
    assert m.get_raw("PID-5.1") == "X$F$Y%Z"
    m.set("PID-6.2", "a*b!c")
    assert m.get_raw("PID-6") == "!a$F$b$S$c"
    assert m.get("PID-6.2") == "a*b!c"
    assert Message.parse(m.to_bytes()).get("PID-6.2") == "a*b!c"


def test_v27_truncation_character() -> None:
    raw = b"MSH|^~\\&#|A|B|||||ADT^A01|1|P|2.7\rPID|1||12#|\\P\\x\r"
    m = Message.parse(raw)
    assert m.delimiters.truncation == "#"
    assert m.get("MSH-2") == "^~\\&#"
    assert m.get("PID-3") == "12#"
    assert m.get("PID-4") == "#x"
    m.set("PID-5", "a#b")
    assert m.get_raw("PID-5") == "a\\P\\b"
    assert m.get("PID-5") == "a#b"


def test_set_rewrites_only_modified_segments() -> None:
    raw = ADT.replace("\rEVN", "\r\nEVN").replace("\rOBX|1", "\n\nOBX|1").encode()
    m = Message.parse(raw)
    m.set("PID-5.2", "Jo^hn")
    out = m.to_bytes()
    assert out == raw.replace(b"^John^", b"^Jo\\S\\hn^")
    assert Message.parse(out).get("PID-5.2") == "Jo^hn"


def test_set_grows_structure() -> None:
    m = Message.parse(b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\rPID|1\r")
    m.set("PID-3[2].4.2", "x")
    pid = m.segment("PID")
    assert pid is not None
    assert pid.text == "PID|1||~^^^&x"
    assert m.get("PID-3[2].4.2") == "x"
    m.set("PID-3", "only")
    assert pid.text == "PID|1||only"
    m.set("PID-3[3]", "third")
    assert m.get_all("PID-3") == ["only", "", "third"]
    m.set("PID-3.2", "c2")
    assert pid.text == "PID|1||only^c2~~third"
    assert m.to_bytes() == b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\rPID|1||only^c2~~third\r"


def test_set_appends_missing_segments_before_trailing_blank_lines() -> None:
    m = Message.parse(b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\nPID|1\n\n")
    m.set("ZXY[2]-2", "z")
    assert m.segment_ids() == ["MSH", "PID", "ZXY", "ZXY"]
    assert m.to_bytes() == b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\nPID|1\nZXY\nZXY||z\n\n"
    assert m.get("ZXY[2]-2") == "z"


def test_set_through_segment_reaches_message() -> None:
    m = Message.parse(ADT.encode())
    obx = m.segment("OBX", 3)
    assert obx is not None
    obx.set("5.2", "changed")
    assert m.get("OBX[3]-5.2") == "changed"
    m.set("OBX[3]-6", "u")
    assert obx.get("6") == "u"
    assert b"OBX|3|CE|c^C||x&y&z^changed|u\r" in m.to_bytes()


def test_set_msh_delimiters_and_bad_raw_values_rejected() -> None:
    m = Message.parse(ADT.encode())
    for path in ("MSH-1", "MSH-2"):
        with pytest.raises(ValueError, match="delimiters"):
            m.set(path, "x")
    with pytest.raises(ValueError, match="delimiters"):
        m.set_raw("PID-5.1", "a^b")
    with pytest.raises(ValueError, match="delimiters"):
        m.set_raw("PID-5", "a|b")
    m.set_raw("PID-5", "Doe^Jane~Doe^J")
    assert m.get_all("PID-5.2") == ["Jane", "J"]
    m.set("MSH-10", "NEW1")
    assert m.control_id == "NEW1"


def test_set_value_outside_charset_rejected() -> None:
    m = Message.parse(b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5||||||ASCII\rPID|1\r")
    with pytest.raises(UnicodeEncodeError):
        m.set("PID-5", "Müller")


SECRET = "SECRETVALUE"


@pytest.mark.parametrize(
    ("raw", "code", "fragment"),
    [
        (b"", "100", "empty"),
        (b"   \r\n", "100", "empty"),
        (f"PID|1||{SECRET}\r".encode(), "100", "its first segment is another one"),
        (f"{SECRET}|MSH".encode(), "100", "does not begin with an MSH"),
        (b"MSH", "102", "field separator"),
        (f"MSH|^~\\|{SECRET}\r".encode(), "102", "4 or 5"),
        (f"MSH|^~\\&xyz|{SECRET}\r".encode(), "102", "4 or 5"),
        (f"MSH|^^\\&|{SECRET}\r".encode(), "102", "distinct"),
        (f"MSHA^~\\&A{SECRET}\r".encode(), "102", "non-alphanumeric"),
        (f"MSH|^~\\a|{SECRET}\r".encode(), "102", "non-alphanumeric"),
    ],
)
def test_parse_errors_are_located_and_carry_no_values(raw: bytes, code: str, fragment: str) -> None:
    with pytest.raises(MessageError) as info:
        Message.parse(raw)
    err = info.value
    assert err.code == code
    assert fragment in str(err)
    assert SECRET not in str(err) and SECRET not in err.describe()
    if code == "102":
        assert err.segment == "MSH"
        assert err.field in (1, 2)


def test_validate_structure() -> None:
    Message.parse(ADT.encode()).validate_structure()
    cases = [
        (b"MSH|^~\\&|A|B|||||||P|2.5\r", 9, "101"),
        (b"MSH|^~\\&|A|B|||||ADT^A01||P|2.5\r", 10, "101"),
    ]
    for raw, field, code in cases:
        with pytest.raises(MessageError) as info:
            Message.parse(raw).validate_structure()
        assert (
            info.value.segment,
            info.value.segment_index,
            info.value.field,
            info.value.code,
        ) == (
            "MSH",
            1,
            field,
            code,
        )
    with pytest.raises(MessageError) as info:
        Message.parse(f"{ADT}{SECRET} data\r".encode()).validate_structure()
    assert (info.value.segment_index, info.value.code) == (8, "100")
    assert SECRET not in str(info.value)
    with pytest.raises(MessageError) as info:
        Message.parse(ADT + ADT).validate_structure()
    assert (info.value.segment, info.value.segment_index) == ("MSH", 8)


@pytest.mark.parametrize("body", ["", "PID|1||Zoë\r"])
def test_byte_order_mark_tolerated(body: str) -> None:
    raw = "\ufeffMSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\r".encode() + body.encode()
    m = Message.parse(raw)
    assert m.control_id == "1"
    assert m.to_bytes() == raw
    m.set("MSH-3", "Ä")
    assert m.to_bytes() == raw.replace(b"|A|", "|Ä|".encode())
    assert Message.parse("\ufeffMSH|^~\\&|A").get("MSH-3") == "A"


def test_the_trigger_event_of_a_v21_message_is_evn_1() -> None:
    """v2.1 and v2.2 put the message type alone in MSH-9 and the event in
    EVN-1; MSH-9.2, when present, wins."""
    old = Message.parse(b"MSH|^~\\&|A|B|C|D|20240101||ADT|1|P|2.1\rEVN|A03|20240101\rPID|1\r")
    assert (old.message_type, old.trigger_event) == ("ADT", "A03")
    new = Message.parse(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\rEVN|A03|20240101\r")
    assert new.trigger_event == "A08"
    bare = Message.parse(b"MSH|^~\\&|A|B|C|D|20240101||ORU|1|P|2.2\rPID|1\r")
    assert bare.trigger_event == ""

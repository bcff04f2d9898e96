"""Escape sequences, and character sets (MSH-18) for bytes and hex escapes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumpflow.hl7v2 import DEFAULT_DELIMITERS, Delimiters, Message, codec_for, escape, unescape

D = DEFAULT_DELIMITERS
T = Delimiters(truncation="#")


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\X0D0A\\", "\r\n"),
        ("\\X41\\\\X42\\", "AB"),
        ("caf\\XC3A9\\", "café"),
        ("\\F\\\\S\\\\T\\\\R\\\\E\\", "|^&~\\"),
    ],
)
def test_unescape(wire: str, text: str) -> None:
    assert unescape(wire, D) == text


@pytest.mark.parametrize(
    "wire",
    [
        "\\H\\bold\\N\\",
        "a\\.sp2\\b",
        "\\.in+4\\\\.ti-2\\\\.sk3\\\\.ce\\\\.fi\\\\.nf\\",
        "\\C2842\\\\M2442\\",
        "\\Zlocal\\",
        "\\Q\\",
        "\\\\",
        "\\P\\",
        "\\X\\",
        "\\XABC\\",
        "\\XZZ\\",
        "unterminated \\F",
        "trailing\\",
    ],
)
def test_unescape_keeps_uninterpreted_and_malformed_sequences(wire: str) -> None:
    assert unescape(wire, D) == wire


def test_truncation_escape() -> None:
    assert unescape("a\\P\\b", T) == "a#b"
    assert escape("a#b", T) == "a\\P\\b"
    assert escape("a#b", D) == "a#b"


def test_escape_every_special_character() -> None:
    assert escape("a|b^c~d\\e&f\rg\nh", D) == ("a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\g\\X0A\\h")
    assert escape("plain text", D) == "plain text"
    custom = Delimiters("*", "!", "@", "$", "%")
    assert escape("a*b!c@d$e%f|g", custom) == "a$F$b$S$c$R$d$E$e$T$f|g"


def test_hex_escape_uses_charset_with_latin1_fallback() -> None:
    assert unescape("\\XE9\\", D, "iso8859-1") == "é"
    assert unescape("\\XC3A9\\", D, "utf-8") == "é"
    assert unescape("\\XE9\\", D, "utf-8") == "é"
    assert unescape("\\XE9\\", D, "no-such-codec") == "é"


def test_hex_escapes_in_latin1_and_utf8_messages() -> None:
    latin = Message.parse(b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5||||||8859/1\rPID|1||\\XE9\\t\xe9\r")
    assert latin.encoding == "iso8859-1"
    assert latin.get("PID-3") == "été"
    utf8 = Message.parse(
        "MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|1||\\XC3A9\\té\r".encode()
    )
    assert utf8.encoding == "utf-8"
    assert utf8.get("PID-3") == "été"
    seg = utf8.segment("PID")
    assert seg is not None
    assert seg.get("3") == "été"


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("ASCII", "ascii"),
        ("8859/1", "iso8859-1"),
        ("8859/15", "iso8859-15"),
        ("ISO IR100", "iso8859-1"),
        ("ISO IR6", "ascii"),
        ("UNICODE UTF-8", "utf-8"),
        ("unicode  utf-8", "utf-8"),
        ("GB 18030", "gb18030"),
        ("GB 18030-2000", "gb18030"),
        ("ISO IR192", "utf-8"),
        ("KS X 1001", "euc_kr"),
        ("ISO IR87", "iso2022_jp"),
        ("UTF-8", "utf-8"),
        ("ISO-8859-2", "iso8859-2"),
        ("windows-1252", "cp1252"),
        ("EBCDIC", None),
        ("rot13", None),
        ("", None),
    ],
)
def test_codec_for(declared: str, codec: str | None) -> None:
    assert codec_for(declared) == codec


def _msg(charset: str, body: bytes) -> bytes:
    return (
        b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5||||||" + charset.encode() + b"\rPID|1||" + body + b"\r"
    )


def test_msh18_latin1_decodes_and_round_trips() -> None:
    raw = _msg("8859/1", "Müller^Zoë".encode("latin-1"))
    m = Message.parse(raw)
    assert (m.charset, m.encoding, m.charset_warning) == ("8859/1", "iso8859-1", None)
    assert m.get("PID-3.1") == "Müller"
    assert m.to_bytes() == raw
    m.set("PID-4", "Ærø")
    assert m.to_bytes() == raw[:-1] + "|Ærø\r".encode("latin-1")
    assert Message.parse(m.to_bytes()).get("PID-4") == "Ærø"


def test_msh18_utf8() -> None:
    raw = _msg("UNICODE UTF-8", "Müller^李".encode())
    m = Message.parse(raw)
    assert (m.encoding, m.charset_warning) == ("utf-8", None)
    assert m.get("PID-3.2") == "李"
    assert m.to_bytes() == raw


def test_unknown_charset_falls_back_to_utf8_with_warning() -> None:
    m = Message.parse(_msg("KLINGON", "Müller".encode()))
    assert m.encoding == "utf-8"
    assert m.charset_warning is not None and "not recognised" in m.charset_warning
    ascii_only = Message.parse(_msg("KLINGON", b"Smith"))
    assert ascii_only.encoding == "utf-8"
    assert ascii_only.charset_warning is not None


def test_no_charset_utf8_then_cp1252() -> None:
    raw = b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\rPID|1||M\xfcller \x80\r"
    m = Message.parse(raw)
    assert m.encoding == "cp1252"
    assert m.get("PID-3") == "Müller €"
    assert m.charset_warning is not None and "cp1252" in m.charset_warning
    assert m.to_bytes() == raw
    m.set("PID-4", "x")
    assert m.to_bytes() == raw[:-1] + b"|x\r"
    undefined = b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\rPID|1||\x81\x8d\r"
    u = Message.parse(undefined)
    assert u.encoding == "latin-1"
    assert u.to_bytes() == undefined


def test_declared_charset_that_does_not_fit_the_bytes() -> None:
    raw = _msg("UNICODE UTF-8", b"M\xfcller")
    m = Message.parse(raw)
    assert m.encoding == "cp1252"
    assert m.charset_warning is not None
    assert m.get("PID-3") == "Müller"
    assert m.to_bytes() == raw
    wide = Message.parse(_msg("UNICODE UTF-16", b"Smith"))
    assert wide.encoding == "utf-8"
    assert wide.charset_warning is not None and "UTF-16" in wide.charset_warning


_JAPANESE = st.text(
    st.sampled_from("山田太郎花子東京都鈴木一郎あいうえおカタカナ"), min_size=1, max_size=12
)


@given(
    family=_JAPANESE,
    given_name=_JAPANESE,
    declared=st.sampled_from(["ISO IR87", "ISO IR6~ISO IR87"]),
)
def test_iso_2022_escapes_select_the_japanese_sets(
    family: str, given_name: str, declared: str
) -> None:
    """MSH-18 ISO IR87 (JIS X 0208), alone or after ISO IR6: the message is
    7-bit with ISO 2022 escapes, and the names read as written (before, the
    ASCII shortcut kept the escapes, later dropped as control characters)."""
    raw = _msg(declared, f"{family}^{given_name}".encode("iso2022_jp"))
    assert raw.isascii() and b"\x1b" in raw
    m = Message.parse(raw)
    assert (m.get("PID-3.1"), m.get("PID-3.2")) == (family, given_name)
    assert m.charset_warning is None


def test_gb_18030_as_table_0211_names_it() -> None:
    raw = _msg("GB 18030-2000", "张^伟".encode("gb18030"))
    m = Message.parse(raw)
    assert (m.encoding, m.charset_warning, m.get("PID-3.1")) == ("gb18030", None, "张")

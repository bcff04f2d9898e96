"""Character sets: HL7 table 0211 names (MSH-18) to Python codecs, and decoding.

Decoding never fails: when the declared or default codec cannot decode the
bytes, a fallback is used and a warning (naming codecs only, never content)
says so. Every codec used here decodes and re-encodes the same bytes, so a
parsed message re-serialises byte-exact.
"""

from __future__ import annotations

import codecs

_TABLE_0211: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO IR100": "iso8859-1",
    "ISO IR101": "iso8859-2",
    "ISO IR109": "iso8859-3",
    "ISO IR110": "iso8859-4",
    "ISO IR144": "iso8859-5",
    "ISO IR127": "iso8859-6",
    "ISO IR126": "iso8859-7",
    "ISO IR138": "iso8859-8",
    "ISO IR148": "iso8859-9",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_1",
    "GB 18030": "gb18030",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
}

# Codec names senders put in MSH-18 instead of table 0211 codes ("UTF-8",
# "ISO-8859-1", "windows-1252"), accepted when they resolve to one of these.
_ALIASABLE = frozenset(
    {"ascii", "utf-8", "cp1252", "latin-1", "gb18030", "euc_kr", "big5", "shift_jis"}
    | {f"iso8859-{n}" for n in (*range(2, 10), 15)}
)

# Declared sets whose messages may switch to Japanese sets by ISO 2022 escapes.
_ISO2022_BASES = frozenset({"ascii", "iso2022_jp", "iso2022_jp_1"})

# Codecs in which the bytes of "MSH", the delimiters, CR and LF are themselves.
NOT_ASCII_COMPATIBLE = frozenset({"utf-16", "utf-32"})


def codec_for(charset: str) -> str | None:
    """The Python codec for an MSH-18 value (table 0211 code or a common codec
    name such as `UTF-8`), or None when it is not recognised. Never raises,
    whatever the value holds (NUL and other bytes `codecs.lookup` refuses)."""
    if charset in _known:
        return _known[charset]
    name = " ".join(charset.split()).upper()
    codec = _TABLE_0211.get(name)
    if codec is None:
        try:
            canonical = codecs.lookup(name).name
        except (LookupError, ValueError, TypeError):
            canonical = ""
        codec = canonical if canonical in _ALIASABLE else None
    if len(_known) < 256:
        _known[charset] = codec
    return codec


_known: dict[str, str | None] = {}


def decode(raw: bytes, declared: str) -> tuple[str, str, str | None]:
    """Decode message bytes; returns `(text, codec, warning)`.

    A message declaring ASCII or a Japanese set (ISO IR87, ISO IR159) whose bytes
    hold ISO 2022 escapes is read as ISO-2022-JP-2, as the escapes say. With
    `declared` empty (no MSH-18) the bytes are read as UTF-8, else cp1252,
    else Latin-1. A declared charset that is unknown, or that is not
    ASCII-compatible (UTF-16/32 cannot carry a byte-level `MSH`), is treated as
    absent with a warning; one whose codec rejects the bytes falls back the same
    way, with a warning.
    """
    warning: str | None = None
    if b"\x1b" in raw and codec_for(declared) in _ISO2022_BASES:
        # ISO 2022 code extension (MSH-18 `ISO IR87`, or `ISO IR6~ISO IR87`:
        # ASCII with escapes into JIS X 0208): the escapes select the sets.
        try:
            return raw.decode("iso2022_jp_2"), "iso2022_jp_2", None
        except UnicodeDecodeError:
            pass
    if declared:
        codec = codec_for(declared)
        if codec is None:
            warning = "MSH-18 character set not recognised; decoded as UTF-8"
        elif codec in NOT_ASCII_COMPATIBLE:
            warning = "MSH-18 declares a UTF-16/32 character set for 8-bit data; decoded as UTF-8"
        else:
            try:
                return raw.decode(codec), codec, None
            except UnicodeDecodeError:
                warning = f"data is not valid {codec} as MSH-18 declares"
    try:
        return raw.decode("utf-8"), "utf-8", warning
    except UnicodeDecodeError:
        pass
    try:
        text, codec = raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        text, codec = raw.decode("latin-1"), "latin-1"
    note = f"decoded as {codec}"
    return text, codec, f"{warning}; {note}" if warning else f"data is not valid UTF-8; {note}"

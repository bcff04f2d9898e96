"""A parsed HL7 v2 message: lazy, byte-exact, path-addressable."""

from __future__ import annotations

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2.charset import NOT_ASCII_COMPATIBLE, codec_for, decode
from thumpflow.hl7v2.delimiters import Delimiters
from thumpflow.hl7v2.escape import escape, unescape
from thumpflow.hl7v2.header import HeaderFields
from thumpflow.hl7v2.lines import declared_charset, not_msh, split_lines, split_lines_bytes
from thumpflow.hl7v2.path import compile_path
from thumpflow.hl7v2.rewrite import layout, rewrite_bytes
from thumpflow.hl7v2.segment import (
    HEADER_SEGMENTS,
    WHITESPACE,
    WHITESPACE_BYTES,
    Segment,
    element,
    elements,
    segment_id,
    split_fields,
)
from thumpflow.hl7v2.structure import check_structure


class Message(HeaderFields):
    """One HL7 v2 message.

    Guarantees:

    - `parse` raises only `MessageError` (code 100 when the data does not begin
      with MSH, 102 when MSH-1/MSH-2 do not declare usable delimiters); reasons
      name locations and structure, never field values. Decoding never fails
      (see `charset_warning`).
    - Segments are split on first lookup, fields of a segment on first access.
    - `to_bytes()` returns the parsed bytes unchanged until something is set;
      after `set`, only modified segments are re-serialised and every other
      byte (separators, blank lines, surrounding whitespace) stays as it was.
    - Reads return "" (or [] / None) for absent data and raise ValueError only
      for malformed paths.
    """

    __slots__ = (
        "_appended",
        "_byte_start",
        "_codec",
        "_delims",
        "_dirty",
        "_fields",
        "_first",
        "_index",
        "_order",
        "_parts",
        "_raw",
        "_segs",
        "_seps",
        "_start",
        "_text",
        "_warning",
    )

    def __init__(
        self,
        text: str,
        raw: bytes | None,
        *,
        start: int,
        byte_start: int,
        delims: Delimiters,
        codec: str | None,
    ) -> None:
        self._text = text
        self._raw = raw
        self._start = start
        self._byte_start = byte_start
        self._delims = delims
        self._codec = codec
        self._warning: str | None = None
        self._parts: list[str] | None = None
        self._seps: str | list[str] = "\r"
        self._index: dict[str, list[int]] | None = None
        self._first: dict[str, int] = {}
        self._fields: dict[int, list[str]] = {}
        self._order: list[int] = []
        self._segs: dict[int, Segment] = {}
        self._dirty: set[int] = set()
        self._appended: list[str] = []

    @classmethod
    def parse(cls, raw: bytes | str) -> Message:
        """Parse one message from bytes (decoded per MSH-18) or already-decoded text.

        Leading whitespace, blank lines, a byte order mark and stray MLLP framing
        bytes around the message are tolerated and preserved. Segment separators may be CR, LF or
        CRLF, mixed.
        """
        codec: str | None = None
        warning: str | None = None
        if isinstance(raw, str):
            text, data = raw, None
            start = 0 if text.startswith("MSH") else len(text) - len(text.lstrip(WHITESPACE))
            if not text.startswith("MSH", start):
                raise not_msh(text[start : start + 4])
            byte_start = 0
        else:
            data = raw
            byte_start = (
                0 if raw.startswith(b"MSH") else len(raw) - len(raw.lstrip(WHITESPACE_BYTES))
            )
            if not raw.startswith(b"MSH", byte_start):
                raise not_msh(raw[byte_start : byte_start + 4].decode("latin-1"))
            if raw.isascii() and b"\x1b" not in raw:
                text, start = raw.decode("ascii"), byte_start
            else:
                text, codec, warning = decode(raw, declared_charset(raw, byte_start))
                start = len(raw[:byte_start].decode(codec, "replace"))
                if not text.startswith("MSH", start):
                    raise not_msh("")
        fs = text[start + 3 : start + 4]
        if not fs or fs in "\r\n":
            raise MessageError("field separator missing", segment="MSH", field=1, code="102")
        enc_start = start + 4
        end = text.find(fs, enc_start)
        enc = text[enc_start:end] if end >= 0 else text[enc_start:]
        for stop in ("\r", "\n"):
            k = enc.find(stop)
            if k >= 0:
                enc = enc[:k]
        message = cls(
            text,
            data,
            start=start,
            byte_start=byte_start,
            delims=Delimiters.from_msh(fs, enc),
            codec=codec,
        )
        message._warning = warning
        return message

    @property
    def delimiters(self) -> Delimiters:
        """The delimiters declared by this message's MSH-1 and MSH-2."""
        return self._delims

    @property
    def encoding(self) -> str:
        """The Python codec used to decode this message and encode `to_bytes`."""
        if self._codec is None:
            self._resolve_codec()
        return self._codec or "utf-8"

    @property
    def charset_warning(self) -> str | None:
        """Why the declared character set was not used as is, or None."""
        if self._codec is None:
            self._resolve_codec()
        return self._warning

    def _resolve_codec(self) -> None:
        declared = self.charset
        codec = codec_for(declared) if declared else "utf-8"
        if codec is None:
            self._warning = "MSH-18 character set not recognised; decoded as UTF-8"
            codec = "utf-8"
        elif self._raw is not None and codec in NOT_ASCII_COMPATIBLE:
            self._warning = (
                "MSH-18 declares a UTF-16/32 character set for 8-bit data; decoded as UTF-8"
            )
            codec = "utf-8"
        self._codec = codec

    # -- segments --------------------------------------------------------------

    def _split_parts(self) -> list[str]:
        parts, self._seps = split_lines(self._text[self._start :] if self._start else self._text)
        self._parts = parts
        return parts

    def _build_index(
        self, into: tuple[list[str], list[list[str]]] | None = None
    ) -> dict[str, list[int]]:
        """Index the segments; with `into`, also collect what `segment_table`
        returns, in the same pass."""
        parts = self._parts or self._split_parts()
        fs = self._delims.field
        index: dict[str, list[int]] = {}
        order = self._order
        known = self._fields
        ids, table = into if into is not None else ([], [])
        for i, part in enumerate(parts):
            if part[3:4] == fs:
                sid = part[:3]
            else:
                sid = part.split(fs, 1)[0].strip(WHITESPACE)
                if not sid:
                    continue
            order.append(i)
            positions = index.get(sid)
            if positions is None:
                index[sid] = [i]
            else:
                positions.append(i)
            if into is not None:
                fields = known.get(i)
                if fields is None:
                    # `split_fields`: `sid` is the first field, stripped.
                    fields = known[i] = part.split(fs)
                    if sid in HEADER_SEGMENTS:
                        fields.insert(1, fs)
                ids.append(sid)
                table.append(fields)
        self._index = index
        return index

    def _part_text(self, i: int) -> str:
        parts = self._parts
        if parts is None:
            if i == 0:
                text, start = self._text, self._start
                end = len(text)
                for sep in ("\r", "\n"):
                    k = text.find(sep, start, end)
                    if k >= 0:
                        end = k
                return text[start:end]
            parts = self._split_parts()
        return parts[i] if i < len(parts) else self._appended[i - len(parts)]

    def _part_fields(self, i: int) -> list[str]:
        fields = self._fields.get(i)
        if fields is None:
            fields = self._fields[i] = split_fields(self._part_text(i), self._delims.field)
        return fields

    def _segment_at(self, i: int) -> Segment:
        seg = self._segs.get(i)
        if seg is None:
            seg = self._segs[i] = Segment(
                self._part_text(i),
                self._delims,
                owner=self,
                position=i,
                fields=self._fields.get(i),
            )
        return seg

    def _locate(self, sid: str, occurrence: int) -> int:
        """The part index of a segment occurrence, or -1."""
        index = self._index
        if index is None:
            if sid == "MSH" and occurrence == 1:
                return 0
            if occurrence > 1:
                index = self._build_index()
            else:
                i = self._first.get(sid)
                if i is None:
                    i = self._first[sid] = self._scan(sid)
                return i
        positions = index.get(sid)
        if positions is None or occurrence > len(positions):
            return -1
        return positions[occurrence - 1]

    def _scan(self, sid: str) -> int:
        parts = self._parts or self._split_parts()
        fs = self._delims.field
        prefix = sid + fs
        for i, part in enumerate(parts):
            if part.startswith(prefix) or (part[3:4] != fs and segment_id(part, fs) == sid):
                return i
        return -1

    def _find(self, sid: str, occurrence: int) -> Segment | None:
        i = self._locate(sid, occurrence)
        return None if i < 0 else self._segment_at(i)

    def segment_changed(self, i: int, text: str, fields: list[str]) -> None:
        """Record that the segment at part index `i` now reads `text` (called by
        `Segment` on write; not for direct use)."""
        parts = self._parts or self._split_parts()
        if i < len(parts):
            parts[i] = text
            self._dirty.add(i)
        else:
            self._appended[i - len(parts)] = text
        self._fields[i] = fields

    def segment(self, name: str, occurrence: int = 1) -> Segment | None:
        """The `occurrence`-th segment with id `name`, or None."""
        return self._find(name, occurrence)

    def segments_named(self, name: str) -> list[Segment]:
        """Every segment with id `name`, in message order."""
        index = self._index or self._build_index()
        return [self._segment_at(i) for i in index.get(name, ())]

    def segments(self) -> list[Segment]:
        """Every segment in message order (blank lines skipped)."""
        if self._index is None:
            self._build_index()
        return [self._segment_at(i) for i in self._order]

    def segment_table(self) -> tuple[list[str], list[list[str]]]:
        """The id and the fields (numbered as in `Segment`: index 0 the id, in
        MSH index 1 the field separator; escaped) of every segment, as two
        lists in message order, blank lines skipped. The field lists are the
        message's own split, shared with its reads: treat them as read-only.
        Unlike `segments`, it creates no `Segment` objects (the fast path for
        converters)."""
        ids: list[str] = []
        table: list[list[str]] = []
        if self._index is None:
            self._build_index((ids, table))
            return ids, table
        parts = self._parts or self._split_parts()
        n = len(parts)
        fs = self._delims.field
        for i in self._order:
            text = parts[i] if i < n else self._appended[i - n]
            ids.append(text[:3] if text[3:4] == fs else segment_id(text, fs))
            table.append(self._fields.get(i) or self._part_fields(i))
        return ids, table

    def segment_positions(self) -> dict[str, list[int]]:
        """For each segment id, the positions of its segments in the lists
        `segment_table` returns, increasing. When no line before a segment was
        skipped as blank this is the message's own index, shared: treat it as
        read-only, and as valid only until the message is changed."""
        index = self._index or self._build_index()
        order = self._order
        # Increasing part numbers from 0: the last is the count less one only
        # when each is its position.
        if not order or order[-1] == len(order) - 1:
            return index
        where = {i: pos for pos, i in enumerate(order)}
        return {sid: [where[i] for i in found] for sid, found in index.items()}

    def segment_ids(self) -> list[str]:
        """The id of every segment in message order (blank lines skipped)."""
        return [seg.id for seg in self.segments()]

    # -- reading ---------------------------------------------------------------

    def get(self, path: str) -> str:
        """The unescaped text at `path`, e.g. `PID-3[2].1`, `OBX[3]-5`, `MSH-9.2`.

        "" when the segment or element is absent; ValueError for a malformed
        path. A path that stops above the leaf returns that element whole with
        its lower delimiters (`get("PID-5")` of `Smith^John` is `Smith^John`);
        escape sequences in it are unescaped too, so split with `get_raw` or
        address deeper instead. MSH-1 is the field separator and MSH-2 the
        encoding characters, both literal.
        """
        return self.get_at(*compile_path(path))

    def get_at(  # noqa: PLR0917
        self, sid: str, occurrence: int, field: int, rep: int = 0, comp: int = 0, sub: int = 0
    ) -> str:
        """`get` at compiled indices (`thumpflow.hl7v2.path.compile_path`'s), for hot loops
        that read the same few elements of many messages."""
        i = self._locate(sid, occurrence)
        if i < 0:
            return ""
        fields = self._fields.get(i) or self._part_fields(i)
        raw = element(fields, self._delims, field, rep, comp, sub)
        if self._delims.escape in raw:
            return unescape(raw, self._delims, self.encoding)
        return raw

    def get_raw(self, path: str) -> str:
        """The text at `path` exactly as on the wire (escaped), "" when absent."""
        sid, occ, field, rep, comp, sub = compile_path(path)
        i = self._locate(sid, occ)
        return "" if i < 0 else element(self._part_fields(i), self._delims, field, rep, comp, sub)

    def get_all(self, path: str) -> list[str]:
        """Every repetition of a field (path without repetition index), each
        narrowed to the addressed component/subcomponent and unescaped; [] when
        the field is empty or absent. ValueError when `path` has a repetition."""
        sid, occ, field, rep, comp, sub = compile_path(path)
        i = self._locate(sid, occ)
        fields = self._part_fields(i) if i >= 0 else []
        d = self._delims
        return [
            unescape(r, d, self.encoding) if d.escape in r else r
            for r in elements(fields, d, field, rep, comp, sub)
        ]

    def header_field(self, field: int, component: int = 0) -> str:
        """MSH-`field` (or its `component`) as on the wire, "" when absent: the
        fast path for building responses."""
        return element(self._part_fields(0), self._delims, field, 0, component, 0)

    def _msh_field(self, field: int, comp: int = 0) -> str:
        raw = self.header_field(field, comp)
        if self._delims.escape in raw:
            return unescape(raw, self._delims, self.encoding)
        return raw

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, e.g. `A01`; when it is empty, EVN-1 (v2.1 and v2.2 name
        the event there only, MSH-9 being the message type alone)."""
        found = self._msh_field(9, 2)
        if found:
            return found
        evn = self.segment("EVN")
        return "" if evn is None else evn.get("1.1").strip()

    @property
    def charset(self) -> str:
        """MSH-18 as declared (first repetition), "" when absent."""
        return element(self._part_fields(0), self._delims, 18, 1, 0, 0).strip()

    # -- validation ------------------------------------------------------------

    def validate_structure(self) -> None:
        """Cheap ingest checks (`thumpflow.hl7v2.structure.check_structure`); raises
        `MessageError` with the location."""
        self._index or self._build_index()
        parts = self._parts or self._split_parts()
        fs = self._delims.field
        ids = [segment_id(parts[i], fs) for i in self._order]
        check_structure(self.message_type, self.control_id, ids)

    def segment_index(self, segment: Segment) -> int:
        """The 1-based position of `segment` in this message (for error locations)."""
        if self._index is None:
            self._build_index()
        for n, i in enumerate(self._order, start=1):
            if self._segs.get(i) is segment:
                return n
        raise ValueError("segment does not belong to this message")

    # -- writing ---------------------------------------------------------------

    def set(self, path: str, value: str) -> None:
        """Store `value` as text at `path`, escaped in this message's delimiters.

        Missing fields, repetitions, components and subcomponents are created
        empty; a missing segment occurrence is appended (after the last
        segment, before trailing blank lines), with empty segments of the same
        id filling any gap. A path without repetition and component replaces
        the whole field. ValueError for MSH-1/MSH-2, for a value the message's
        character set cannot encode, or for a malformed path. Changing MSH-18
        does not change the encoding used by `to_bytes`.
        """
        value.encode(self.encoding)
        sid, occ, field, rep, comp, sub = compile_path(path)
        self._writable(sid, occ).set_at(field, rep, comp, sub, escape(value, self._delims))

    def set_raw(self, path: str, value: str) -> None:
        """Store wire-format `value` at `path` without escaping (see `Segment.set_raw`)."""
        value.encode(self.encoding)
        sid, occ, *_ = compile_path(path)
        seg = self._writable(sid, occ)
        seg.set_raw(path[path.index("-") + 1 :], value)

    def _writable(self, sid: str, occurrence: int) -> Segment:
        index = self._index or self._build_index()
        positions = index.setdefault(sid, [])
        parts = self._parts or self._split_parts()
        while len(positions) < occurrence:
            i = len(parts) + len(self._appended)
            self._appended.append(sid)
            positions.append(i)
            self._order.append(i)
        return self._segment_at(positions[occurrence - 1])

    def _layout(self) -> list[int | str]:
        return layout(self._parts or self._split_parts(), self._seps, self._order, self._appended)

    def to_str(self) -> str:
        """The message text (surrounding whitespace included), with modifications."""
        if not self._dirty and not self._appended:
            return self._text
        parts = self._parts or self._split_parts()
        body = "".join(parts[x] if isinstance(x, int) else x for x in self._layout())
        return self._text[: self._start] + body

    def to_bytes(self) -> bytes:
        """The message bytes: exactly the parsed bytes while unmodified; after
        `set`, modified and appended segments are encoded in `encoding` and all
        other bytes are the original ones. UnicodeEncodeError only for text
        given to `parse` as str that its declared character set cannot encode."""
        codec = self.encoding
        raw = self._raw
        if not self._dirty and not self._appended:
            return raw if raw is not None else self._text.encode(codec)
        parts = self._parts or self._split_parts()
        if raw is None:
            return self.to_str().encode(codec)
        original = split_lines_bytes(raw[self._byte_start :])
        if len(original) != len(parts):
            return self.to_str().encode(codec)
        return rewrite_bytes(
            raw[: self._byte_start], original, parts, self._layout(), self._dirty, codec=codec
        )

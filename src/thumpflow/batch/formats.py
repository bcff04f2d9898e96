"""Record formats of batch files: CSV, NDJSON and HL7 v2 batch files, by name.

Readers take a binary stream opened by the caller and yield `SourceRecord`s
one at a time, so a CSV or NDJSON file of any size is read in constant
memory. Each record's `origin` is `NAME:line N` (N is the 1-based line on
which the record starts); a record that cannot be read keeps, as `raw`, its
original text without its final line end.

A record that cannot be read (a CSV row with the wrong number of fields or
broken quoting, an NDJSON line that is not a JSON object, bytes not valid in
the encoding) is yielded as an `UnreadableRecord` whose `problem` says what is
wrong and where, never what the data was; reading goes on with the next line.
`count_records` counts exactly the records the reader yields, unreadable ones
included, and is what a manifest's `record_count` is compared with.

A file that cannot be read at all raises `FormatError`: a CSV file without a
usable header row, and an HL7 v2 batch file whose structure or BTS/FTS counts
are wrong. HL7 v2 batch files are parsed whole by `thumpflow.hl7v2.parse_batch`
(their counts must be checked before any message is released), so they are
held in memory; CSV and NDJSON are streamed.

Encoders turn record data into bytes for the writers; an HL7 v2 batch gets
its FHS/BHS header and a BTS/FTS trailer with the true counts. Each format
lives in its own module (`csv_format`, `ndjson_format`, `hl7_format`); this
one chooses among them by `Format`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from thumpflow.batch.csv_format import CsvEncoder, CsvOptions, count_csv, read_csv
from thumpflow.batch.hl7_format import Hl7BatchEncoder, count_hl7_batch, read_hl7_batch
from thumpflow.batch.ndjson_format import NdjsonEncoder, count_ndjson, read_ndjson
from thumpflow.batch.reading import ByteStream
from thumpflow.core.batch import SourceRecord

Format = Literal["csv", "ndjson", "hl7_batch"]
Encoder = CsvEncoder | NdjsonEncoder | Hl7BatchEncoder


def read_records(
    fmt: Format, stream: ByteStream, name: str, csv_options: CsvOptions | None = None
) -> Iterator[SourceRecord]:
    """The records of one file in `fmt`, in file order (see the module docstring)."""
    if fmt == "csv":
        return read_csv(stream, name, csv_options or CsvOptions())
    if fmt == "ndjson":
        return read_ndjson(stream, name)
    return read_hl7_batch(stream.read(), name)


def count_records(fmt: Format, stream: ByteStream, csv_options: CsvOptions | None = None) -> int:
    """How many records `read_records` yields for this stream (FormatError as it would)."""
    if fmt == "csv":
        return count_csv(stream, csv_options or CsvOptions())
    if fmt == "ndjson":
        return count_ndjson(stream)
    return count_hl7_batch(stream.read())

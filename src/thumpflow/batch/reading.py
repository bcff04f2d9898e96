"""What every batch-file reader shares: the stream it reads, the record it yields when
a record cannot be read, and the error for a file that cannot be read at all.

A record that cannot be read is never dropped and never stops the reading:
it is yielded as an `UnreadableRecord` (its origin, its original text as
`raw`, and a `problem` naming what is wrong and where, never the data), and
reading goes on with the next record. Only a file that cannot be read at all
(no usable CSV header, a broken HL7 v2 batch structure) raises
`FormatError`, before any record is yielded for HL7 v2 batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from thumpflow.core.batch import SourceRecord
from thumpflow.core.errors import ThumpflowError


class ByteStream(Protocol):
    """What readers need of a binary stream: lines by iteration, or everything by `read`."""

    def __iter__(self) -> Iterator[bytes]: ...

    def read(self, size: int = -1, /) -> bytes: ...


class FormatError(ThumpflowError):
    """A batch file that cannot be read at all; the text names the file and where."""


@dataclass(slots=True)
class UnreadableRecord(SourceRecord):
    """A record that could not be read; `problem` names what is wrong (never the data)."""

    problem: str = ""

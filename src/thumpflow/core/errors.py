"""The error vocabulary. Every error a person may read names what and where.

No error message may contain patient data: locations name files, lines,
channels, segments and fields, never field values from a message.
"""

from __future__ import annotations


class ThumpflowError(Exception):
    """Base of every error thumpflow raises on purpose."""


class ConfigError(ThumpflowError):
    """A configuration that cannot be used. `problems` lists each located finding."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class MessageError(ThumpflowError):
    """A message that cannot be parsed or used, with where the problem is.

    `segment` is the segment id (e.g. `PID`), `segment_index` its 1-based
    position in the message, `field` the 1-based field number; any may be
    None when the problem is not tied to one. `code` is an HL7 table 0357
    message error condition code (100 segment sequence error, 101 required
    field missing, 102 data type error, 103 table value not found, 200
    unsupported message type, 203 unsupported version id, 207 application
    internal error).
    """

    def __init__(
        self,
        reason: str,
        *,
        segment: str | None = None,
        segment_index: int | None = None,
        field: int | None = None,
        code: str = "207",
    ) -> None:
        self.reason = reason
        self.segment = segment
        self.segment_index = segment_index
        self.field = field
        self.code = code
        super().__init__(self.describe())

    def location(self) -> str:
        parts = []
        if self.segment is not None:
            where = self.segment
            if self.segment_index is not None:
                where += f" (segment {self.segment_index})"
            parts.append(where)
        if self.field is not None:
            parts.append(f"field {self.field}")
        return ", ".join(parts)

    def describe(self) -> str:
        where = self.location()
        return f"{where}: {self.reason}" if where else self.reason


class StoreError(ThumpflowError):
    """The durable store failed; what was being written is not committed."""


class BatchSourceError(ThumpflowError):
    """Batch input that must not be imported (missing, partial, late, checksum mismatch)."""


class SourceReadError(ThumpflowError):
    """Reading from a source system failed (transport, status, content); nothing was read."""


class BatchDestinationError(ThumpflowError):
    """A batch destination could not write (retries exhausted); the run fails, nothing is lost.

    The text names the destination, counts and the kind of failure, never a record value.
    """


class OutputConflictError(BatchDestinationError):
    """A run's output file is taken by the output of another window; nothing was replaced.

    The run fails with an alert and its input is left for a later run; the
    text names the destination, the file and the windows, never a record value.
    """

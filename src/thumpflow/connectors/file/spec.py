"""Configuration of the file destination. Pure data: no I/O."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from thumpflow.connectors.fields import LocalPath


class FileDestinationSpec(BaseModel):
    """Append each delivery as one record to a local file, exactly once across crashes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["file"] = Field(description="Destination type.")
    path: LocalPath = Field(
        description="Data file to append to; parent directories are created. With rotation "
        "the UTC date (`daily`) or a sequence number (`size`) is inserted before the suffix. "
        "A sidecar `<file>.journal` records what was committed."
    )
    format: Literal["hl7", "jsonl"] = Field(
        default="hl7",
        description="`hl7`: the message bytes, segments separated by CR, one record per line. "
        "`jsonl`: one JSON object per line with the delivery metadata and the body.",
    )
    rotate: Literal["none", "daily", "size"] = Field(
        default="none",
        description="Start a new file every UTC day (`daily`), when the next batch would pass "
        "`max_bytes` (`size`), or never (`none`).",
    )
    max_bytes: int = Field(
        default=104_857_600,
        ge=1,
        description="With `rotate: size`, the size a file may reach before the next one starts.",
    )
    fsync: bool = Field(
        default=True,
        description="Flush data and journal to disk before answering. Off, an operating system "
        "crash may lose acknowledged records (a process crash still cannot).",
    )
    max_batch: int = Field(
        default=500,
        ge=1,
        description="Deliveries appended per write (one flush per batch).",
    )
    remembered_keys: int = Field(
        default=100_000,
        ge=1,
        description="How many recent delivery keys are recognised as resends after a restart.",
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "file",
        "path": "var/out/adt.hl7",
        "format": "hl7",
        "rotate": "daily",
    }

"""Configuration of the file drop source and the batch file destination. Pure data: no I/O.

`CsvSpec` lives in `thumpflow.connectors.csv` (shared with the SFTP connectors);
it is re-exported here for existing imports.
"""

from __future__ import annotations

import string
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from thumpflow.connectors.csv import CsvSpec

__all__ = ["BatchFileDestinationSpec", "CsvSpec", "FileDropSourceSpec"]

NAME_FIELDS = frozenset({"job", "run", "window_end", "date"})


class FileDropSourceSpec(BaseModel):
    """Read batch files dropped in a local directory, each checked against its manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["file_drop"] = Field(description="Source type.")
    directory: str = Field(description="The drop directory; files are taken from it, not below.")
    pattern: str = Field(
        default="*",
        description="Glob matched against file names (e.g. `census-*.csv`). Hidden files, "
        "manifests (`*.manifest.json`) and reason files are never taken.",
    )
    format: Literal["csv", "ndjson", "hl7_batch"] = Field(
        description="Record format: CSV with a header row, NDJSON (one JSON object per line), "
        "or an HL7 v2 batch file (FHS/BHS..BTS/FTS, one record per message)."
    )
    csv: CsvSpec = Field(default_factory=CsvSpec, description="CSV dialect (format `csv`).")
    manifest: Literal["required", "optional", "none"] = Field(
        default="required",
        description="`required`: a file without `<file>.manifest.json` is not imported. "
        "`optional`: a manifest is checked when present. `none`: manifests are ignored.",
    )
    source_system: str | None = Field(
        default=None,
        description="The source system id a manifest must name; unset, any is accepted.",
    )
    max_age: float | None = Field(
        default=None,
        gt=0,
        description="Seconds: a file whose window ended longer ago than this (or, when its "
        "window end is not a timestamp, that was created longer ago) is late and not imported.",
    )
    processed_dir: str | None = Field(
        default=None,
        description="Where imported files and their manifests go; default `<directory>/processed`. "
        "Must be on the same file system as the drop directory (moves are renames).",
    )
    failed_dir: str | None = Field(
        default=None,
        description="Where refused files go, with a `<file>.reason` text beside them; "
        "default `<directory>/failed`. Same file system as the drop directory.",
    )
    settle_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A file (or its manifest) modified less than this many seconds ago is "
        "still being written: it is reported as partial and left where it is.",
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "file_drop",
        "directory": "var/drop/lab",
        "pattern": "results-*.csv",
        "format": "csv",
        "manifest": "required",
        "source_system": "lab-system",
        "max_age": 86400,
    }


class BatchFileDestinationSpec(BaseModel):
    """Write each run's records to one file, atomically, with a manifest beside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["batch_file"] = Field(description="Destination type.")
    directory: str = Field(description="Directory the files are written to; created if absent.")
    name: str = Field(
        description="File name template with `{job}`, `{run}`, `{window_end}` (characters other "
        "than letters, digits, `.`, `_` and `-` become `-`; `unbounded` when open) and `{date}` "
        "(the window end's UTC date, else the date the run began). Without `{run}`, a re-run of "
        "the same window replaces the file instead of adding one."
    )
    format: Literal["csv", "ndjson", "hl7_batch"] = Field(
        description="`csv` (header row, then `columns`), `ndjson` (one JSON object per line), "
        "or `hl7_batch` (each record's `message` text inside FHS/BHS..BTS/FTS with counts)."
    )
    csv: CsvSpec = Field(default_factory=CsvSpec, description="CSV dialect (format `csv`).")
    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="CSV column order; unset, the keys of the run's first record. "
        "Keys not listed are not written; missing ones are empty.",
    )
    source_system: str = Field(
        description="The source system id written into each manifest (and FHS-3/BHS-3)."
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "batch_file",
        "directory": "var/out/warehouse",
        "name": "encounters-{date}.ndjson",
        "format": "ndjson",
        "source_system": "thumpflow",
    }

    @field_validator("name")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"not a valid name template: {exc}") from None
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if field not in NAME_FIELDS or spec or conversion:
                known = ", ".join(f"{{{n}}}" for n in sorted(NAME_FIELDS))
                raise ValueError(f"unknown placeholder {{{field}}}; use {known}")
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("must be a plain file name (no directories, not hidden)")
        return value

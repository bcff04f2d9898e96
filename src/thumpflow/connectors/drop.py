"""The configuration the drop-directory sources and the batch file writers share.

Used by the local (`batchfile`) and the SFTP connectors alike:
`DropSourceFields` (which files a drop source takes and how it checks them)
and `BatchFileFields` (how a batch writer names and encodes its file). Each
connector's spec inherits one and adds its own `type`, location fields and
example. Pure data: invalid values are refused when the configuration is
loaded (a name template with an unknown placeholder, a directory or a
hidden name), never when a run writes its file.

The behaviour they share is in `thumpflow.connectors.drop_source` (taking,
checking and refusing drop files) and `thumpflow.connectors.batch_destination`
(naming, encoding and last-wins bookkeeping of batch files).
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from thumpflow.connectors.csv import CsvSpec
from thumpflow.connectors.fields import Duration

__all__ = [
    "NAME_FIELDS",
    "BatchFileFields",
    "DropSourceFields",
    "name_fields",
]

NAME_FIELDS = frozenset({"job", "run", "window_end", "date"})

_EXTENSIONS = {"csv": "csv", "ndjson": "ndjson", "hl7_batch": "hl7"}


class DropSourceFields(BaseModel):
    """The fields of a drop-directory source that do not depend on where the directory is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    max_age: Duration | None = Field(
        default=None,
        gt=0,
        description="Seconds: a file whose window ended longer ago than this (or, when its "
        "window end is not a timestamp, that was created longer ago) is late and not imported.",
    )
    processed_dir: str | None = Field(
        default=None,
        description="Where imported files and their manifests are moved; default "
        "`<directory>/processed`; created if absent. Moves are renames: a local directory "
        "must be on the same file system as the drop directory.",
    )
    failed_dir: str | None = Field(
        default=None,
        description="Where refused files are moved, with a `<file>.reason` text beside them; "
        "default `<directory>/failed`; created if absent. Same rule as `processed_dir`.",
    )
    settle_seconds: Duration = Field(
        default=5.0,
        ge=0,
        description="A file (or its manifest) modified less than this many seconds ago (for a "
        "remote directory, by the server's clock as seen from here) is still being written: "
        "it is reported as partial and left where it is.",
    )


class BatchFileFields(BaseModel):
    """The fields of a batch file writer that do not depend on where the file is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        description="File name template with `{job}`, `{run}`, `{window_end}` (characters other "
        "than letters, digits, `.`, `_` and `-` become `-`; `unbounded` when open, as it is for "
        "every run but a re-run of a past window) and `{date}` (the window end's UTC date, else "
        "the date the run began). Default `{job}-{run}.<csv|ndjson|hl7>`. A name must tell "
        "windows apart: it needs `{run}` or `{date}` (with `{date}` alone, a schedule of at most "
        "one run a day); a run never replaces a file another window wrote (it fails with an "
        "alert, its input left for a later run), while a re-run of the same window replaces "
        "its own file. A run that read no records leaves an existing file as it is.",
    )
    format: Literal["csv", "ndjson", "hl7_batch"] = Field(
        description="`csv` (header row, then `columns`), `ndjson` (one JSON object per line: "
        "the record's canonical JSON, keys sorted, so a line's SHA-256 is the record's content "
        "hash), or `hl7_batch` (each record's `message` text inside FHS/BHS..BTS/FTS with "
        "counts)."
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

    @property
    def template(self) -> str:
        """The file name template: `name`, else `{job}-{run}.<extension of the format>`."""
        return self.name or f"{{job}}-{{run}}.{_EXTENSIONS[self.format]}"

    @field_validator("name")
    @classmethod
    def _known_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
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


def name_fields(template: str) -> set[str]:
    """The placeholders a (valid) name template uses."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}

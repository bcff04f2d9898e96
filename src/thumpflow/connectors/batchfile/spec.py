"""Configuration of the file drop source and the batch file destination. Pure data: no I/O.

`CsvSpec` lives in `thumpflow.connectors.csv` (shared with the SFTP connectors);
it is re-exported here for existing imports. The fields that do not depend on
where files live come from `thumpflow.connectors.drop`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from thumpflow.connectors.csv import CsvSpec
from thumpflow.connectors.drop import BatchFileFields, DropSourceFields
from thumpflow.connectors.fields import LocalPath

__all__ = ["BatchFileDestinationSpec", "CsvSpec", "FileDropSourceSpec"]


class FileDropSourceSpec(DropSourceFields):
    """Read batch files dropped in a local directory, each checked against its manifest."""

    type: Literal["file_drop"] = Field(description="Source type.")
    directory: LocalPath = Field(
        description="The drop directory; files are taken from it, not below."
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


class BatchFileDestinationSpec(BatchFileFields):
    """Write each run's records to one file, atomically, with a manifest beside it."""

    type: Literal["batch_file"] = Field(description="Destination type.")
    directory: LocalPath = Field(
        description="Directory the files are written to; created if absent."
    )

    example: ClassVar[dict[str, Any]] = {
        "type": "batch_file",
        "directory": "var/out/warehouse",
        "name": "encounters-{date}.ndjson",
        "format": "ndjson",
        "source_system": "thumpflow",
    }

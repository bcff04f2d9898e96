"""The CSV dialect of the batch file connectors (local and SFTP). Pure data: no I/O.

A helper shared by connectors, not a connector.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from thumpflow.batch import CsvOptions, check_encoding


class CsvSpec(BaseModel):
    """CSV dialect: RFC 4180 with a header row unless changed here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="Field separator, one character."
    )
    quotechar: str = Field(
        default='"',
        min_length=1,
        max_length=1,
        description="Quote character; inside a quoted field it is doubled.",
    )
    quoting: Literal["minimal", "all", "nonnumeric", "none"] = Field(
        default="minimal",
        description="Which fields are quoted when writing (`minimal`: only those that need it). "
        "`none` also turns quote handling off when reading.",
    )
    encoding: str = Field(
        default="utf-8",
        description="Character encoding; must be ASCII-compatible (utf-8, latin-1, cp1252, ...). "
        "A UTF-8 byte order mark is tolerated when reading.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return check_encoding(value)

    def options(self) -> CsvOptions:
        """The dialect as `thumpflow.batch.CsvOptions`."""
        return CsvOptions(self.delimiter, self.quotechar, self.quoting, self.encoding)

"""Configuration of the SQL batch source and upsert destination. Pure data: no I/O."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from thumpflow.connectors.fields import Duration, LocalPath
from thumpflow.connectors.sql._query import IDENTIFIER, WINDOW_PARAMETERS, parameters

Identifier = Annotated[str, StringConstraints(pattern=rf"^{IDENTIFIER}$")]

_PASSWORD_IN_DSN = re.compile(r"password\s*=|^postgres(?:ql)?://[^@/?#]*:[^@/?#]*@", re.IGNORECASE)


class SqlConnection(BaseModel):
    """Which database to use and how to log in (shared by the SQL source and destination)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dialect: Literal["sqlite", "postgresql"] = Field(description="Database engine.")
    database: LocalPath | None = Field(
        default=None, description="SQLite: path of the database file (required for sqlite)."
    )
    dsn: str | None = Field(
        default=None,
        description="PostgreSQL: libpq connection string or `postgresql://` URI, without a "
        "password (required for postgresql; a password in it is refused).",
    )
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="PostgreSQL: environment variable holding the password, read when connecting.",
    )
    password_file: LocalPath | None = Field(
        default=None,
        description="PostgreSQL: file holding the password (trailing newline ignored), read "
        "when connecting.",
    )
    timeout_seconds: Duration = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL: time limit for connecting. SQLite: how long to wait for a "
        "lock held by another connection.",
    )

    @model_validator(mode="after")
    def _dialect_fields(self) -> Self:
        if self.dialect == "sqlite":
            if self.database is None:
                raise ValueError("dialect sqlite needs database (the file path)")
            if self.dsn is not None or self.password_env or self.password_file:
                raise ValueError("dsn, password_env and password_file are for postgresql")
        else:
            if self.dsn is None:
                raise ValueError("dialect postgresql needs dsn")
            if self.database is not None:
                raise ValueError("database is for sqlite; name the database in dsn")
            if _PASSWORD_IN_DSN.search(self.dsn):
                raise ValueError(
                    "dsn must not contain a password; use password_env or password_file"
                )
            if self.password_env is not None and self.password_file is not None:
                raise ValueError("give at most one of password_env and password_file")
        return self


class SqlSourceSpec(SqlConnection):
    """Read the rows a query returns for a run's window, streamed, as batch records."""

    type: Literal["sql"] = Field(description="Source type.")
    query: str = Field(
        min_length=1,
        description="SELECT run for each window. `:window_start` and `:window_end` are bound "
        "to the window's watermarks as text, or NULL when that side is unbounded (the first "
        "run), e.g. `WHERE (updated_at > :window_start OR :window_start IS NULL)`. No other "
        "named parameters are allowed.",
    )
    watermark_column: str | None = Field(
        default=None,
        min_length=1,
        description="Result column whose greatest value over the rows read becomes the next "
        "run's `window_start`; without it the source keeps no watermark.",
    )
    fetch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Rows fetched per round trip (PostgreSQL: through a server-side cursor); "
        "bounds the memory a run needs.",
    )

    @model_validator(mode="after")
    def _known_parameters(self) -> Self:
        unknown = parameters(self.query) - set(WINDOW_PARAMETERS)
        if unknown:
            names = ", ".join(f":{name}" for name in sorted(unknown))
            raise ValueError(
                f"query uses unknown parameters {names}; only :window_start and :window_end "
                "are bound"
            )
        return self

    example: ClassVar[dict[str, Any]] = {
        "type": "sql",
        "dialect": "postgresql",
        "dsn": "host=ehr-replica.example.org dbname=ehr user=thumpflow",
        "password_env": "EHR_REPLICA_PASSWORD",
        "query": "SELECT mrn, family, given, birth_date, updated_at FROM patients "
        "WHERE (updated_at > :window_start OR :window_start IS NULL) "
        "AND (updated_at <= :window_end OR :window_end IS NULL) ORDER BY updated_at",
        "watermark_column": "updated_at",
        "fetch_size": 1000,
    }


class SqlUpsertDestinationSpec(SqlConnection):
    """Upsert each item into a table by business key; rows already up to date are skipped."""

    type: Literal["sql_upsert"] = Field(description="Destination type.")
    table: str = Field(
        pattern=rf"^{IDENTIFIER}(\.{IDENTIFIER})?$",
        description="Target table, optionally `schema.table`. Names are quoted, so they are "
        "case-sensitive on PostgreSQL.",
    )
    key_columns: list[Identifier] = Field(
        min_length=1,
        description="Columns forming the business key; the table needs a primary key or "
        "unique constraint on exactly these columns.",
    )
    columns: dict[Identifier, str] = Field(
        min_length=1,
        description="Column name -> field of the item's data written to it; must include every "
        "key column. A missing non-key field is written as NULL.",
    )
    create_table: bool = Field(
        default=False,
        description="Create the table (all columns text, primary key on `key_columns`) if it "
        "does not exist. For tests and demonstrations; real tables are made by their owners.",
    )

    @model_validator(mode="after")
    def _keys_are_columns(self) -> Self:
        missing = [key for key in self.key_columns if key not in self.columns]
        if missing:
            raise ValueError(f"key_columns not in columns: {', '.join(missing)}")
        if len(set(self.key_columns)) != len(self.key_columns):
            raise ValueError("key_columns has a duplicate")
        return self

    example: ClassVar[dict[str, Any]] = {
        "type": "sql_upsert",
        "dialect": "sqlite",
        "database": "var/warehouse.db",
        "table": "patients",
        "key_columns": ["mrn"],
        "columns": {"mrn": "mrn", "family": "family", "given": "given", "birth_date": "dob"},
    }

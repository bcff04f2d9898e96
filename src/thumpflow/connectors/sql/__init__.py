"""SQL batch connectors: a watermark query source and an upsert destination (SQLite, PostgreSQL)."""

from thumpflow.connectors.sql._connect import SqlError
from thumpflow.connectors.sql.destination import SqlUpsertDestination
from thumpflow.connectors.sql.source import SqlSource
from thumpflow.connectors.sql.spec import SqlSourceSpec, SqlUpsertDestinationSpec

__all__ = [
    "SqlError",
    "SqlSource",
    "SqlSourceSpec",
    "SqlUpsertDestination",
    "SqlUpsertDestinationSpec",
]

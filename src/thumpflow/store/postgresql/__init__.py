"""The PostgreSQL store: the engine's state on a shared PostgreSQL database.

`PostgresStore` implements every storage protocol of `thumpflow.core.ports`
with the SQLite store's semantics (the contract suite in
`tests/store/contract` runs both), so several engine processes can share one
database. Driver: psycopg 3 (see docs/architecture.md for why).
"""

from thumpflow.store.postgresql._copy import CopyCounts
from thumpflow.store.postgresql._db import describe
from thumpflow.store.postgresql._store import PostgresStore

__all__ = ["CopyCounts", "PostgresStore", "describe"]

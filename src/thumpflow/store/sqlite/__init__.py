"""The embedded durable store: SQLite in WAL mode, one writer thread with group commit.

`SqliteStore` implements `thumpflow.core.ports.Store`. Open it read-write in
the engine process; open it with `read_only=True` from tools (`thumpflow
status`, `thumpflow dlq list`) that read a database the engine is writing.
"""

from thumpflow.store.crypt import PayloadCipher
from thumpflow.store.group import WriterStats
from thumpflow.store.sqlite._store import SqliteStore

__all__ = ["PayloadCipher", "SqliteStore", "WriterStats"]

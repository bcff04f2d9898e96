"""Fixtures shared by the whole suite: the session's throwaway PostgreSQL cluster."""

from tests.postgres import dsn, pg_cluster

__all__ = ["dsn", "pg_cluster"]

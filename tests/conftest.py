"""Fixtures shared by the whole suite: the session's throwaway PostgreSQL cluster."""

from tests.postgres import pg_cluster

__all__ = ["pg_cluster"]

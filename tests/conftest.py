"""Fixtures shared by the whole suite: the session's throwaway PostgreSQL cluster.

Property tests run without Hypothesis's per-example deadline: speed is measured
by benchmarks, never asserted by a test, and a deadline would fail a correct
example that a loaded machine ran slowly.
"""

from hypothesis import settings

from tests.postgres import dsn, pg_cluster

settings.register_profile("thumpflow", deadline=None)
settings.load_profile("thumpflow")

__all__ = ["dsn", "pg_cluster"]

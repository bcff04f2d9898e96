"""Cluster configuration: file destinations refused in a cluster, with where and why."""

from __future__ import annotations

import pytest

from thumpflow.config import parse_config
from thumpflow.core.errors import ConfigError

BASE = """\
version: 1
store: {store}
{cluster}channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - id: ehr
        type: http
        url: http://127.0.0.1:9/
      - id: archive
        type: file
        path: out
"""

PG = '{type: postgresql, dsn: "host=127.0.0.1 dbname=tf", password_env: PGPASSWORD}'


def test_a_file_destination_in_a_cluster_is_a_located_error_that_says_why() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(BASE.format(store=PG, cluster=""), "cluster.yaml")
    [problem] = refused.value.problems
    assert problem.startswith("cluster.yaml:11:9: channel 'adt' > destination 'archive': ")
    assert "cannot run in a cluster" in problem and "journal is on one host's disk" in problem
    assert "cluster: {enabled: false}" in problem


def test_a_file_destination_is_fine_alone_on_postgresql_or_on_sqlite() -> None:
    alone = parse_config(BASE.format(store=PG, cluster="cluster: {enabled: false}\n"), "a.yaml")
    assert not alone.cluster.enabled
    embedded = parse_config(BASE.format(store="{path: var/x.db}", cluster=""), "b.yaml")
    assert embedded.cluster.enabled and embedded.store.type == "sqlite"

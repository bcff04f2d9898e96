"""Cluster configuration: file destinations, and job paths outside the shared folders,
refused in a cluster, with where and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from thumpflow.config import load_config, parse_config
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


JOB = """\
version: 1
store: {store}
{cluster}channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations: [{{id: ehr, type: http, url: "http://127.0.0.1:9/"}}]
jobs:
  - id: census
    schedule: {{interval: 1h}}
    source:
      type: file_drop
      directory: /srv/drop
      pattern: "census-*.csv"
      format: csv
      manifest: none
      source_system: REG
    schema: [{{name: visit, type: string, required: true}}]
    business_key: [visit]
    destinations:
      - id: warehouse
        type: sql_upsert
        dialect: sqlite
        database: /var/lib/thumpflow/warehouse.db
        table: census
        key_columns: [visit]
        columns: {{visit: visit}}
      - id: extract
        type: batch_file
        directory: /mnt/shared/out/../out/census
        format: ndjson
        source_system: thumpflow
"""


def test_a_job_path_outside_the_shared_folders_is_a_located_error_in_a_cluster(
    tmp_path: Path,
) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text(JOB.format(store=PG, cluster="cluster: {shared_folders: [/mnt/shared]}\n"))
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    problems = refused.value.problems
    assert [p.split(": ")[0] for p in problems] == [f"{config}:13:7", f"{config}:24:9"]
    assert "job 'census' > source > directory: a local path in a cluster" in problems[0]
    assert "job 'census' > destination 'warehouse' > database: " in problems[1]
    assert all("`cluster.shared_folders`" in p and "scheduler duty" in p for p in problems)
    assert not any("extract" in p for p in problems), "the extract's folder is shared"


def test_job_paths_inside_the_shared_folders_or_not_in_a_cluster_are_fine(
    tmp_path: Path,
) -> None:
    shared = "cluster: {shared_folders: [/mnt/shared, /var/lib/thumpflow, /srv/drop]}\n"
    config = tmp_path / "cluster.yaml"
    config.write_text(JOB.format(store=PG, cluster=shared))
    assert load_config(config).cluster.shared_folders[1] == "/var/lib/thumpflow"
    config.write_text(JOB.format(store=PG, cluster="cluster: {enabled: false}\n"))
    assert not load_config(config).cluster.enabled
    config.write_text(JOB.format(store="{path: var/x.db}", cluster=""))
    assert load_config(config).store.type == "sqlite"

"""Configuration: the example is valid, bad files get located errors, docs match the models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from thumpflow.config import load_config, parse_config
from thumpflow.config.reference import reference_markdown
from thumpflow.core.errors import ConfigError
from thumpflow.core.lanes import Lane

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
version: 1
channels:
  - id: adt
    source: {type: mllp, host: 127.0.0.1, port: 2575}
    destinations:
      - id: out
        type: file
        path: var/out/a.hl7
        retry: {base: 250ms, cap: 2m, max_age: 1d}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "chan.yaml")
    return caught.value.problems


def test_the_example_configuration_is_valid() -> None:
    config = load_config(ROOT / "examples" / "thumpflow.yaml")
    channel = config.channels[0]
    assert channel.source.port == 2575
    assert channel.lanes.rules[0].lane is Lane.STAT
    assert {d.id for d in channel.destinations} == {"archive", "adt-feed"}


def test_durations_are_parsed() -> None:
    retry = parse_config(GOOD).channels[0].destinations[0].retry
    assert (retry.base, retry.cap, retry.max_age) == (0.25, 120.0, 86400.0)


def test_wrong_field_type_names_file_line_channel_destination_and_field() -> None:
    text = GOOD.replace("path: var/out/a.hl7", "path: var/out/a.hl7\n        concurrency: lots")
    (problem,) = problems_of(text)
    assert problem.startswith("chan.yaml:9:")
    assert "channel 'adt' > destination 'out' > concurrency" in problem
    assert "integer" in problem


def test_unknown_field_and_missing_field_are_both_reported() -> None:
    text = GOOD.replace("type: file\n", "type: file\n        colour: blue\n").replace(
        "        path: var/out/a.hl7\n", ""
    )
    found = problems_of(text)
    assert any("destination 'out' > colour" in p and "unknown key 'colour'" in p for p in found)
    assert any("destination 'out' > path" in p and "required" in p.lower() for p in found)


def test_unknown_destination_type_is_named() -> None:
    (problem,) = problems_of(GOOD.replace("type: file", "type: carrier-pigeon"))
    assert "destination 'out'" in problem
    assert "carrier-pigeon" in problem


def test_bad_hl7_path_in_a_filter_is_located() -> None:
    text = GOOD.replace(
        "    destinations:", "    filter:\n      - {path: 'PID-x', equals: A}\n    destinations:"
    )
    (problem,) = problems_of(text)
    assert problem.startswith("chan.yaml:6:")
    assert "filter[0] > path" in problem


def test_condition_needs_exactly_one_operator() -> None:
    text = GOOD.replace(
        "    destinations:",
        "    filter:\n      - {path: MSH-9.1, equals: A, prefix: B}\n    destinations:",
    )
    (problem,) = problems_of(text)
    assert "exactly one of" in problem


def test_duplicate_ids_and_duplicate_keys() -> None:
    text = GOOD + GOOD.split("channels:\n", 1)[1]
    found = problems_of(text)
    assert any("channel 'adt': id is already used" in p for p in found)
    assert any("destination 'out': id is already used in channel 'adt'" in p for p in found)
    (dup_key,) = problems_of(GOOD.replace("version: 1\n", "version: 1\nversion: 1\n"))
    assert dup_key.startswith("chan.yaml:2:1:") and "appears twice" in dup_key


def job_text(job_id: str, destination: str, reconciles: str = "adt") -> str:
    return f"""\
  - id: {job_id}
    schedule: {{interval: 1h}}
    reconciles: {reconciles}
    source: {{type: file_drop, directory: drop, format: csv}}
    schema: [{{name: visit}}]
    business_key: [visit]
    destinations:
      - {{id: {destination}, type: batch_file, directory: out, name: 'a-{{run}}.csv',
         format: csv, source_system: X}}
"""


def test_a_reconciling_job_may_share_its_channel_destination_id_once() -> None:
    other = GOOD.replace("- id: adt", "- id: lab").replace("id: out", "id: lab-out")
    channels = GOOD + other.split("channels:\n", 1)[1]
    config = parse_config(channels + "jobs:\n" + job_text("census", "out"))
    assert config.partner("adt") is config.jobs[0]
    assert config.partner("lab") is None
    (stranger,) = problems_of(channels + "jobs:\n" + job_text("census", "out", "lab"))
    assert "destination 'out': id is already used in channel 'adt'" in stranger
    (second,) = problems_of(
        channels + "jobs:\n" + job_text("census", "out") + job_text("census2", "out")
    )
    assert "destination 'out': id is already used in job 'census'" in second


def test_yaml_syntax_error_is_located() -> None:
    (problem,) = problems_of("channels:\n  - id: [unclosed\n")
    assert problem.startswith("chan.yaml:3:")
    assert "not valid YAML" in problem


def test_bad_lane_name() -> None:
    text = GOOD.replace(
        "    destinations:",
        "    lanes: {default: asap}\n    destinations:",
    )
    (problem,) = problems_of(text)
    assert "lanes > default" in problem and "asap" in problem


def test_check_command_reports_and_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("port: 2575", "port: 99999"))
    done = subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{bad}:4:" in done.stderr and "source > port" in done.stderr
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "thumpflow.cli.main",
            "check",
            "--config",
            str(ROOT / "examples" / "thumpflow.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "OK: 1 channel(s), 2 destination(s)" in good.stdout


def test_reference_docs_are_generated_from_the_models() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed.strip() == reference_markdown().strip(), (
        "docs/configuration.md is stale: run `thumpflow config docs > docs/configuration.md`"
    )


def test_the_fhir_example_configuration_is_valid() -> None:
    config = load_config(ROOT / "examples" / "fhir.yaml")
    (channel,) = config.channels
    assert channel.transform == "thumpflow.mapping:to_fhir"
    assert [d.type for d in channel.destinations] == ["fhir", "file"]


def test_the_hybrid_example_configuration_is_valid() -> None:
    config = load_config(ROOT / "examples" / "hybrid.yaml")
    (job,) = config.jobs
    assert job.reconciles == "adt-in"
    assert [d.type for d in job.destinations] == ["sql_upsert", "batch_file"]

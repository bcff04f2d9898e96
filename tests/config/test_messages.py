"""Configuration errors a person understands: one test per message, and the forms they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel

from thumpflow.config import load_config, parse_config
from thumpflow.config._messages import tag_values
from thumpflow.config.model import Config, DestinationSpec
from thumpflow.config.reference import SECTIONS, reference_markdown
from thumpflow.core.errors import ConfigError

GOOD = """\
version: 1
channels:
  - id: adt
    source: {type: mllp, host: 127.0.0.1, port: 2575}
    destinations:
      - id: out
        type: file
        path: out/a.hl7
"""

FHIR = """\
      - id: ehr
        type: fhir
        base_url: https://ehr.example.org/fhir
        auth: {type: bearer, token_env: THUMPFLOW_TEST_EHR_TOKEN}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "chan.yaml")
    return caught.value.problems


def test_a_misspelt_key_gets_did_you_mean_with_its_line() -> None:
    text = GOOD.replace("    destinations:", "    fliter: []\n    destinations:")
    (problem,) = problems_of(text)
    assert (
        problem
        == "chan.yaml:5:5: channel 'adt' > fliter: unknown key 'fliter' — did you mean 'filter'?"
    )


def test_a_value_outside_its_set_names_the_closest_and_every_choice() -> None:
    (problem,) = problems_of(
        GOOD.replace("path: out/a.hl7", "path: out/a.hl7\n        rotate: dayly")
    )
    assert problem == (
        "chan.yaml:9:9: channel 'adt' > destination 'out' > rotate: unknown value 'dayly' — "
        "did you mean 'daily'?; one of: none, daily, size"
    )


def test_a_misspelt_key_inside_a_destination_and_its_tls_is_matched_to_that_model() -> None:
    text = GOOD.replace("path: out/a.hl7", "pth: out/a.hl7") + FHIR.replace(
        "auth:", "tls: {ca_fil: ca.pem}\n        auth:"
    )
    found = problems_of(text)
    assert any(
        "destination 'out' > pth: unknown key 'pth' — did you mean 'path'?" in p for p in found
    )
    assert any("tls > ca_fil: unknown key 'ca_fil' — did you mean 'ca_file'?" in p for p in found)


def test_an_unknown_key_with_nothing_close_lists_the_keys_allowed() -> None:
    (problem,) = problems_of(GOOD.replace("port: 2575", "port: 2575, colour: blue"))
    assert "unknown key 'colour'; allowed here: type, host, port" in problem


def test_an_unknown_destination_type_lists_the_known_types_from_the_connectors() -> None:
    (problem,) = problems_of(GOOD.replace("type: file", "type: kafka"))
    known = [tag for model in get_args(get_args(DestinationSpec)[0]) for tag in tag_values(model)]
    assert known == ["file", "http", "mllp", "fhir"]
    assert problem == (
        "chan.yaml:6:9: channel 'adt' > destination 'out': unknown destination type 'kafka'; "
        "known: file, http, mllp, fhir"
    )


def test_an_inline_secret_is_refused_with_the_fields_to_use() -> None:
    text = GOOD + FHIR.replace("token_env: THUMPFLOW_TEST_EHR_TOKEN", "token: s3cr3t")
    (problem,) = problems_of(text)
    assert problem.startswith("chan.yaml:12:")
    assert problem.endswith(
        "destination 'ehr' > auth > token: inline secrets are not allowed here: "
        "use token_env or token_file"
    )
    assert "s3cr3t" not in problem


def test_durations_are_strings_wherever_a_duration_is_meant() -> None:
    text = GOOD.replace("    destinations:", "    latency_budget: 5s\n    destinations:")
    text = text.replace("port: 2575}", "port: 2575, idle_timeout_seconds: 10m}")
    text += FHIR + "        timeout_seconds: 1500ms\n"
    channel = parse_config(text).channels[0]
    assert channel.latency_budget == 5.0
    assert channel.source is not None and channel.source.idle_timeout_seconds == 600.0
    assert channel.destinations[1].timeout_seconds == 1.5
    (problem,) = problems_of(
        GOOD.replace("    destinations:", "    latency_budget: soon\n    destinations:")
    )
    assert "latency_budget: not a duration: 'soon' (use e.g. 30s, 5m, 2h, 1d)" in problem


def test_the_reference_shows_readable_types_not_python_annotations() -> None:
    reference = reference_markdown()
    for raw in ("Annotated[", "StringConstraints", "Literal[", "Optional[", "float", "str |"):
        assert raw not in reference
    assert "| `latency_budget` | duration |" in reference
    assert "| `path` | path |" in reference
    assert "| `destinations` | list of *File destination* or *HTTP destination*" in reference


def test_relative_paths_resolve_against_the_configuration_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "chan.yaml").write_text(
        "store: {path: var/thumpflow.db}\n"
        + GOOD
        + FHIR.replace("auth:", "tls: {ca_file: /etc/ssl/ca.pem}\n        auth:").replace(
            "token_env: THUMPFLOW_TEST_EHR_TOKEN", "token_file: secrets/ehr-token"
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(folder / "chan.yaml")
    assert config.store.path == str(folder / "var" / "thumpflow.db")
    out, ehr = config.channels[0].destinations
    assert out.path == str(folder / "out" / "a.hl7")
    assert ehr.tls is not None and ehr.tls.ca_file == "/etc/ssl/ca.pem"
    assert ehr.auth.token_file == str(folder / "secrets" / "ehr-token")


def thumpflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )


def test_check_resolves_secret_references_and_names_the_missing_with_their_line(
    tmp_path: Path,
) -> None:
    config = tmp_path / "chan.yaml"
    config.write_text(
        GOOD
        + FHIR
        + "      - id: hook\n        type: http\n        url: https://x.example.org/in\n"
        "        secret_headers: {Authorization: {file: missing-token}}\n"
    )
    done = thumpflow("check", "--config", str(config), env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{config}:12:30: channel 'adt' > destination 'ehr' > auth > token_env: "
        "environment variable THUMPFLOW_TEST_EHR_TOKEN is not set",
        f"{config}:16:42: channel 'adt' > destination 'hook' > secret_headers > "
        f"Authorization > file: cannot read file {tmp_path / 'missing-token'}",
    ]
    (tmp_path / "missing-token").write_text("Bearer x\n")
    done = thumpflow(
        "check",
        "--config",
        str(config),
        env={"PATH": "/usr/bin:/bin", "THUMPFLOW_TEST_EHR_TOKEN": "t"},
    )
    assert done.returncode == 0, done.stderr


def test_run_refuses_to_start_with_a_missing_secret_located(tmp_path: Path) -> None:
    config = tmp_path / "chan.yaml"
    config.write_text(GOOD + FHIR)
    done = thumpflow("run", "--config", str(config), env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"{config}:12:30: channel 'adt' > destination 'ehr' > auth > token_env: "
        "environment variable THUMPFLOW_TEST_EHR_TOKEN is not set"
    )
    assert not (tmp_path / "var").exists()


def test_every_section_of_the_configuration_is_in_the_reference() -> None:
    """Every model reachable from `Config` has its section in docs/configuration.md."""
    seen: set[type[BaseModel]] = set()

    def walk(annotation: object) -> None:
        if get_origin(annotation) is not None:
            for argument in get_args(annotation):
                walk(argument)
        elif (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and annotation not in seen
        ):
            seen.add(annotation)
            for field in annotation.model_fields.values():
                walk(field.annotation)

    walk(Config)
    documented = {model for _, model in SECTIONS}
    assert sorted(model.__name__ for model in seen - documented) == []

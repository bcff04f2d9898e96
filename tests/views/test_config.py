"""The `views:` section: validated with located errors, documented from the same models."""

from __future__ import annotations

from pathlib import Path

import pytest

from thumpflow.config import load_config, parse_config
from thumpflow.config.views import MonotonicKey, Precedence
from thumpflow.core.errors import ConfigError

BASE = """\
version: 1
channels:
  - id: adt-in
    source: {type: mllp, host: 127.0.0.1, port: 2575}
    destinations:
      - {id: out, type: file, path: var/out/a.hl7}
views:
  systems:
    - {id: ehr, channels: [adt-in]}
  units:
    - {id: ED, kind: ed, beds: 3}
    - {id: 4W, beds: [401-A, 401-B]}
  ownership:
    patient:
      location: {owners: [ehr], precedence: owner_only, key: source_version}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "views.yaml")
    return caught.value.problems


def test_the_matrix_is_read_with_defaults_for_fields_not_given() -> None:
    views = parse_config(BASE).views
    assert views is not None
    rules = views.ownership.rules()
    assert rules["patient.location"].precedence is Precedence.OWNER_ONLY
    assert rules["patient.location"].key is MonotonicKey.SOURCE_VERSION
    assert (
        rules["bed.cleaning"].precedence is Precedence.NEWEST and rules["bed.cleaning"].owners == []
    )
    assert set(rules) == {
        "patient.location",
        "patient.assigned_bed",
        "patient.transfer_request",
        "bed.occupancy",
        "bed.cleaning",
        "bed.isolation",
        "bed.block",
    }
    assert views.units[0].bed_names() == ["01", "02", "03"]
    assert views.system_of("adt-in") == "ehr" and views.system_of("other") is None


def test_an_unknown_owner_is_named_with_its_place() -> None:
    (problem,) = problems(BASE.replace("owners: [ehr]", "owners: [evs]"))
    assert problem.startswith("views.yaml:")
    assert "ownership > patient > location > owners: 'evs' is not a system" in problem


def test_an_unknown_precedence_and_field_are_located() -> None:
    found = problems(BASE.replace("owner_only", "loudest").replace("location:", "locaton:"))
    assert any("unknown key 'locaton' — did you mean 'location'?" in p for p in found)
    (bad,) = problems(BASE.replace("owner_only", "loudest"))
    assert bad.startswith("views.yaml:15:")
    assert bad.endswith("precedence: unknown value 'loudest'; one of: owner_only, newest, "
                        "owner_wins, conflict")  # fmt: skip


def test_precedence_other_than_newest_needs_an_owner() -> None:
    (problem,) = problems(BASE.replace("owners: [ehr], ", ""))
    assert "precedence 'owner_only' needs at least one owner" in problem


def test_a_system_channel_must_exist_and_belong_to_one_system() -> None:
    (problem,) = problems(BASE.replace("channels: [adt-in]}", "channels: [adt]}"))
    assert "views > systems > ehr > channels: 'adt' is not a channel" in problem
    twice = BASE.replace(
        "    - {id: ehr, channels: [adt-in]}\n",
        "    - {id: ehr, channels: [adt-in]}\n    - {id: evs, channels: [adt-in]}\n",
    )
    (problem,) = problems(twice)
    assert "channel 'adt-in' belongs to both 'ehr' and 'evs'" in problem


def test_bad_beds_are_named() -> None:
    (problem,) = problems(BASE.replace("[401-A, 401-B]", "[401-A, 401-A]"))
    assert "bed '401-A' is listed twice" in problem
    (problem,) = problems(BASE.replace("beds: 3", "beds: 0"))
    assert "between 1 and 10000" in problem


def test_publish_needs_a_channel_that_does_not_feed_the_views() -> None:
    (problem,) = problems(BASE + "  publish: {channel: nowhere}\n")
    assert "views > publish > channel: 'nowhere' is not a channel" in problem
    (problem,) = problems(BASE + "  publish: {channel: adt-in}\n")
    assert "'adt-in' feeds the views; publishing to it would loop" in problem
    (problem,) = problems(BASE + "  publish: {channel: adt-in, format: csv}\n")
    assert "publish > format" in problem


def test_the_capacity_example_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "capacity.yaml")
    assert config.views is not None and config.views.publish is not None
    assert [unit.kind for unit in config.views.units] == ["ed", "inpatient", "inpatient"]
    (job,) = config.jobs
    assert (job.kind, job.repair, job.drift_alert) == ("census_reconcile", False, 1)

"""Manifests: shape validation with locations, and every mismatch kind named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thumpflow.batch import (
    ManifestError,
    manifest_to_json,
    parse_manifest,
    read_manifest,
    verify,
)
from thumpflow.batch.files import manifest_path
from thumpflow.core.batch import Manifest, Window

from .helpers import NOW, WINDOW, drop

CSV = b"id,v\r\n1,a\r\n2,b\r\n"


def test_manifest_json_round_trip_and_shape() -> None:
    manifest = Manifest("a.csv", 2, "0" * 64, NOW, "lab", WINDOW)
    document = json.loads(manifest_to_json(manifest))
    assert document["created_at"] == "2024-03-02T02:00:00Z"
    assert document["window"] == {"start": WINDOW.start, "end": WINDOW.end}
    assert parse_manifest(manifest_to_json(manifest), "a.csv.manifest.json") == manifest


def test_invalid_manifest_names_every_problem_with_its_location() -> None:
    bad = b'{"name": "", "record_count": -1, "sha256": "xyz", "created_at": "2024-03-02T02:00",'
    bad += b' "window": {"start": 3, "until": null}, "extra": 1}'
    with pytest.raises(ManifestError) as caught:
        parse_manifest(bad, "m.json")
    problems = caught.value.problems
    for where in (
        "$.name",
        "$.record_count",
        "$.sha256",
        "$.created_at",
        "$.source",
        "$.window.start",
        "$.window.until",
        "$.extra",
    ):
        assert any(p.startswith(where) for p in problems), where
    with pytest.raises(ManifestError, match="line 1 column"):
        parse_manifest(b"{not json", "m.json")


def kinds(tmp_path: Path, **kwargs: object) -> list[str]:
    path = tmp_path / "a.csv"
    manifest = read_manifest(manifest_path(path))
    args: dict[str, object] = {"expected_window": WINDOW, "max_age": 86400.0, "source": "lab"}
    args.update(kwargs)
    problems = verify(
        manifest,
        path,
        args["expected_window"],
        args["max_age"],
        args["source"],  # type: ignore[arg-type]
        now=NOW,
        fmt="csv",
    )
    return [p.kind for p in problems]


def test_verify_passes_a_matching_file(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", CSV, count=2)
    assert kinds(tmp_path) == []


@pytest.mark.parametrize(
    ("overrides", "kwargs", "kind"),
    [
        ({"record_count": 3}, {}, "count"),
        ({"sha256": "f" * 64}, {}, "checksum"),
        ({"source": "billing"}, {}, "source"),
        ({"name": "b.csv"}, {}, "name"),
        ({"window": Window("2024-02-28T00:00:00Z", WINDOW.end)}, {}, "window"),
        ({"window": Window(WINDOW.start, "2024-03-05T00:00:00Z")}, {}, "window"),
        ({}, {"max_age": 3600.0}, "late"),
        (
            {"window": Window("1", "2")},
            {"max_age": 60.0, "expected_window": Window("1", "10")},
            "late",
        ),
    ],
)
def test_verify_names_each_mismatch(
    tmp_path: Path, overrides: dict[str, object], kwargs: dict[str, object], kind: str
) -> None:
    drop(tmp_path, "a.csv", CSV, count=2, **overrides)
    assert kinds(tmp_path, **kwargs) == [kind]


def test_verify_details_say_what_differs(tmp_path: Path) -> None:
    drop(tmp_path, "a.csv", CSV, count=5, source="billing")
    path = tmp_path / "a.csv"
    problems = verify(
        read_manifest(manifest_path(path)), path, WINDOW, None, "lab", now=NOW, fmt="csv"
    )
    details = {p.kind: p.detail for p in problems}
    assert details["count"] == "manifest says 5 records, the file has 2"
    assert details["source"] == "manifest source is 'billing', expected 'lab'"

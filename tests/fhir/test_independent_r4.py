"""Our Bundles pass an independent FHIR R4 model, not only our own validator.

fhir.resources 6.1.0 (pydantic models generated from FHIR 4.0.1's definitions,
pinned with hashes in requirements/r4-check.txt) is installed into a venv of
its own beside the test venv (`<venv>/r4-check`; it needs pydantic 1, the
engine pydantic 2), once. Every golden Bundle, every HL7 v2 message of the
repository converted as a transaction, a batch and a collection, and a seeded
set of mutated golden inputs (the fuzzer's mutations) must be accepted by it,
as they are by `thumpflow.fhir.validate`; `tests/fhir/r4_model_check.py`
says where the model is stricter than R4 and what it leaves out for that.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from thumpflow.core.errors import MessageError
from thumpflow.fhir import validate
from thumpflow.hl7v2 import split_messages
from thumpflow.mapping import convert, to_json
from thumpflow.testing.mutations import mutate

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "r4-check.txt"
CHECK = Path(__file__).with_name("r4_model_check.py")
MUTATIONS = 600


@pytest.fixture(scope="session")
def r4_python() -> Path:
    """The independent model's interpreter, its venv made and filled once."""
    venv = Path(sys.prefix) / "r4-check"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == LOCK.read_text():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes"]
    subprocess.run([*pip, "-r", str(LOCK)], check=True)
    stamp.write_text(LOCK.read_text())
    return python


def _judged(r4_python: Path, lines: list[str]) -> dict[str, Any]:
    """The model's verdict on `lines` (JSON Lines of `{"name", "bundle"}`), as
    `r4_model_check.py` writes it: `read` and the `refused` with their errors."""
    done = subprocess.run(
        [str(r4_python), str(CHECK)],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    verdict: dict[str, Any] = json.loads(done.stdout)
    return verdict


def _line(name: str, bundle_json: str) -> str:
    return f'{{"name": {json.dumps(name)}, "bundle": {bundle_json}}}'


def _bundles() -> Iterator[tuple[str, dict[str, Any], str]]:
    """(name, Bundle, its JSON as a receiver reads it: decimals as the sender wrote them)."""
    for golden in sorted((ROOT / "tests" / "mappings").glob("*/expected.json")):
        bundle = json.loads(golden.read_text())
        yield str(golden.relative_to(ROOT)), bundle, json.dumps(bundle)
    sources = sorted(p for p in ROOT.glob("[!.]*/**/*.hl7") if ".venv" not in p.parts)
    inputs = [
        (str(p.relative_to(ROOT)), m) for p in sources for m in split_messages(p.read_bytes())
    ]
    rng = random.Random(20261207)
    goldens = [m for name, m in inputs if name.endswith("input.hl7")]
    inputs += [(f"mutation {n}", mutate(rng.choice(goldens), rng)) for n in range(MUTATIONS)]
    for name, message in inputs:
        for bundle_type in ("transaction", "batch", "collection"):
            try:
                bundle = convert(message, bundle_type=bundle_type)
            except MessageError:
                continue
            yield f"{name} ({bundle_type})", bundle, to_json(bundle).decode()


def test_every_bundle_is_accepted_by_an_independent_r4_model(r4_python: Path) -> None:
    lines = []
    for name, bundle, text in _bundles():
        assert not [i for i in validate(bundle) if i.severity == "error"], name
        lines.append(_line(name, text))
    verdict = _judged(r4_python, lines)
    assert verdict["read"] == len(lines) > 2_000
    assert verdict["refused"] == []


def test_the_independent_model_refuses_what_r4_refuses(r4_python: Path) -> None:
    """The oracle can fail: an R5-shaped element, an unknown one, a `url` without its
    scheme and a missing required choice are refused; the two strictness cases
    `r4_model_check.py` leaves out are not."""
    coverage = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/1"},
        "payor": [{"reference": "Organization/1"}],
    }
    cases = {
        "subscriberId as an R5 Identifier": {**coverage, "subscriberId": {"value": "X"}},
        "an element R4 has not": {**coverage, "kind": "insurance"},
        "a url without its scheme": {
            "resourceType": "MessageHeader",
            "eventCoding": {"code": "A01"},
            "source": {"endpoint": "urn:oid:1.2.3"},
            "destination": [{"endpoint": "05D0123456"}],
        },
        "a required choice missing": {
            "resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationCodeableConcept": {"text": "x"},
            "subject": {"reference": "Patient/1"},
        },
    }

    def collection(*resources: dict[str, Any]) -> str:
        entries = [{"fullUrl": f"urn:uuid:{n}", "resource": r} for n, r in enumerate(resources)]
        return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})

    verdict = _judged(r4_python, [_line(name, collection(r)) for name, r in cases.items()])
    assert [item["name"] for item in verdict["refused"]] == list(cases)
    [endpoint] = verdict["refused"][2]["errors"]
    assert endpoint["path"] == "entry.0.resource.destination.0.endpoint", "the urn: one passes"
    absent = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "unknown",
            }
        ]
    }
    allowed = {
        **cases["a required choice missing"],
        "_effectiveDateTime": absent,
    }
    verdict = _judged(r4_python, [_line("extension only", collection(allowed))])
    assert verdict == {"read": 1, "refused": []}

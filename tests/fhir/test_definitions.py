"""The shipped R4 definitions: complete, compact, and free of non-R4 additions."""

from __future__ import annotations

from pathlib import Path

import thumpflow.fhir
from thumpflow.fhir._definitions import REGISTRY

DATA = Path(thumpflow.fhir.__file__).parent / "r4" / "definitions.json.gz"


def test_the_data_file_is_small() -> None:
    assert DATA.stat().st_size < 2_000_000


def test_every_r4_resource_type_is_known_and_only_those() -> None:
    names = REGISTRY.resource_names
    assert len(names) == 146
    assert {
        "Patient",
        "Bundle",
        "Parameters",
        "Binary",
        "MedicinalProduct",
        "EffectEvidenceSynthesis",
    } <= names
    assert not names & {
        "SubscriptionStatus",
        "Resource",
        "DomainResource",
        "Project",
        "MetadataResource",
    }


def test_elements_added_outside_r4_are_left_out() -> None:
    assert "project" not in REGISTRY.tables["Meta"].elements
    assert "url" not in REGISTRY.tables["Binary"].elements
    characteristic = REGISTRY.tables["EvidenceVariable.characteristic"].elements
    assert "definitionReference" in characteristic
    assert "definitionByCombination" not in characteristic
    assert "outcome" in REGISTRY.tables["Bundle.entry.response"].elements


def test_backbone_elements_inherit_id_and_extensions() -> None:
    contact = REGISTRY.tables["Patient.contact"].elements
    assert {"id", "extension", "modifierExtension"} <= set(contact)
    assert contact["id"].attribute
    assert not REGISTRY.tables["Patient"].elements["id"].attribute
    repeat = REGISTRY.tables["Timing.repeat"].elements
    assert {"id", "extension"} <= set(repeat)
    assert "modifierExtension" not in repeat

"""RAS (pharmacy/treatment administration) → MedicationAdministration.

Each RXA is one MedicationAdministration; the RXAs of one ADMINISTRATION
group (`{RXA} RXR [{OBX}]`) share its RXR and OBX. Status from RXA-21 and
RXA-20, effective from RXA-3/RXA-4, identity from the order (ORC-2/ORC-3)
and RXA-1/RXA-2 (see messages-pharmacy-administration.yaml).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.mappings.single import clean_resources
from thumpflow.mapping import ConversionError, convert

_MSH = "MSH|^~\\&|MAR|W3|EHR|H|20240305101500+0100||RAS^O17^RAS_O17|{control}|P|2.5.1\r"
_PID = "PID|1||P7^^^H^MR||Moreau^Alice\r"
_ORC = "ORC|RE|RX9^EPIC|PH9^PHARM\r"


def _rxa(sub: str, start: str = "20240305080000+0100", end: str = "", status: str = "") -> str:
    fields = ["RXA", "1", sub, start, end, "M1^Morphine^L", "2", "mg^mg^UCUM"]
    fields += [""] * 10 + ["PATREF^Refused^L", "", status]
    return "|".join(fields) + "\r"


def _administrations(body: str, control: str = "C1", pid: str = _PID) -> list[dict[str, Any]]:
    message = (_MSH.format(control=control) + pid + body).encode()
    resources = clean_resources(message).values()
    return [r for r in resources if r["resourceType"] == "MedicationAdministration"]


def test_completion_status_and_action_code() -> None:
    cases = {
        "CP": "completed",
        "": "completed",
        "PA": "completed",
        "RE": "not-done",
        "NA": "not-done",
        "XX": "unknown",
    }
    for code, status in cases.items():
        (admin,) = _administrations(_ORC + _rxa("1", status=code) + "RXR|IV\r")
        assert admin["status"] == status, code
        assert ("statusReason" in admin) == (status == "not-done"), code
    deleted = _rxa("1", status="CP")[:-1] + "|D\r"
    (admin,) = _administrations(_ORC + deleted + "RXR|IV\r")
    assert admin["status"] == "entered-in-error"


def test_effective_time_or_period_never_ending_before_it_starts() -> None:
    (admin,) = _administrations(_ORC + _rxa("1") + "RXR|IV\r")
    assert admin["effectiveDateTime"] == "2024-03-05T08:00:00+01:00"
    (admin,) = _administrations(_ORC + _rxa("1", end="20240305083000+0100") + "RXR|IV\r")
    assert admin["effectivePeriod"] == {
        "start": "2024-03-05T08:00:00+01:00",
        "end": "2024-03-05T08:30:00+01:00",
    }
    (admin,) = _administrations(_ORC + _rxa("1", end="20240305070000+0100") + "RXR|IV\r")
    assert admin["effectivePeriod"] == {"start": "2024-03-05T08:00:00+01:00"}
    (admin,) = _administrations(_ORC + _rxa("1", start="") + "RXR|IV\r")
    assert "effectiveDateTime" not in admin
    assert admin["_effectiveDateTime"]["extension"][0]["valueCode"] == "unknown"


def test_several_rxa_share_their_groups_route_and_observations() -> None:
    body = (
        _ORC + _rxa("1") + _rxa("2") + "RXR|IV|LA^Left arm^HL70163\r"
        "OBX|1|NM|72514-3^Pain^LN||6|{score}^^UCUM|||||F\r" + _rxa("3") + "RXR|PO\r"
    )
    first, second, third = _administrations(body)
    assert len({first["id"], second["id"], third["id"]}) == 3
    assert first["dosage"]["site"] == second["dosage"]["site"]
    assert first["supportingInformation"] == second["supportingInformation"]
    assert third["dosage"]["route"]["coding"][0]["code"] == "PO"
    assert "site" not in third["dosage"] and "supportingInformation" not in third


def test_identity_is_stable_across_resends_and_follows_the_counters() -> None:
    body = _ORC + _rxa("1") + "RXR|IV\r"
    (once,) = _administrations(body, control="C1")
    (again,) = _administrations(body.replace("080000", "081500"), control="C2")
    assert once["id"] == again["id"]
    (other,) = _administrations(_ORC + _rxa("2") + "RXR|IV\r", control="C3")
    assert other["id"] != once["id"]
    (other_order,) = _administrations(body.replace("RX9", "RX10").replace("PH9", "PH10"))
    assert other_order["id"] != once["id"]


def test_an_order_without_number_is_identified_by_drug_and_time() -> None:
    body = "ORC|RE\r" + _rxa("1") + "RXR|IV\r"
    (once,) = _administrations(body, control="C1")
    (again,) = _administrations(body, control="C2")
    (later,) = _administrations(body.replace("0800", "1400"), control="C3")
    assert once["id"] == again["id"] != later["id"]
    assert "identifier" not in once


def test_the_order_is_the_request_built_or_named() -> None:
    encoded = _ORC + "RXE|1^Q6H|M1^Morphine^L|2||mg^mg^UCUM\rRXR|IV\r" + _rxa("1") + "RXR|IV\r"
    message = (_MSH.format(control="C1") + _PID + encoded).encode()
    resources = clean_resources(message)
    (admin,) = [r for r in resources.values() if r["resourceType"] == "MedicationAdministration"]
    request = resources[admin["request"]["reference"]]
    assert request["resourceType"] == "MedicationRequest"
    (admin,) = _administrations(_ORC + _rxa("1") + "RXR|IV\r")
    assert admin["request"]["type"] == "MedicationRequest"
    assert admin["request"]["identifier"]["value"] == "RX9"


def test_a_ras_without_pid_is_refused_naming_pid() -> None:
    # Every resource of a RAS refers to the patient (subject 1..1): without
    # PID nothing converts, and the error names the missing segment.
    message = (_MSH.format(control="C1") + _ORC + _rxa("1") + "RXR|IV\r").encode()
    with pytest.raises(ConversionError) as caught:
        convert(message, bundle_type="collection")
    assert caught.value.segment == "PID"


def test_a_ras_without_orc_warns_that_it_is_missing() -> None:
    message = (_MSH.format(control="C1") + _PID).encode()
    warnings: list[str] = []
    bundle = convert(message, bundle_type="collection", warnings=warnings)
    assert any(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"])
    assert any("ORC is missing" in w for w in warnings)
    assert not any("no message map" in w for w in warnings)


def test_v231_ras_o01_converts_with_the_same_map() -> None:
    message = (
        "MSH|^~\\&|MAR|W3|EHR|H|20240305101500+0100||RAS^O01|C1|P|2.3.1\r"
        + _PID
        + _ORC
        + _rxa("1")
        + _rxa("2")
        + "RXR|IV\r"
    ).encode()
    admins = [
        r
        for r in clean_resources(message).values()
        if r["resourceType"] == "MedicationAdministration"
    ]
    assert len(admins) == 2


def _rxa_rate(per: str, amount: str = "100", units: str = "mL^mL^UCUM") -> str:
    fields = ["RXA", "1", "1", "20240305080000+0100", "", "D5W^Dextrose 5%^L", amount, units]
    fields += [""] * 4 + [per]
    return "|".join(fields) + "\r"


def test_administered_per_time_unit_is_a_rate_not_a_dose() -> None:
    # v2.5.1 RXA-12: the rate, calculated from RXA-6/RXA-7, per the time unit.
    (admin,) = _administrations(_ORC + _rxa_rate("H1") + "RXR|IV\r")
    ucum = "http://unitsofmeasure.org"
    assert admin["dosage"]["rateRatio"] == {
        "numerator": {"value": 100, "unit": "mL", "system": ucum, "code": "mL"},
        "denominator": {"value": 1, "unit": "h", "system": ucum, "code": "h"},
    }
    assert "route" in admin["dosage"]
    assert "dose" not in admin["dosage"]
    (admin,) = _administrations(_ORC + _rxa_rate("M30", amount="5") + "RXR|IV\r")
    assert admin["dosage"]["rateRatio"]["numerator"]["value"] == 5
    per_30_min = {"value": 30, "unit": "min", "system": ucum, "code": "min"}
    assert admin["dosage"]["rateRatio"]["denominator"] == per_30_min
    # Unreadable time unit or amount: no half Ratio (rat-1); RXA-6 the dose.
    for per, amount in (("hourly", "100"), ("H0", "100"), ("H1", "lots")):
        (admin,) = _administrations(_ORC + _rxa_rate(per, amount=amount) + "RXR|IV\r")
        assert "rateRatio" not in admin.get("dosage", {}), per
        assert ("dose" in admin.get("dosage", {})) == (amount == "100"), per

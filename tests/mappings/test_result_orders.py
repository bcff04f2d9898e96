"""The order a result answers: created at the receiver only where it holds none.

IG ORU_R01 rows 4.2.1.1 and 4.2.2 map ORC and OBR to a ServiceRequest "if a
ServiceRequest needs to be created for the receiver" (one that did not place
the order). A transaction therefore creates it with `ifNoneExist` on its
order number: a receiver that holds the order (from the ORM it placed) keeps
it as it is, and the report refers to it; one that does not gets it. Checked
here in the Bundle and against the simulated EHR applying real transactions.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.ehr.support import send, with_ehr
from thumpflow.mapping import convert, to_json
from thumpflow.mapping._support import as_create
from thumpflow.testing.ehr import SimulatedEhr

_HEAD = "MSH|^~\\&|LAB|GHH|EHR|HOSP|20240701120000||{type}|{control}|P|2.5.1\r"
_PID = "PID|1||MRN7^^^HOSP^MR||Doe^Jane||19800101|F\r"
ORDER_NUMBER = "identifier=http://thumpflow.invalid/naming-system/EHR|PL1"


def oru(placer: str, control: str = "R1", status: str = "F") -> bytes:
    return (
        _HEAD.format(type="ORU^R01^ORU_R01", control=control)
        + _PID
        + f"ORC|RE|{placer}|FL1^LAB||CM||||20240701100000|||5678^Jones^Amy\r"
        + f"OBR|1|{placer}|FL1^LAB|2345-7^Glucose^LN|||20240701090000||||||||||||||||||{status}\r"
        + f"OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-99||||{status}\r"
    ).encode()


def orm(placer: str) -> bytes:
    return (
        _HEAD.format(type="ORM^O01^ORM_O01", control="O1")
        + _PID
        + f"ORC|NW|{placer}|||IP||||20240701080000|||5678^Jones^Amy\r"
        + f"OBR|1|{placer}||2345-7^Glucose fasting^LN\r"
        + "NTE|1||Patient fasting since midnight\r"
    ).encode()


def _by_type(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_a_transaction_creates_the_order_only_where_none_holds_its_number() -> None:
    bundle = convert(oru("PL1^EHR"), bundle_type="transaction")
    (order,) = _by_type(bundle, "ServiceRequest")
    assert order["request"] == {
        "method": "POST",
        "url": "ServiceRequest",
        "ifNoneExist": ORDER_NUMBER,
    }
    assert "id" not in order["resource"]
    assert order["resource"]["intent"] == "order"
    assert [i["value"] for i in order["resource"]["identifier"]] == ["PL1", "FL1"]
    assert "requester" in order["resource"]  # ORC-12
    (report,) = _by_type(bundle, "DiagnosticReport")
    (based_on,) = report["resource"]["basedOn"]
    assert based_on["reference"] == order["fullUrl"]
    assert based_on["identifier"]["value"] == "PL1"
    # The message's Provenance names it, created or found (docs/mapping.md).
    (provenance,) = _by_type(bundle, "Provenance")
    assert {"reference": order["fullUrl"]} in provenance["resource"]["target"]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            {"method": "PUT", "url": "ServiceRequest?identifier=urn:oid:1.2|A%26B"},
            {
                "method": "POST",
                "url": "ServiceRequest",
                "ifNoneExist": "identifier=urn:oid:1.2|A%26B",
            },
        ),
        (
            {"method": "PUT", "url": "ServiceRequest/abc"},
            {"method": "PUT", "url": "ServiceRequest/abc"},
        ),
        (
            {"method": "POST", "url": "ServiceRequest", "ifNoneExist": "identifier=s|v"},
            {"method": "POST", "url": "ServiceRequest", "ifNoneExist": "identifier=s|v"},
        ),
    ],
)
def test_as_create_turns_only_a_conditional_update_into_a_create(
    request_: dict[str, str], expected: dict[str, str]
) -> None:
    entry: dict[str, Any] = {"fullUrl": "urn:uuid:x", "request": dict(request_)}
    as_create(entry)
    assert entry["request"] == expected
    collection: dict[str, Any] = {"fullUrl": "urn:uuid:x", "resource": {}}
    as_create(collection)
    assert collection == {"fullUrl": "urn:uuid:x", "resource": {}}


def test_a_collection_holds_the_order_and_a_batch_refers_to_it_by_number() -> None:
    collection = convert(oru("PL1^EHR"), bundle_type="collection")
    (order,) = _by_type(collection, "ServiceRequest")
    (report,) = _by_type(collection, "DiagnosticReport")
    assert report["resource"]["basedOn"][0]["reference"] == order["fullUrl"]
    # A batch's references are by id, which a create does not keep: no order.
    batch = convert(oru("PL1^EHR"), bundle_type="batch")
    assert _by_type(batch, "ServiceRequest") == []
    (report,) = _by_type(batch, "DiagnosticReport")
    assert report["resource"]["basedOn"] == [
        {
            "identifier": {
                "assigner": report["resource"]["basedOn"][0]["identifier"]["assigner"],
                "system": "http://thumpflow.invalid/naming-system/EHR",
                "value": "PL1",
            }
        }
    ]


def test_an_order_number_without_a_system_creates_no_order() -> None:
    # A bare number cannot be searched safely (it matches every system).
    bundle = convert(oru("PL1"), bundle_type="transaction")
    assert _by_type(bundle, "ServiceRequest") == []
    (report,) = _by_type(bundle, "DiagnosticReport")
    assert report["resource"]["basedOn"] == [{"identifier": {"value": "PL1"}}]


def _transaction(message: bytes) -> Any:
    return json.loads(to_json(convert(message, bundle_type="transaction")))


def test_the_receiver_keeps_its_own_order_and_gets_one_it_lacks() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        async def apply(message: bytes) -> None:
            status, response, _ = await send(session, "POST", ehr.base_url, _transaction(message))
            assert status == 200, response

        await apply(orm("PL1^EHR"))
        (placed,) = ehr.resources("ServiceRequest")
        await apply(oru("PL1^EHR", "R1", "P"))
        await apply(oru("PL1^EHR", "R2", "F"))
        # The order placed is the one order: neither result rewrote it.
        (order,) = ehr.resources("ServiceRequest")
        assert order["id"] == placed["id"]
        assert order["meta"]["versionId"] == placed["meta"]["versionId"]
        assert order["code"]["coding"][0]["display"] == "Glucose fasting"
        assert order["note"] == [{"text": "Patient fasting since midnight"}]
        (report,) = ehr.resources("DiagnosticReport")
        assert report["status"] == "final"
        assert report["basedOn"][0]["reference"] == f"ServiceRequest/{order['id']}"
        # A result for an order this receiver never placed brings the order.
        await apply(oru("PL2^EHR", "R3"))
        orders = {o["identifier"][0]["value"]: o for o in ehr.resources("ServiceRequest")}
        assert sorted(orders) == ["PL1", "PL2"]
        assert orders["PL2"]["status"] == "completed"  # ORC-5 CM
        reports = {
            r["basedOn"][0]["identifier"]["value"]: r for r in ehr.resources("DiagnosticReport")
        }
        assert reports["PL2"]["basedOn"][0]["reference"] == f"ServiceRequest/{orders['PL2']['id']}"

    with_ehr(body)


def test_the_order_created_is_created_once_whatever_repeats() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        transaction = _transaction(oru("PL3^EHR"))
        results = await asyncio.gather(
            *(send(session, "POST", ehr.base_url, transaction) for _ in range(3))
        )
        assert [status for status, _, _ in results] == [200, 200, 200]
        assert len(ehr.resources("ServiceRequest")) == 1

    with_ehr(body)


def test_a_prt_op_is_the_requester_of_the_order_made_and_else_nothing() -> None:
    prt = "PRT||AD||OP^Ordering Provider^HL70443|9999^Ward^Lee\r"
    message = oru("PL1^EHR").replace(b"\rOBR|", f"\r{prt}OBR|".encode())
    bundle = convert(message, bundle_type="transaction")
    (order,) = _by_type(bundle, "ServiceRequest")
    (role,) = _by_type(bundle, "PractitionerRole")
    assert order["resource"]["requester"] == {"reference": role["fullUrl"]}
    # No order made (a batch): no requester left referred to by nothing.
    batch = convert(message, bundle_type="batch")
    assert _by_type(batch, "ServiceRequest") == []
    assert _by_type(batch, "PractitionerRole") == []


def test_no_order_made_leaves_nothing_of_it_behind() -> None:
    # ORC-12's Practitioner is the order's requester, and no other resource's.
    for message, bundle_type in ((oru("PL1"), "transaction"), (oru("PL1^EHR"), "batch")):
        bundle = convert(message, bundle_type=bundle_type)  # type: ignore[arg-type]
        assert _by_type(bundle, "ServiceRequest") == []
        assert _by_type(bundle, "Practitioner") == []


def test_an_unsolicited_lab_result_creates_its_order_where_absent_as_oru_does() -> None:
    message = (
        _HEAD.format(type="OUL^R22^OUL_R22", control="U1")
        + _PID
        + "SPM|1|SP1^LAB||BLD^Blood^HL70487\r"
        + "OBR|1|PL1^EHR|FL1^LAB|718-7^Hemoglobin^LN\r"
        + "ORC|SC|PL1^EHR|FL1^LAB||CM\r"
        + "OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL|||||F\r"
    ).encode()
    bundle = convert(message, bundle_type="transaction")
    (order,) = _by_type(bundle, "ServiceRequest")
    assert order["request"]["ifNoneExist"] == ORDER_NUMBER
    assert order["resource"]["status"] == "completed"
    (report,) = _by_type(bundle, "DiagnosticReport")
    assert report["resource"]["basedOn"][0]["reference"] == order["fullUrl"]

"""Converted results through the FHIR destination: the order a receiver placed stays its own.

An ORU's Bundle creates its order only where the receiver holds none
(`POST` with `ifNoneExist`, tests/mappings/test_result_orders.py). Sent as a
transaction, or entry by entry in `conditional_update` mode (where the
destination rewrites references to the id the server answers), the report
must end up referring to the order the ORM placed, which neither result
changes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.connectors.fhir.conftest import delivery
from tests.connectors.fhir.test_fhir_destination import with_ehr
from tests.mappings.test_result_orders import orm, oru
from thumpflow.connectors.fhir import FhirDestination
from thumpflow.core.outcome import Sent
from thumpflow.mapping import convert, to_json
from thumpflow.testing.ehr import SimulatedEhr


def _bundle(message: bytes) -> dict[str, Any]:
    converted: dict[str, Any] = json.loads(to_json(convert(message, bundle_type="transaction")))
    return converted


@pytest.mark.parametrize("mode", ["transaction", "conditional_update"])
def test_results_refer_to_the_order_placed_and_leave_it_as_it_was(mode: str) -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        messages = [orm("PL1^EHR"), oru("PL1^EHR", "R1", "P"), oru("PL1^EHR", "R2", "F")]
        for n, message in enumerate(messages, 1):
            (sent,) = await dest.send([delivery(_bundle(message), n)])
            assert isinstance(sent, Sent), sent
            if n == 1:
                (placed,) = ehr.resources("ServiceRequest")
        (order,) = ehr.resources("ServiceRequest")
        assert order["meta"]["versionId"] == placed["meta"]["versionId"]
        assert order["note"] == [{"text": "Patient fasting since midnight"}]
        (report,) = ehr.resources("DiagnosticReport")
        assert report["status"] == "final"
        assert report["basedOn"][0]["reference"] == f"ServiceRequest/{order['id']}"
        assert ehr.duplicates() == {}

    with_ehr(body, mode=mode)

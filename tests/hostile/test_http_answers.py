"""Hostile HTTP ingest: always an answer other than 500, the raw body kept, no content in logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.hostile.test_mllp_answers import adt
from tests.ingest.test_http_ingest import FHIR, HL7, ingest_engine, run


def nested_arrays(depth: int) -> bytes:
    return b'{"resourceType": "Patient", "extension": ' + b"[" * depth + b"]" * depth + b"}"


def nested_extensions(depth: int) -> bytes:
    opening = b'{"url": "http://example.org/x", "extension": ['
    leaf = b'{"url": "http://example.org/x", "valueString": "x"}'
    inner = opening * depth + leaf + b"]}" * depth
    return b'{"resourceType": "Patient", "extension": [' + inner + b"]}"


def test_nul_charset_and_bad_bytes_over_http_are_accepted_not_500(tmp_path: Path) -> None:
    body = adt("HNUL", "MRN1", charset=b"\x00X").replace(b"Jane", b"J\xe9ne")

    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, _receiver, client):
            for _ in range(2):
                async with client.post("/api/channels/web/messages", data=body, headers=HL7) as r:
                    assert r.status == 202
            stats = {s.channel_id: s for s in await engine.store.stats()}
            assert (stats["web"].received, stats["web"].duplicates) == (1, 1)

    run(scenario())


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(nested_arrays(5000), id="5000-nested-arrays"),
        pytest.param(nested_extensions(500), id="500-nested-extensions"),
        pytest.param(b"[" * 100_000, id="unclosed-arrays"),
    ],
)
def test_deeply_nested_fhir_json_is_400_and_kept(tmp_path: Path, raw: bytes) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, _receiver, client):
            async with client.post("/api/channels/web/messages", data=raw, headers=FHIR) as r:
                assert r.status == 400
                assert (await r.json())["resourceType"] == "OperationOutcome"
            rejects = await engine.store.rejects("web")
            assert [reject.raw for _, reject in rejects] == [raw]

    run(scenario())


def test_hostile_keys_reach_neither_the_log_nor_the_audit_trail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "DOE^JOHN^MRN7731"
    patient = {"resourceType": "Patient", secret: True, "name": [{secret: "x"}]}
    raw = json.dumps(patient).encode()
    segment_first = b"DOE|JOHN|MRN7731\rMSH|^~\\&|A|B|C|D|2026||ADT^A01|X1|P|2.5\r"

    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, _receiver, client):
            async with client.post("/api/channels/web/messages", data=raw, headers=FHIR) as r:
                assert r.status == 400
            async with client.post(
                "/api/channels/web/messages", data=segment_first, headers=HL7
            ) as r:
                assert r.status == 400
                assert "DOE" not in (await r.json())["detail"]
            trail = await engine.store.audit(None)
            rejects = await engine.store.rejects("web")
            assert len(rejects) == 2
            for text in [e.detail for e in trail] + [reject.reason for _, reject in rejects]:
                assert "DOE" not in text and "MRN7731" not in text

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    assert "MRN7731" not in caplog.text and "DOE" not in caplog.text


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b'{"resourceType": "Patient", "id": "p\\ud800", '
            b'"identifier": [{"system": "urn:oid:1.2.3", "value": "MRN\\udc80"}]}',
            id="lone-surrogates",
        ),
        pytest.param(
            b'{"resourceType": "Patient", "id": "p1", '
            b'"identifier": [{"system": "urn:oid:1.2.3", "value": "MRN\\u0000"}]}',
            id="nul",
        ),
    ],
)
def test_escaped_characters_no_codec_can_store_get_an_answer_other_than_500(
    tmp_path: Path, raw: bytes
) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, _receiver, client):
            statuses = []
            for _ in range(2):
                async with client.post("/api/channels/web/messages", data=raw, headers=FHIR) as r:
                    statuses.append(r.status)
            assert statuses in ([202, 200], [202, 202], [400, 400]), statuses
            if statuses[0] == 400:
                rejects = await engine.store.rejects("web")
                assert [reject.raw for _, reject in rejects] == [raw, raw]

    run(scenario())

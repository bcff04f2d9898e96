"""The FHIR Bulk Data source against the simulated EHR: real HTTP on loopback, no mocks."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from tests.connectors.fhir.conftest import jwks, write_key
from tests.ehr.support import patient
from thumpflow.connectors.fhir_bulk import FhirBulkSource, FhirBulkSourceSpec
from thumpflow.core.batch import SourceRecord, Window
from thumpflow.core.errors import BatchSourceError
from thumpflow.testing.ehr import SimulatedEhr


class StepClock:
    """Time moves only by sleeping (no real waiting); `on_sleep` runs at each sleep."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def now(self) -> float:
        return 1_700_000_000.0 + self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        if self.on_sleep is not None:
            self.on_sleep()
        await asyncio.sleep(0)


def run(body: Callable[[SimulatedEhr], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with SimulatedEhr(**kw) as ehr:
            await asyncio.wait_for(body(ehr), 20)

    asyncio.run(main())


def spec(ehr: SimulatedEhr, **kw: Any) -> FhirBulkSourceSpec:
    return FhirBulkSourceSpec.model_validate(
        {"type": "fhir_bulk", "base_url": ehr.base_url, "poll_interval": 0.5, **kw}
    )


async def seed(ehr: SimulatedEhr, *names: str) -> list[str]:
    ids = []
    async with aiohttp.ClientSession() as session:
        for name in names:
            async with session.post(
                f"{ehr.base_url}/Patient",
                json=patient(name),
                headers={"Authorization": "Bearer t0k3n"},
            ) as response:
                assert response.status == 201
                ids.append((await response.json())["id"])
    return ids


async def read_all(source: FhirBulkSource, window: Window | None = None) -> list[SourceRecord]:
    return [record async for chunk in source.read(window or Window()) for record in chunk]


def test_system_export_is_read_with_manifests_watermark_and_cleanup() -> None:
    async def body(ehr: SimulatedEhr) -> None:
        ids = await seed(ehr, "a", "b", "c")
        clock = StepClock()
        source = FhirBulkSource("ehr-bulk", spec(ehr), clock)
        records = await read_all(source)
        assert [r.data["id"] for r in records] == ids
        assert [r.origin for r in records] == [f"Patient.ndjson line {n}" for n in (1, 2, 3)]
        assert records[0].raw.startswith('{"resourceType":"Patient"')
        assert clock.sleeps == [1.0, 1.0]
        assert source.progress == "in progress (2 of 2)"
        job = next(iter(ehr.bulk.jobs.values()))
        (manifest,) = source.manifests()
        assert manifest.name == "Patient.ndjson"
        assert manifest.record_count == 3
        assert manifest.sha256 == hashlib.sha256(job.files["Patient.ndjson"]).hexdigest()
        assert manifest.source == "ehr-bulk"
        assert manifest.window == Window(None, job.transaction_time)
        assert source.next_watermark() == job.transaction_time
        assert source.error_count == 0 and source.export_errors() == []
        await source.commit()
        assert ehr.bulk.jobs == {}
        await source.commit()

    run(body, bulk_in_progress_polls=2)


def test_the_watermark_becomes_since_so_the_next_run_reads_only_changes() -> None:
    async def body(ehr: SimulatedEhr) -> None:
        await seed(ehr, "a", "b")
        source = FhirBulkSource("s", spec(ehr), StepClock())
        assert len(await read_all(source)) == 2
        watermark = source.next_watermark()
        (new_id,) = await seed(ehr, "c")
        changed = await read_all(source, Window(watermark))
        assert [r.data["id"] for r in changed] == [new_id]
        assert source.manifests()[0].window == Window(watermark, source.next_watermark())
        assert await read_all(source, Window(source.next_watermark())) == []
        assert source.manifests() == []
        full = FhirBulkSource("s", spec(ehr, since_from_watermark=False), StepClock())
        assert len(await read_all(full, Window(watermark))) == 3

    run(body, bulk_in_progress_polls=0)


def test_group_level_with_types() -> None:
    async def body(ehr: SimulatedEhr) -> None:
        a, _ = await seed(ehr, "a", "b")
        group = {
            "resourceType": "Group",
            "id": "icu",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{a}"}}],
        }
        async with (
            aiohttp.ClientSession() as session,
            session.put(f"{ehr.base_url}/Group/icu", json=group) as response,
        ):
            assert response.status == 201
        source = FhirBulkSource(
            "s", spec(ehr, level="group", group_id="icu", types=["Patient"]), StepClock()
        )
        assert [r.data["id"] for r in await read_all(source)] == [a]
        missing = FhirBulkSource("s", spec(ehr, level="group", group_id="gone"), StepClock())
        with pytest.raises(BatchSourceError, match=r"refused: HTTP 404: Group/gone is not known"):
            await read_all(missing)

    run(body, bulk_in_progress_polls=0)


def test_throttling_server_errors_and_drops_are_waited_out_with_retry_after() -> None:
    async def body(ehr: SimulatedEhr) -> None:
        await seed(ehr, "a")
        clock = StepClock()
        ehr.set_faults(drop=2, throttle=1, retry_after=7)
        calls = 0

        def later_faults() -> None:
            nonlocal calls
            calls += 1
            if calls == 3:  # after the in-progress poll
                ehr.set_faults(server_errors=1, retry_after=3)

        clock.on_sleep = later_faults
        source = FhirBulkSource("s", spec(ehr), clock)
        assert len(await read_all(source)) == 1
        assert clock.sleeps == [0.5, 7.0, 1.0, 3.0]

    run(body, bulk_in_progress_polls=1)


def test_an_export_that_does_not_complete_in_time_fails() -> None:
    async def body(ehr: SimulatedEhr) -> None:
        source = FhirBulkSource("s", spec(ehr, timeout=10), StepClock())
        with pytest.raises(BatchSourceError, match="gave up waiting for the export to complete"):
            await read_all(source)
        await source.fail("timeout")
        assert ehr.bulk.jobs == {}

    run(body, bulk_in_progress_polls=100, bulk_retry_after=4)


def test_error_files_are_counted_and_exposed_and_max_errors_blocks_the_import() -> None:
    async def body(ehr: SimulatedEhr) -> None:
        await seed(ehr, "a", "b")
        ehr.set_faults(reject_types=["Patient"], reject_marker='"value": "b"')
        source = FhirBulkSource("s", spec(ehr), StepClock())
        records = await read_all(source)
        assert len(records) == 1
        assert source.error_count == 1
        (issue,) = source.export_errors()
        assert issue.origin == "error.ndjson line 1"
        assert issue.code == "processing" and issue.diagnostics.startswith("Patient/")
        strict = FhirBulkSource("s", spec(ehr, max_errors=0), StepClock())
        stream = strict.read(Window())
        with pytest.raises(BatchSourceError, match="1 error"):
            await anext(stream)

    run(body, bulk_in_progress_polls=0)


def test_a_file_shorter_than_its_manifest_count_is_not_imported() -> None:
    async def body(ehr: SimulatedEhr) -> None:
        await seed(ehr, "a", "b")
        clock = StepClock()

        def truncate() -> None:
            for job in ehr.bulk.jobs.values():
                job.files["Patient.ndjson"] = job.files["Patient.ndjson"].split(b"\n")[0]

        clock.on_sleep = truncate
        source = FhirBulkSource("s", spec(ehr), clock)
        stream = source.read(Window())
        with pytest.raises(BatchSourceError, match=r"counts 2 resources.* has 1 lines"):
            await anext(stream)

    run(body, bulk_in_progress_polls=1)


def test_bearer_token_from_environment_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(ehr: SimulatedEhr) -> None:
        await seed(ehr, "a")
        monkeypatch.setenv("BULK_TOKEN", "t0k3n")
        auth = {"type": "bearer", "token_env": "BULK_TOKEN"}
        source = FhirBulkSource("s", spec(ehr, auth=auth), StepClock())
        assert len(await read_all(source)) == 1
        await source.commit()
        assert ehr.bulk.jobs == {}
        monkeypatch.setenv("BULK_TOKEN", "wrong")
        with pytest.raises(BatchSourceError, match="HTTP 401: the bearer token is invalid"):
            await read_all(FhirBulkSource("s", spec(ehr, auth=auth), StepClock()))
        monkeypatch.delenv("BULK_TOKEN")
        with pytest.raises(BatchSourceError, match="BULK_TOKEN is not set"):
            await read_all(FhirBulkSource("s", spec(ehr, auth=auth), StepClock()))

    run(body, auth="bearer", static_token="t0k3n", bulk_in_progress_polls=0)


class WallStepClock(StepClock):
    """A `StepClock` whose wall time is real, so JWT assertions stay acceptable to the EHR."""

    def now(self) -> float:
        return time.time()


def test_smart_backend_tokens_are_refreshed_renewed_after_a_401_and_failures_reported(
    tmp_path: Path,
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    key_file = write_key(tmp_path / "bulk.pem", key)

    async def body(ehr: SimulatedEhr) -> None:
        ehr.register_client("thumpflow-bulk", jwks(key, "bulk-1"))
        (patient_id,) = await seed(ehr, "a")
        ehr.requests.clear()
        auth = {
            "type": "smart_backend",
            "client_id": "thumpflow-bulk",
            "private_key_file": str(key_file),
            "key_id": "bulk-1",
            "algorithm": "ES384",
            "scope": "system/*.read",
        }
        source = FhirBulkSource("s", spec(ehr, auth=auth), WallStepClock())
        assert [r.data["id"] for r in await read_all(source)] == [patient_id]
        await source.commit()
        assert ehr.bulk.jobs == {}
        # The EHR's 1 s tokens expire in real time while the source's clock stands
        # still, so the next kick-off carries an expired token: 401, renew, repeat.
        await asyncio.sleep(1.05)
        assert len(await read_all(source)) == 1
        await source.commit()
        assert ehr.bulk.jobs == {}
        export = "/fhir/$export"
        status = next(r.path for r in ehr.requests if r.path.startswith("/fhir/_bulk/status/"))
        file = next(r.path for r in ehr.requests if r.path.startswith("/fhir/_bulk/files/"))
        well_known = "/fhir/.well-known/smart-configuration"
        assert [(r.method, r.path, r.status) for r in ehr.requests[:8]] == [
            ("GET", well_known, 200),
            ("POST", "/auth/token", 200),
            ("GET", export, 202),
            ("GET", status, 202),
            ("POST", "/auth/token", 200),
            ("GET", status, 200),
            ("GET", file, 200),
            ("DELETE", status, 202),
        ]
        assert [(r.method, r.path, r.status) for r in ehr.requests[8:11]] == [
            ("GET", export, 401),
            ("POST", "/auth/token", 200),
            ("GET", export, 202),
        ]
        assert all(r.status in (200, 202) for r in ehr.requests[11:])
        ehr.requests.clear()
        unknown = FhirBulkSource(
            "s", spec(ehr, auth={**auth, "client_id": "unknown"}), WallStepClock()
        )
        with pytest.raises(
            BatchSourceError,
            match="no credential: token endpoint answered HTTP 401: invalid_client",
        ):
            await read_all(unknown)
        wrong_kind = FhirBulkSource(
            "s", spec(ehr, auth={**auth, "algorithm": "RS384"}), WallStepClock()
        )
        with pytest.raises(BatchSourceError, match="unusable credentials: RS384 needs an RSA"):
            await read_all(wrong_kind)
        assert [r.path for r in ehr.requests] == [well_known, "/auth/token"]

    run(body, auth="smart", static_token="t0k3n", token_lifetime=1.0, bulk_in_progress_polls=1)


def test_spec_example_and_rules() -> None:
    model = FhirBulkSourceSpec.model_validate(FhirBulkSourceSpec.example)
    assert model.level == "group"
    for name, info in FhirBulkSourceSpec.model_fields.items():
        assert info.description, name
    with pytest.raises(ValidationError):
        FhirBulkSourceSpec.model_validate({**FhirBulkSourceSpec.example, "unknown": 1})
    with pytest.raises(ValidationError, match="group_id"):
        FhirBulkSourceSpec.model_validate(
            {"type": "fhir_bulk", "base_url": "http://x", "level": "group"}
        )
    with pytest.raises(ValidationError, match="resource type"):
        FhirBulkSourceSpec.model_validate(
            {"type": "fhir_bulk", "base_url": "http://x", "types": ["patient"]}
        )

"""The simulated hospital: realistic traffic that the views take in whole.

The seeded day (ED arrivals, admit decisions, bed requests, transfers,
pending discharges, discharges, cleaning) projected directly keeps every
invariant and fills every read model; `thumpflow simulate hospital` sends
it to a running engine (ADT over MLLP, bed status over HTTP ingest), every
message acknowledged, and the live views end equal to a rebuild.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.api_support import issue
from tests.views.support import SPEC, event, spec
from tests.views.test_live import CONFIG, engine_at, rebuilt
from tests.views.test_projection_properties import check_one_bed_per_patient
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.core.access import Role
from thumpflow.testing.hospital import Hospital
from thumpflow.views.read import boarding, dirty_beds, outcomes, transfers
from thumpflow.views.state import Projection

UNITS = {"ED": ["01", "02", "03"], "4W": ["401-A", "401-B", "402-A"]}


def test_a_simulated_day_keeps_the_invariants_and_fills_the_views() -> None:
    assert [u["id"] for u in SPEC["units"]] == list(UNITS)  # type: ignore[index]
    hospital = Hospital(UNITS, "ED", seed=7)
    projection = Projection(spec())
    seen = {"boarding": 0, "dirty": 0, "transfers": 0}
    for n, item in enumerate(hospital.traffic(400), start=1):
        projection.apply(
            event(item.body, n, channel=item.channel, content_type=item.content_type), n
        )
        check_one_bed_per_patient(projection)
        now = item.at
        seen["boarding"] += bool(boarding(projection, now))
        seen["dirty"] += bool(dirty_beds(projection, now))
        seen["transfers"] += bool(transfers(projection))
    assert all(seen.values()), seen
    assert outcomes(projection)["counts"] == {}  # a consistent day: nothing superseded
    again = Projection(spec())
    for n, item in enumerate(Hospital(UNITS, "ED", seed=7).traffic(400), start=1):
        again.apply(event(item.body, n, channel=item.channel, content_type=item.content_type), n)
    assert again.state() == projection.state()


def test_simulate_hospital_sends_a_day_that_the_engine_takes_in_whole(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine_at(tmp_path) as engine:
            assert engine.views is not None
            server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
            try:
                token = tmp_path / "token"
                token.write_text(await issue(engine, Role.SENDER, "evs"))
                text = (
                    CONFIG.format(db=tmp_path / "views.db", out=tmp_path)
                    .replace("port: 0", f"port: {engine.source_port('adt-in')}")
                    .replace("api: {enabled: false}", f"api: {{port: {server.port}}}")
                )
                (tmp_path / "sim.yaml").write_text(text)
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "thumpflow.cli.main",
                    "simulate",
                    "hospital",
                    "-c",
                    str(tmp_path / "sim.yaml"),
                    "--count",
                    "80",
                    "--fast",
                    "--token-file",
                    str(token),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(process.communicate(), 60)
                assert process.returncode == 0, err.decode()
                assert out.decode().startswith("sent 80 messages")
                await engine.views.catch_up()
                assert engine.views.projection.position == await engine.store.last_position()
                assert (await rebuilt(engine)).state() == engine.views.projection.state()
                assert outcomes(engine.views.projection)["counts"] == {}
            finally:
                await server.close()

    asyncio.run(main())

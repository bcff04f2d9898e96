"""`/api/overview`, its series, job runs and the dashboard's files, over a real API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp

from tests.api_support import api_client
from tests.thump.support import config_text, csv_rows, drop, now_clock
from thumpflow.api.routes.dashboard import FILES
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.runtime.engine import Engine


async def _json(client: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    async with client.get(path) as response:
        assert response.status == status, await response.text()
        return await response.json()


@asynccontextmanager
async def census(tmp_path: Path) -> AsyncIterator[Engine]:
    """A started engine with channel `adt` (a file destination) and job `census`."""
    engine = Engine(parse_config(config_text(tmp_path)), clock=now_clock())
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def _finished_run(client: aiohttp.ClientSession) -> dict[str, Any]:
    async with client.post("/api/jobs/census/runs", json={"reason": "test run"}) as response:
        assert response.status == 202
        run_id = (await response.json())["run_id"]
    for _ in range(300):
        (run, *_) = (await _json(client, "/api/jobs/census/runs"))["runs"]
        if run["run_id"] == run_id and run["status"] != "running":
            return dict(run)
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish within 15 s")


def test_overview_rows_for_a_channel_its_destination_and_a_job(tmp_path: Path) -> None:
    drop(tmp_path, "census-1.csv", csv_rows(10))

    async def main() -> None:
        async with (
            census(tmp_path) as engine,
            api_client(engine, Role.VIEWER) as viewer,
            api_client(engine) as admin,
        ):
            first = await _json(viewer, "/api/overview")
            assert first["window_seconds"] == 300
            rows = {(r["kind"], r["id"]): r for r in first["rows"]}
            assert list(rows) == [
                ("channel", "adt"),
                ("destination", "adt-file"),
                ("job", "census"),
            ]
            channel, destination, job = rows.values()
            assert channel["status"] == destination["status"] == "current"
            assert (destination["queue_depth"], destination["delivered"]) == (0, 0)
            assert destination["channel_id"] == "adt"
            assert destination["latency_budget"] == 60.0
            assert destination["circuit"] == "closed"
            assert destination["error_rate"] is None and destination["lag_p99"] is None
            assert job["status"] == "current" and job["last_run"] is None
            assert job["next_due_at"] > first["at"]

            run = await _finished_run(admin)
            counts = run["counts"]
            assert (run["status"], counts["read"], counts["written"]) == ("succeeded", 10, 10)
            assert len(run["manifests_written"]) == 1
            assert run["manifests_written"][0]["record_count"] == 10
            job = (await _json(viewer, "/api/overview"))["rows"][2]
            assert job["status"] == "current", job["reasons"]
            assert job["last_run"]["run_id"] == run["run_id"]

            empty = await _finished_run(admin)
            assert empty["counts"]["read"] == 0
            job = (await _json(viewer, "/api/overview"))["rows"][2]
            assert job["status"] == "delayed"
            assert job["reasons"] == ["last run read zero records"]
            runs = (await _json(viewer, "/api/jobs/census/runs?limit=1"))["runs"]
            assert [r["run_id"] for r in runs] == [empty["run_id"]]

    asyncio.run(main())


def test_overview_rows_say_which_destination_and_channel_are_paused(tmp_path: Path) -> None:
    async def main() -> None:
        async with census(tmp_path) as engine, api_client(engine, Role.OPERATOR) as operator:

            async def paused() -> dict[str, bool]:
                rows = (await _json(operator, "/api/overview"))["rows"]
                return {r["id"]: r["paused"] for r in rows}

            async def act(path: str) -> None:
                async with operator.post(path, json={"reason": "receiver maintenance"}) as answer:
                    assert answer.status == 200, await answer.text()

            assert await paused() == {"adt": False, "adt-file": False, "census": False}
            await act("/api/destinations/adt-file/pause")
            assert await paused() == {"adt": False, "adt-file": True, "census": False}
            await act("/api/channels/adt/pause")
            assert await paused() == {"adt": True, "adt-file": True, "census": False}
            await act("/api/destinations/adt-file/resume")
            await act("/api/channels/adt/resume")
            assert await paused() == {"adt": False, "adt-file": False, "census": False}

    asyncio.run(main())


def test_series_and_runs_answer_unknown_names_and_bad_windows_clearly(tmp_path: Path) -> None:
    async def main() -> None:
        async with census(tmp_path) as engine, api_client(engine, Role.VIEWER) as client:
            series = await _json(client, "/api/overview/series?channel=adt&minutes=15")
            assert series["destinations"] == ["adt-file"]
            assert series["minutes"] == 15
            points = series["points"]
            assert len(points) == 15 and series["sampled_from"] == points[0]["at"]
            assert [p["at"] - points[0]["at"] for p in points] == [60.0 * n for n in range(15)]
            assert points[-1]["at"] <= series["at"] < points[-1]["at"] + 60
            assert all(p["delivered"] == p["dead"] == 0 for p in points)
            everything = await _json(client, "/api/overview/series")
            assert len(everything["points"]) == 60
            missing = await _json(client, "/api/overview/series?destination=nope", 404)
            assert missing == {"detail": "no destination 'nope' in the configuration"}
            other = await _json(client, "/api/overview/series?channel=nope", 404)
            assert other == {"detail": "no channel 'nope' in the configuration"}
            wrong = await _json(client, "/api/overview/series?minutes=0", 422)
            assert wrong["detail"][0]["loc"] == ["query", "minutes"]
            job = await _json(client, "/api/jobs/nope/runs", 404)
            assert job == {"detail": "no job 'nope'"}
            assert (await _json(client, "/api/jobs/census/runs"))["runs"] == []

    asyncio.run(main())


def test_the_dashboard_is_served_from_the_package_with_a_strict_policy(tmp_path: Path) -> None:
    shipped = {
        entry.name
        for entry in resources.files("thumpflow.api").joinpath("static").iterdir()
        if entry.is_file()
    }
    assert shipped == set(FILES)
    for name in shipped:
        text = resources.files("thumpflow.api").joinpath("static", name).read_text()
        text = text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace name, not a fetch
        assert "http://" not in text and "https://" not in text, f"{name} refers to the network"

    async def main() -> None:
        async with census(tmp_path) as engine, api_client(engine) as client:
            client.headers.pop("Authorization")
            async with client.get("/") as page:
                assert page.status == 200
                assert page.content_type == "text/html"
                policy = page.headers["Content-Security-Policy"]
                assert "default-src 'none'" in policy and "script-src 'self'" in policy
                html = await page.text()
            assert '<script type="module" src="/static/app.js">' in html
            async with client.get("/static/app.js") as script:
                assert script.status == 200 and script.content_type == "text/javascript"
            for path in ("/static/nope.js", "/static/..%2Fapp.py", "/static/"):
                async with client.get(path) as response:
                    assert response.status == 404, path
            async with client.get("/api/overview") as response:
                assert response.status == 401

    asyncio.run(main())

"""The dashboard in a real headless Chromium against a real engine and receiver.

An in-process engine serves its API and dashboard on a loopback port; one
MLLP channel delivers to a real HTTP receiver that dead-letters messages
carrying a marker (422). Chromium (Debian's package, driven over the
DevTools protocol by `tests.browser`) signs in with real tokens, and the
tests compare what the page shows with `/api/overview` and `/api/status`,
slow the receiver down until the row reads `delayed`, replay a dead letter
from the page and find it at the receiver and in the audit trail, and check
that a viewer sees only masked ordering keys.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.api_support import issue
from tests.browser import Page, chromium
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

MARKER = "REJECTME"
BUDGET = 2.0

CONFIG = """\
version: 1
store: {{path: {db}}}
alerts: {{interval: 100ms, disk_free_min_percent: 0}}
channels:
  - id: adt
    latency_budget: {budget}
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - id: ehr
        type: http
        url: {url}
        format: raw
        retry: {{base: 10ms, cap: 50ms}}
        circuit_breaker: {{failure_threshold: 1000}}
"""


def adt(control: str, mrn: str, note: str = "") -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|{control}|P|2.5\r"
        "EVN|A01|20261121083000\r"
        f"PID|1||{mrn}^^^GEN^MR||Doe^Jane{note}||19800101|F\r"
        "PV1|1|I|ICU^12^A\r"
    ).encode()


DELIVERED = [adt(f"OK{n}", f"MRN70{n}") for n in range(5)]
DEAD = [adt(f"DEAD{n}", f"MRN80{n}", note=MARKER) for n in range(2)]


@dataclass
class Site:
    engine: Engine
    receiver: HttpReceiver
    url: str
    admin: str

    async def get(self, path: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + path, headers=headers) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def send(self, messages: list[bytes]) -> None:
        acks = await send_in_order(self.engine.source_port("adt"), messages)
        assert [ack_code(ack) for ack in acks] == ["AA"] * len(messages)


@asynccontextmanager
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """Engine, API and receiver; 5 messages delivered and 2 dead-lettered."""
    receiver = HttpReceiver()
    await receiver.start()
    receiver.set_faults(reject_marker=MARKER)
    text = CONFIG.format(db=tmp_path / "dash.db", budget=BUDGET, url=receiver.url)
    engine = Engine(parse_config(text))
    await engine.start()
    server = None
    try:
        server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
        admin = await issue(engine, Role.ADMIN, "night-admin")
        found = Site(engine, receiver, f"http://127.0.0.1:{server.port}", admin)
        await found.send(DELIVERED + DEAD)
        for _ in range(300):
            (outbox,) = (await found.get("/api/status"))["channels"][0]["outboxes"]
            if (outbox["delivered"], outbox["dead"]) == (5, 2):
                break
            await asyncio.sleep(0.1)
        assert (outbox["delivered"], outbox["dead"], outbox["pending"]) == (5, 2, 0)
        yield found
    finally:
        if server is not None:
            await server.close()
        await engine.stop()
        await receiver.close()


async def sign_in(page: Page, base: str, token: str) -> None:
    await page.goto(base + "/")
    await page.wait_for("!document.getElementById('sign-in').hidden", what="the sign-in form")
    await page.type("#token", token)
    await page.click("#sign-in-button")
    await page.wait_for("document.body.dataset.ready === 'true'", what="the first page")


async def open_dead_letters(page: Page, s: Site, role: Role, name: str) -> str:
    """Sign in with a new `role` token named `name`, open the ehr page; the token."""
    token = await issue(s.engine, role, name)
    await sign_in(page, s.url, token)
    await page.goto(s.url + "/#/destination/ehr")
    await page.wait_for(
        "document.querySelectorAll('#dead-letters tbody tr').length === 2",
        what="two dead letters",
    )
    return token


def cell(row: str, field: str) -> str:
    return f'tr[data-row="{row}"] [data-field="{field}"]'


async def row_status(page: Page, row: str) -> str:
    status = await page.evaluate(
        f"document.querySelector('tr[data-row=\"{row}\"]')?.dataset.status ?? null"
    )
    return str(status)


def test_sign_in_numbers_match_the_api_and_a_slow_destination_reads_delayed(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with site(tmp_path) as s, chromium() as page:
            await page.goto(s.url + "/")
            await page.wait_for("!document.getElementById('sign-in').hidden")
            await page.type("#token", "not-a-token")
            await page.click("#sign-in-button")
            error = await page.wait_for(
                "document.getElementById('sign-in-error').textContent.includes('did not accept')"
                " && document.getElementById('sign-in-error').textContent",
                what="the bad-token message",
            )
            assert "var/admin-token" in error
            assert await page.evaluate("sessionStorage.length") == 0

            await page.type("#token", s.admin)
            await page.click("#sign-in-button")
            await page.wait_for(
                "document.querySelector('tr[data-row=\"destination:ehr\"]')", what="the ehr row"
            )
            overview = await s.get("/api/overview")
            status = await s.get("/api/status")
            rows = {f"{r['kind']}:{r['id']}": r for r in overview["rows"]}
            assert list(rows) == ["channel:adt", "destination:ehr"]
            ehr = rows["destination:ehr"]
            (outbox,) = status["channels"][0]["outboxes"]
            assert ehr["status"] == "current", ehr["reasons"]
            assert await row_status(page, "destination:ehr") == "current"
            assert await page.text(cell("destination:ehr", "status")) == "● current"
            for field, expected in (
                ("queue", outbox["pending"]),
                ("delivered", outbox["delivered"]),
                ("dead", outbox["dead"]),
            ):
                assert await page.text(cell("destination:ehr", field)) == str(expected)
                assert await page.text(cell("channel:adt", field)) == str(expected)
            assert (ehr["queue_depth"], ehr["delivered"], ehr["dead"]) == (0, 5, 2)
            assert ehr["error_rate"] == 2 / 7
            assert await page.text(cell("destination:ehr", "error-rate")) == "29 %"
            assert await page.text(cell("destination:ehr", "circuit")) == "closed"
            lag = await page.text(cell("destination:ehr", "lag"))
            assert lag.endswith("(budget 2.0 s)"), lag
            overall = await page.text("#overall")
            assert overall == "Overall: ● current — 2 current"

            s.receiver.set_faults(delay_seconds=BUDGET + 1.5)
            await s.send([adt("SLOW1", "MRN901")])
            await page.wait_for(
                "document.querySelector('tr[data-row=\"destination:ehr\"]')"
                ".dataset.status === 'delayed'",
                what="the ehr row to read delayed",
            )
            reasons = await page.text(cell("destination:ehr", "status"))
            assert "budget 2.0 s" in reasons, reasons
            assert await row_status(page, "channel:adt") == "delayed"
            assert "delayed" in await page.text("#overall")
            after = {r["id"]: r for r in (await s.get("/api/overview"))["rows"]}
            assert after["ehr"]["status"] in {"delayed", "stuck"}, after["ehr"]
            assert not page.errors

    asyncio.run(main())


def test_replay_from_the_page_reaches_the_receiver_and_the_audit_trail(tmp_path: Path) -> None:
    async def main() -> None:
        async with site(tmp_path) as s, chromium() as page:
            await open_dead_letters(page, s, Role.OPERATOR, "night-operator")
            series = await s.get("/api/overview/series?destination=ehr&minutes=60")
            assert sum(p["delivered"] for p in series["points"]) == 5
            assert sum(p["dead"] for p in series["points"]) == 2
            label = await page.evaluate(
                "document.querySelector('svg.chart').getAttribute('aria-label')"
            )
            assert "5 delivered, 2 dead-lettered" in label, label
            assert await page.text('[data-figure="dead-total"]') == "2"
            assert await page.text('[data-figure="delivered-total"]') == "5"
            (letter, _) = (await s.get("/api/dead-letters?destination=ehr"))["dead_letters"]
            assert letter["ordering_key"] != "•••"
            shown_key = await page.text(
                f'tr[data-delivery="{letter["delivery_id"]}"] [data-field="ordering-key"]'
            )
            assert shown_key == letter["ordering_key"]
            assert "422" in await page.text(
                f'tr[data-delivery="{letter["delivery_id"]}"] [data-field="reason"]'
            )

            s.receiver.set_faults(reject_marker=None)
            await page.click(f'tr[data-delivery="{letter["delivery_id"]}"] button.replay')
            await page.wait_for("document.getElementById('act-dialog').open")
            await page.click("#act-confirm")
            await page.wait_for(
                "document.getElementById('act-error').textContent.includes('Give a reason')"
            )
            await page.type("#act-reason", "receiver fixed after the 03:00 outage")
            await page.click("#act-confirm")
            flash = await page.wait_for(
                "document.getElementById('flash').textContent", what="the replay confirmation"
            )
            assert flash.startswith(f"Replayed delivery {letter['delivery_id']}"), flash
            key = f"{letter['event_id']}.ehr"
            for _ in range(300):
                if key in s.receiver.applied:
                    break
                await asyncio.sleep(0.1)
            assert key in s.receiver.applied
            await page.wait_for(
                "document.querySelectorAll('#dead-letters tbody tr').length === 1",
                what="the replayed letter to leave the list",
            )
            audit = await s.engine.store.audit(f"delivery:{letter['delivery_id']}")
            replayed = [entry for entry in audit if entry.action == "replayed"]
            assert len(replayed) == 1
            assert replayed[0].actor == "night-operator"
            assert replayed[0].detail == "receiver fixed after the 03:00 outage"
            assert not page.errors

    asyncio.run(main())


def test_a_viewer_sees_masked_ordering_keys_and_may_not_replay(tmp_path: Path) -> None:
    async def main() -> None:
        async with site(tmp_path) as s, chromium() as page:
            viewer = await open_dead_letters(page, s, Role.VIEWER, "ward-viewer")
            keys = await page.evaluate(
                "[...document.querySelectorAll('[data-field=\"ordering-key\"]')]"
                ".map(e => e.textContent)"
            )
            assert keys == ["•••", "•••"]
            body = await page.evaluate("document.body.innerText")
            assert "MRN80" not in body and "MRN70" not in body
            assert await page.evaluate("document.querySelectorAll('button.replay').length") == 0
            assert await page.evaluate("document.getElementById('pause-toggle').hidden")
            assert "Signed in as ward-viewer (viewer)" in await page.text("#who")

            # A page that offers the button anyway (the role is only a layout hint)
            # gets the engine's 403, shown in words.
            await page.evaluate(
                "sessionStorage.setItem('thumpflow.who',"
                " JSON.stringify({name: 'ward-viewer', role: 'operator'}))"
            )
            await page.reload()
            await page.wait_for(
                "document.querySelectorAll('#dead-letters tbody tr button.replay').length === 2",
                what="replay buttons offered to a tampered page",
            )
            await page.click("#dead-letters tbody tr button.replay")
            await page.type("#act-reason", "trying")
            await page.click("#act-confirm")
            refused = await page.wait_for(
                "document.getElementById('act-error').textContent.startsWith('Not allowed')"
                " && document.getElementById('act-error').textContent"
            )
            assert "viewer" in refused, refused
            dead = (await s.get("/api/status"))["channels"][0]["outboxes"][0]["dead"]
            assert dead == 2
            assert json.dumps(await s.get("/api/overview", viewer)).find("MRN") == -1

    asyncio.run(main())

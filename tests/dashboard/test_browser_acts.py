"""Message browser, timeline, payload views, alerts and pauses in a real headless Chromium.

The same site as `test_browser` (an in-process engine with its API on
loopback, one MLLP channel delivering to a real HTTP receiver; 5 messages
delivered, 2 dead-lettered). Chromium signs in with real tokens, searches
messages by control id and patient, pages through them, reads timelines,
opens a payload (audited), acknowledges an alert and pauses and resumes a
destination from the pages; every act is checked at the receiver and in the
audit trail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.api_support import issue
from tests.browser import Page, chromium
from tests.dashboard.test_browser import BUDGET, Site, adt, cell, sign_in, site
from thumpflow.core.access import Role


@asynccontextmanager
async def as_operator(tmp_path: Path) -> AsyncIterator[tuple[Site, Page]]:
    """The site, and a Chromium page signed in as operator `night-operator`."""
    async with site(tmp_path) as s, chromium() as page:
        await sign_in(page, s.url, await issue(s.engine, Role.OPERATOR, "night-operator"))
        yield s, page


async def search(page: Page, rows: int, **fields: str) -> list[dict[str, str]]:
    """Fill the search form (other text fields cleared), submit, wait for `rows` rows."""
    for name in ("patient", "control_id", "event_type", "channel"):
        if await page.evaluate(f"document.getElementById('search-{name}') !== null"):
            await page.type(f"#search-{name}", fields.get(name, ""))
    if "limit" in fields:
        await page.evaluate(
            f"document.getElementById('search-limit').value = {json.dumps(fields['limit'])}"
        )
    await answer(page, "#search-button")
    shown = await rows_shown(page)
    assert len(shown) == rows, (fields, shown)
    return shown


async def answer(page: Page, button: str) -> None:
    """Click `button` and wait until the message search has answered."""
    before = await page.evaluate("Number(document.getElementById('events').dataset.answered)")
    await page.click(button)
    await page.wait_for(
        f"Number(document.getElementById('events').dataset.answered) > {before}",
        what=f"the search answer after {button}",
    )


async def rows_shown(page: Page) -> list[dict[str, str]]:
    found = await page.evaluate(
        "[...document.querySelectorAll('#events tbody tr')].map(tr => Object.fromEntries("
        "[...tr.querySelectorAll('[data-field]')].map(td => [td.dataset.field, td.textContent])"
        ".concat([['event', tr.dataset.event]])))"
    )
    assert isinstance(found, list)
    return found


async def act(page: Page, button: str, reason: str) -> str:
    """Click `button`, give `reason` in the dialog, confirm; the flashed sentence."""
    await page.evaluate("document.getElementById('flash').textContent = ''")
    await page.click(button)
    await page.wait_for("document.getElementById('act-dialog').open", what="the act dialog")
    await page.type("#act-reason", reason)
    await page.click("#act-confirm")
    flashed = await page.wait_for(
        "!document.getElementById('act-dialog').open"
        " && document.getElementById('flash').textContent",
        what=f"the confirmation of {button}",
    )
    return str(flashed)


async def event_id(s: Site, control_id: str) -> str:
    (found,) = (await s.get(f"/api/events?control_id={control_id}"))["events"]
    return str(found["event_id"])


async def steps(page: Page) -> list[str]:
    found = await page.evaluate(
        "[...document.querySelectorAll('#steps li')].map(li => li.dataset.step)"
    )
    assert isinstance(found, list)
    return found


def test_search_by_control_id_and_patient_pages_on_and_a_viewer_sees_masked_values(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with as_operator(tmp_path) as (s, page):
            await page.goto(s.url + "/#/messages")
            await page.wait_for("document.querySelectorAll('#events tbody tr').length === 7")

            (found,) = await search(page, 1, control_id="OK3")
            expected = await event_id(s, "OK3")
            assert found["event"] == expected
            assert found["control-id"] == "OK3" and found["channel"] == "adt"
            assert found["ordering-key"] == "Patient/GEN|MRN703"
            assert found["deliveries"] == "1 delivered"

            (dead,) = await search(page, 1, patient="GEN|MRN801")
            assert dead["control-id"] == "DEAD1" and dead["deliveries"] == "1 dead"
            assert await search(page, 0, patient="GEN|MRN999") == []
            assert await page.text("#search-outcome") == "No messages match."

            first = await search(page, 5, limit="5")
            assert await page.evaluate("!document.getElementById('more').hidden")
            await answer(page, "#more")
            assert await page.evaluate("document.getElementById('more').hidden")
            every = await rows_shown(page)
            assert every[:5] == first
            assert sorted(row["control-id"] for row in every) == sorted(
                [f"OK{n}" for n in range(5)] + ["DEAD0", "DEAD1"]
            )
            api = await s.get("/api/events?limit=7")
            assert [row["event"] for row in every] == [e["event_id"] for e in api["events"]]

            await page.click("#sign-out")
            viewer = await issue(s.engine, Role.VIEWER, "ward-viewer")
            await sign_in(page, s.url, viewer)
            await page.goto(s.url + "/#/messages")
            await page.wait_for("document.querySelectorAll('#events tbody tr').length === 7")
            assert await page.evaluate("document.getElementById('search-patient') === null")
            (masked,) = await search(page, 1, control_id="DEAD0")
            assert masked["ordering-key"] == "•••"
            assert "MRN" not in await page.evaluate("document.body.innerText")

            await page.click(f'tr[data-event="{masked["event"]}"] a')
            await page.wait_for("document.querySelectorAll('#steps li').length > 0")
            assert await page.text('[data-figure="ordering-key"]') == "•••"
            assert await page.evaluate("document.getElementById('show-payload') === null")
            assert "may not open" in await page.text("#payload-refused")
            assert "MRN" not in await page.evaluate("document.body.innerText")
            views = await s.engine.store.audit(masked["event"])
            assert not [entry for entry in views if entry.action == "payload.viewed"]
            assert not page.errors

    asyncio.run(main())


def test_timelines_show_attempts_and_an_operator_opens_the_message_audited(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with as_operator(tmp_path) as (s, page):
            delivered = await event_id(s, "OK0")
            await page.goto(f"{s.url}/#/event/{delivered}")
            await page.wait_for("document.querySelector('#deliveries tbody tr')")
            assert await steps(page) == ["received", "queued", "delivered"]
            assert await page.text('[data-figure="control-id"]') == "OK0"
            row = "#deliveries tbody tr"
            assert await page.text(f"{row} [data-field='status']") == "delivered"
            outcomes = await page.evaluate(
                "[...document.querySelectorAll('#deliveries [data-attempt]')]"
                ".map(li => li.dataset.attempt + ':' + li.dataset.outcome)"
            )
            assert outcomes == ["1:delivered"]

            s.receiver.set_faults(unavailable=1, retry_after=0.05)
            await s.send([adt("RETRY1", "MRN710")])
            retried = await event_id(s, "RETRY1")
            await page.goto(f"{s.url}/#/event/{retried}")
            await page.wait_for(
                "[...document.querySelectorAll('#steps li')].some(li => li.dataset.step"
                " === 'delivered')",
                what="the retried message delivered on its page (the page updates itself)",
            )
            assert await steps(page) == ["received", "queued", "attempt_failed", "delivered"]
            times = await page.evaluate(
                "[...document.querySelectorAll('#steps time')].map(t => Date.parse(t.dateTime))"
            )
            assert times == sorted(times)
            attempts = await page.evaluate(
                "[...document.querySelectorAll('#deliveries [data-attempt]')]"
                ".map(li => [li.dataset.outcome, li.textContent])"
            )
            assert [outcome for outcome, _ in attempts] == ["failed", "delivered"]
            assert "503" in attempts[0][1], attempts

            assert await page.evaluate("document.getElementById('payload').hidden")
            flashed = await act(page, "#show-payload", "patient called about the admission")
            assert flashed == f"Opened the message of event {retried}; the view is audited."
            shown = await page.text("#payload")
            assert shown.splitlines()[0].startswith("MSH|^~\\&|REG|GEN")
            assert "RETRY1" in shown and "PID|1||MRN710^^^GEN^MR" in shown
            await page.wait_for(
                "[...document.querySelectorAll('#steps li')].some(li => li.dataset.step"
                " === 'payload_viewed')",
                what="the view in the timeline",
            )
            viewed = await s.engine.store.audit(retried, 100, "payload.viewed")
            assert [(e.actor, e.detail) for e in viewed] == [
                ("night-operator", "patient called about the admission")
            ]
            assert not page.errors

    asyncio.run(main())


def test_an_alert_acknowledged_from_the_overview_is_audited(tmp_path: Path) -> None:
    async def main() -> None:
        async with as_operator(tmp_path) as (s, page):
            assert await page.text("#alerts-note") == "No active alerts."
            assert await page.text("#cluster-note") == (
                "One node (embedded SQLite store): it holds every partition and duty."
            )
            s.receiver.set_faults(unavailable=10**9, retry_after=5)
            await s.send([adt("LATE1", "MRN720")])
            await page.wait_for(
                "[...document.querySelectorAll('#alerts tbody tr')].some(tr =>"
                " tr.querySelector('[data-field=\"kind\"]').textContent === 'latency_budget')",
                timeout=BUDGET + 25,
                what="the latency alert on the overview",
            )
            (alert,) = [
                a
                for a in (await s.get("/api/alerts?active=true"))["alerts"]
                if a["kind"] == "latency_budget"
            ]
            row = f'#alerts tr[data-alert="{alert["alert_id"]}"]'
            assert await page.text(f"{row} [data-field='subject']") == "ehr"
            assert await page.text(f"{row} [data-field='acknowledged']") == "not yet"
            flashed = await act(page, f"{row} button.ack", "looking into the ehr outage")
            assert flashed == f"Acknowledged alert {alert['alert_id']} (latency_budget on ehr)."
            await page.wait_for(
                f"document.querySelector('{row} [data-field=\"acknowledged\"]')"
                ".textContent.startsWith('by night-operator')",
                what="the acknowledgement on the page",
            )
            assert "looking into the ehr outage" in await page.text(
                f"{row} [data-field='acknowledged']"
            )
            assert await page.evaluate(f"document.querySelector('{row} button.ack') === null")
            audit = await s.engine.store.audit(f"alert:{alert['alert_id']}")
            acknowledged = [e for e in audit if e.action == "alert.acknowledged"]
            assert [(e.actor, e.detail) for e in acknowledged] == [
                ("night-operator", "looking into the ehr outage")
            ]
            s.receiver.set_faults(unavailable=0)
            assert not page.errors

    asyncio.run(main())


def test_pause_from_the_page_holds_deliveries_and_resume_sends_them_in_order(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with as_operator(tmp_path) as (s, page):
            await page.goto(s.url + "/#/destination/ehr")
            await page.wait_for("!document.getElementById('pause-toggle').hidden")
            assert await page.text("#pause-state") == "Sending."
            assert await page.text("#pause-toggle") == "Pause…"
            flashed = await act(page, "#pause-toggle", "ehr maintenance window")
            assert flashed == "Destination ehr is paused."
            state = await page.wait_for(
                "document.getElementById('pause-state').textContent.startsWith('Paused by')"
                " && document.getElementById('pause-state').textContent"
            )
            assert "night-operator" in state and "ehr maintenance window" in state
            assert await page.text("#pause-toggle") == "Resume…"

            before = len(s.receiver.applied)
            held = [adt(f"HELD{n}", "MRN730") for n in range(3)]
            await s.send(held)
            for _ in range(300):
                (outbox,) = (await s.get("/api/status"))["channels"][0]["outboxes"]
                if outbox["pending"] == 3:
                    break
                await asyncio.sleep(0.1)
            assert outbox["pending"] == 3
            await page.goto(s.url + "/#/")
            await page.wait_for(
                "document.querySelector('tr[data-row=\"destination:ehr\"]')?.dataset.paused"
                " === 'true'",
                what="the paused ehr row",
            )
            assert "paused" in await page.text(cell("destination:ehr", "status"))
            assert len(s.receiver.applied) == before

            await page.goto(s.url + "/#/destination/ehr")
            await page.wait_for("document.getElementById('pause-toggle').textContent === 'Resume…'")
            flashed = await act(page, "#pause-toggle", "maintenance over")
            assert flashed == "Destination ehr is running again."
            ids = [await event_id(s, f"HELD{n}") for n in range(3)]
            key = "Patient/GEN|MRN730"
            for _ in range(300):
                if len(s.receiver.applied_order(key)) == 3:
                    break
                await asyncio.sleep(0.1)
            assert s.receiver.applied_order(key) == [f"{event}.ehr" for event in ids]
            await page.wait_for("document.getElementById('pause-state').textContent === 'Sending.'")
            audit = await s.engine.store.audit("destination:ehr")
            audit.sort(key=lambda entry: entry.entry_id)
            assert [(e.action, e.actor, e.detail) for e in audit] == [
                ("paused", "night-operator", "ehr maintenance window"),
                ("resumed", "night-operator", "maintenance over"),
            ]
            assert not page.errors

    asyncio.run(main())

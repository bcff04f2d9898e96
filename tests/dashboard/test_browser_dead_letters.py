"""The *Dead letters* page in a real headless Chromium: search, bulk replay by filter, edit.

The site of `test_browser` (5 messages delivered, 2 dead-lettered by the
receiver's marker rule). Bulk replay: a newer message of the first dead
letter's patient is delivered, the receiver is fixed, and an operator
narrows the list by destination, channel, event type and reason, then
replays every match in one act with a reason: one is replayed, the other
refused and listed with why (naming the newer delivery, no message value);
a second, explicit act sends it out of order. Edit: an operator opens a
dead letter's page, opens its message (audited), removes the marker and
sends the edited copy; the receiver gets it as a new event, the original
stays dead, and the same edit sent again is recognised as a duplicate. A
viewer sees the list and a dead letter's facts with masked ordering keys,
and no act.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from tests.api_support import issue
from tests.browser import Page, chromium
from tests.dashboard.test_browser import MARKER, Site, adt, sign_in, site
from tests.dashboard.test_browser_acts import act
from thumpflow.core.access import Role

BULK = "receiver's marker rule removed"
EDIT = "marker removed after calling the ward"


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded, 30 s) until `condition()` holds."""
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"waited 30 s for {what}")


async def shown_rows(page: Page) -> list[str]:
    found = await page.evaluate(
        "[...document.querySelectorAll('#dead-letters tbody tr')].map(tr => tr.dataset.delivery)"
    )
    assert isinstance(found, list)
    return found


async def search(page: Page, rows: int, **fields: str) -> list[str]:
    """Fill the dead-letter search (others cleared), submit, wait for `rows` rows."""
    for name in ("destination", "channel", "event-type", "reason-contains"):
        await page.type(f"#dead-{name}", fields.get(name.replace("-", "_"), ""))
    # The search asked for is the one shown: the page drawn for it replaces the marked
    # table (the earlier search's table may already have `rows` rows).
    await page.evaluate("document.getElementById('dead-letters').dataset.stale = 'yes'")
    await page.click("#dead-button")
    await page.wait_for(
        "document.body.dataset.ready === 'true' && "
        "!document.getElementById('dead-letters').dataset.stale && document.querySelectorAll("
        f"'#dead-letters tbody tr').length === {rows} && document.getElementById("
        "'dead-outcome').textContent !== ''",
        what=f"{rows} dead letters for {fields}",
    )
    return await shown_rows(page)


def test_bulk_replay_by_filter_replays_what_it_may_and_lists_the_refused_with_why(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with site(tmp_path) as s, chromium() as page:
            await s.send([adt("NEWER0", "MRN800")])
            await until(lambda: len(s.receiver.applied) == 6, "the newer message delivered")
            letters = (await s.get("/api/dead-letters?destination=ehr"))["dead_letters"]
            by_patient = {x["ordering_key"][-6:]: x for x in letters}
            older, other = by_patient["MRN800"], by_patient["MRN801"]
            await sign_in(page, s.url, await issue(s.engine, Role.OPERATOR, "night-operator"))
            await page.goto(s.url + "/#/dead-letters")
            await page.wait_for(
                "document.querySelectorAll('#dead-letters tbody tr').length === 2",
                what="both dead letters listed",
            )
            assert await search(page, 0, channel="no-such-channel") == []
            assert await page.text("#dead-outcome") == (
                "No dead letters matching channel “no-such-channel”."
            )
            assert await page.evaluate("document.getElementById('replay-matching').disabled")
            assert await search(page, 0, reason_contains="nothing like this") == []
            expected = sorted([str(older["delivery_id"]), str(other["delivery_id"])])
            found = await search(
                page,
                2,
                destination="ehr",
                channel="adt",
                event_type=older["event_type"],
                reason_contains="422",
            )
            assert sorted(found) == expected
            assert "destination=ehr" in await page.evaluate("location.hash")
            s.receiver.set_faults(reject_marker=None)

            flashed = await act(page, "#replay-matching", BULK)
            assert flashed == (
                "Replayed 1 dead letter; 1 refused because a newer message of the same "
                "ordering key was delivered (listed on the page)."
            ), flashed
            await until(lambda: f"{other['event_id']}.ehr" in s.receiver.applied, "the replay")
            assert f"{older['event_id']}.ehr" not in s.receiver.applied
            assert not await page.evaluate("document.getElementById('refused-section').hidden")
            refusal = await page.text(f"#replay-refused li[data-delivery='{older['delivery_id']}']")
            assert f"delivery {older['delivery_id']} was not replayed: delivery " in refusal
            for value in ("MRN800", "Doe", "Jane", MARKER):
                assert value not in refusal
            await page.wait_for(
                "document.querySelectorAll('#dead-letters tbody tr').length === 1",
                what="the replayed one gone from the list",
            )

            flashed = await act(page, "#replay-refused-out-of-order", BULK + ", order checked")
            assert flashed == "Replayed 1 dead letter; 1 of them out of order.", flashed
            late_key = f"{older['event_id']}.ehr"
            await until(lambda: late_key in s.receiver.applied, "the out-of-order replay")
            assert await page.evaluate("document.getElementById('refused-section').hidden")

            (replayed,) = await s.engine.store.audit(action="replayed")
            (late,) = await s.engine.store.audit(action="replayed.out_of_order")
            assert (replayed.subject, replayed.actor) == (
                f"delivery:{other['delivery_id']}",
                "night-operator",
            )
            assert replayed.detail.startswith(BULK)
            assert (late.subject, late.actor) == (
                f"delivery:{older['delivery_id']}",
                "night-operator",
            )
            assert not page.errors

    asyncio.run(main())


async def open_dead_letter(page: Page, s: Site, delivery: int) -> None:
    await page.goto(s.url + "/#/dead-letters?destination=ehr")
    await page.wait_for(
        "document.querySelectorAll('#dead-letters tbody tr').length === 2", what="the list"
    )
    await page.click(f"#dead-letters tr[data-delivery='{delivery}'] a")
    await page.wait_for(
        "document.getElementById('open-dead-letter')?.disabled === false", what="its page"
    )


def test_a_dead_letter_is_opened_edited_and_sent_again_from_its_page(tmp_path: Path) -> None:
    async def main() -> None:
        async with site(tmp_path) as s, chromium() as page:
            letters = (await s.get("/api/dead-letters?destination=ehr"))["dead_letters"]
            letter = letters[0]
            delivery = letter["delivery_id"]
            await sign_in(page, s.url, await issue(s.engine, Role.OPERATOR, "day-operator"))
            await open_dead_letter(page, s, delivery)
            assert await page.text("[data-figure=reason]") == letter["reason"]

            await act(page, "#open-dead-letter", "look at what the receiver refused")
            shown = await page.evaluate("document.getElementById('dead-letter-body').value")
            assert MARKER in shown and "\r" not in shown
            await page.click("#send-edited")
            assert "Nothing is changed" in await page.text("#dead-letter-note")
            assert not await page.evaluate("document.getElementById('act-dialog').open")

            fixed = shown.replace(MARKER, "")
            await page.evaluate(
                f"document.getElementById('dead-letter-body').value = {json.dumps(fixed)}"
            )
            flashed = await act(page, "#send-edited", EDIT)
            assert flashed.startswith("Sent to ehr as event "), flashed
            new_event = flashed.removeprefix("Sent to ehr as event ").rstrip(".")
            key = f"{new_event}.ehr"
            await until(lambda: key in s.receiver.applied, "the edited copy at the receiver")
            body = s.receiver.applied[key]
            assert MARKER.encode() not in body and body.startswith(b"MSH|") and b"\n" not in body
            assert f"{letter['event_id']}.ehr" not in s.receiver.applied

            again = await act(page, "#send-edited", EDIT)
            assert again == (
                f"This same edit was sent before, as event {new_event}; nothing new was sent."
            )
            still = (await s.get(f"/api/dead-letters?delivery={delivery}"))["dead_letters"]
            assert [x["delivery_id"] for x in still] == [delivery]
            (edited, _) = await s.engine.store.audit(action="dead_letter.edited")
            assert (edited.subject, edited.actor) == (f"delivery:{delivery}", "day-operator")
            assert edited.detail.startswith(EDIT) and MARKER not in edited.detail
            (viewed,) = await s.engine.store.audit(action="payload.viewed")
            assert (viewed.actor, viewed.detail) == (
                "day-operator",
                "look at what the receiver refused",
            )

            await page.click("#sign-out")
            await sign_in(page, s.url, await issue(s.engine, Role.VIEWER, "ward-viewer"))
            await page.goto(s.url + "/#/dead-letters")
            await page.wait_for(
                "document.querySelectorAll('#dead-letters tbody tr').length === 2",
                what="the list for a viewer",
            )
            keys = await page.evaluate(
                "[...document.querySelectorAll('[data-field=ordering-key]')]"
                ".map(e => e.textContent)"
            )
            assert keys == ["•••", "•••"]
            for control in ("replay-matching", "replay-refused-out-of-order"):
                assert await page.evaluate(f"document.getElementById('{control}') === null")
            assert await page.evaluate("document.querySelector('button.replay') === null")
            await page.goto(f"{s.url}/#/dead-letter/{delivery}")
            await page.wait_for(
                "document.querySelector('[data-figure=reason]') !== null", what="its page"
            )
            assert await page.evaluate("document.getElementById('open-dead-letter') === null")
            assert "MRN80" not in await page.evaluate("document.body.innerText")

            await page.goto(s.url + "/#/dead-letter/999999")
            await page.wait_for(
                "document.querySelector('.notice')?.textContent.includes('not on the dead-letter')",
                what="the missing dead letter named",
            )
            assert not page.errors

    asyncio.run(main())

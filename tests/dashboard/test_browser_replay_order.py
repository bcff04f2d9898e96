"""Replay from the dashboard respects order per patient, in a real headless Chromium.

The site of `test_browser` (5 messages delivered, 2 dead-lettered); then a
newer message of the first dead letter's patient is delivered. Replaying
that dead letter from the page is refused: the dialog stays open and says
why, naming the newer delivery and no message value. Ticking "Deliver out
of order" and confirming replays it; the receiver gets it, the audit trail
has `replayed.out_of_order` under the operator's name, and the event's
timeline page marks it "replayed out of order".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.browser import chromium
from tests.dashboard.test_browser import adt, open_dead_letters, site
from thumpflow.core.access import Role

REASON = "receiver merges by message time"


def test_a_refused_replay_is_explained_and_the_checkbox_sends_it_out_of_order(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with site(tmp_path) as s, chromium() as page:
            await s.send([adt("NEWER0", "MRN800")])
            for _ in range(300):
                if len(s.receiver.applied) == 6:
                    break
                await asyncio.sleep(0.1)
            assert len(s.receiver.applied) == 6
            await open_dead_letters(page, s, Role.OPERATOR, "night-operator")
            letters = (await s.get("/api/dead-letters?destination=ehr"))["dead_letters"]
            (letter,) = [x for x in letters if x["ordering_key"].endswith("MRN800")]
            delivery = letter["delivery_id"]
            s.receiver.set_faults(reject_marker=None)

            await page.click(f'tr[data-delivery="{delivery}"] button.replay')
            await page.wait_for("document.getElementById('act-dialog').open")
            assert not await page.evaluate("document.getElementById('act-option').hidden")
            assert not await page.evaluate("document.getElementById('act-option-box').checked")
            assert "out of order" in await page.text("#act-option-label")
            await page.type("#act-reason", REASON)
            await page.click("#act-confirm")
            refused = await page.wait_for(
                "document.getElementById('act-error').textContent.startsWith('Not replayed')"
                " && document.getElementById('act-error').textContent",
                what="the refusal in the dialog",
            )
            assert f"delivery {delivery} was not replayed: delivery " in refused, refused
            assert "Deliver out of order" in refused
            for value in ("MRN800", "Doe", "Jane", "REJECTME"):
                assert value not in refused
            assert await page.evaluate("document.getElementById('act-dialog').open")
            key = f"{letter['event_id']}.ehr"
            assert key not in s.receiver.applied

            await page.click("#act-option-box")
            await page.click("#act-confirm")
            flash = await page.wait_for(
                "document.getElementById('flash').textContent", what="the replay confirmation"
            )
            assert flash.startswith(f"Replayed delivery {delivery} out of order"), flash
            for _ in range(300):
                if key in s.receiver.applied:
                    break
                await asyncio.sleep(0.1)
            assert key in s.receiver.applied
            (entry,) = await s.engine.store.audit(action="replayed.out_of_order")
            assert (entry.subject, entry.actor) == (f"delivery:{delivery}", "night-operator")
            assert entry.detail.startswith(REASON)

            await page.goto(f"{s.url}/#/event/{letter['event_id']}")
            mark = await page.wait_for(
                "document.querySelector('#steps li[data-step=\"replayed_out_of_order\"]')"
                "?.textContent",
                what="the out-of-order mark in the timeline",
            )
            assert "replayed out of order" in mark and "night-operator" in mark, mark
            assert not page.errors

    asyncio.run(main())

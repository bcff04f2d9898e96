"""Rejected messages in a real headless Chromium: listed, opened (audited), fixed and reprocessed.

The site of `test_browser` (an in-process engine, its API, a real HTTP
receiver). A message without a message type (MSH-9) is refused at ingress;
an operator finds it on the *Rejected* page with its reason, opens it with
a reason, adds MSH-9 in the editor and reprocesses it with a reason: the
channel accepts it, the receiver gets the fixed message, and the view and
the reprocess are in the audit trail under the operator's name.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.api_support import issue
from tests.browser import chromium
from tests.dashboard.test_browser import sign_in, site
from tests.dashboard.test_browser_acts import act
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.core.access import Role
from thumpflow.hl7v2 import Message

BROKEN = (
    "MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000|||FIXME1|P|2.5\r"
    "PID|1||MRN900^^^GEN^MR||Doe^Jane||19800101|F\r"
)


def test_an_operator_fixes_and_reprocesses_a_rejected_message_from_the_pages(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with site(tmp_path) as s, chromium() as page:
            acks = await send_in_order(s.engine.source_port("adt"), [BROKEN.encode()])
            assert [ack_code(ack) for ack in acks] == ["AE"]
            await sign_in(page, s.url, await issue(s.engine, Role.OPERATOR, "day-operator"))
            await page.goto(s.url + "/#/rejects")
            reason = await page.wait_for(
                "document.querySelector('#rejects tbody tr [data-field=reason]')?.textContent",
                what="the reject row",
            )
            assert reason == "MSH (segment 1), field 9: message type (MSH-9) missing"
            reject_id = await page.evaluate(
                "document.querySelector('#rejects tbody tr').dataset.reject"
            )
            await page.click(f"#rejects tbody tr[data-reject='{reject_id}'] a")
            await page.wait_for("document.getElementById('open-reject') !== null", what="the page")
            await act(page, "#open-reject", "fix the registration feed")
            shown = await page.evaluate("document.getElementById('reject-body').value")
            assert shown.startswith("MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000|||FIXME1|")
            fixed = shown.replace("|20261121083000|||", "|20261121083000||ADT^A08^ADT_A01|")
            await page.evaluate(
                f"document.getElementById('reject-body').value = {json.dumps(fixed)}"
            )
            flashed = await act(page, "#reprocess", "MSH-9 added after calling registration")
            assert flashed == "Accepted (AA) by channel adt."
            for _ in range(300):
                if any(b"FIXME1" in body for body in s.receiver.applied.values()):
                    break
                await asyncio.sleep(0.05)
            (body,) = [b for b in s.receiver.applied.values() if b"FIXME1" in b]
            assert Message.parse(body).message_type == "ADT"
            trail = await s.engine.store.audit(f"reject:{reject_id}")
            assert [(e.action, e.actor) for e in reversed(trail)] == [
                ("rejected", "source:adt"),
                ("payload.viewed", "day-operator"),
                ("reject.reprocessed", "day-operator"),
            ]

    asyncio.run(scenario())

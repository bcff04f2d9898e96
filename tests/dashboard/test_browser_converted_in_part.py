"""Messages converted to FHIR only in part, found and explained from the dashboard.

An in-process engine converts an MLLP channel's messages to FHIR
(`thumpflow.mapping:to_fhir`) and writes the Bundles to a file; of three
messages, one lacks its required PV1 and one has no message map. In a real
headless Chromium a viewer reads the channel page's count of conversion
warnings and follows its link to those two messages; ticks "Converted to
FHIR in part" on the Messages page and gets the same two; and reads in the
timeline of one what was left out, naming the segment and never a value
from the message.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api_support import issue
from tests.browser import chromium
from tests.dashboard.test_browser import sign_in
from tests.dashboard.test_browser_acts import answer, rows_shown, steps
from tests.e2e.harness import outbox_drained
from tests.e2e.procs import ack_code, send_in_order
from tests.runtime.test_conversion_warning_metric import adt, unmapped
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
store: {{path: {db}}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    transform: thumpflow.mapping:to_fhir
    destinations:
      - {{id: fhir, type: file, path: {out}, format: jsonl}}
"""


def test_a_viewer_lists_the_messages_converted_in_part_and_reads_why(tmp_path: Path) -> None:
    async def main() -> None:
        text = CONFIG.format(db=tmp_path / "dash.db", out=tmp_path / "out.jsonl")
        engine = Engine(parse_config(text))
        await engine.start()
        server = None
        try:
            acks = await send_in_order(
                engine.source_port("adt"),
                [adt("PART1", pv1=False), adt("FULL1", pv1=True), unmapped("PART2")],
            )
            assert [ack_code(ack) for ack in acks] == ["AA"] * 3
            await outbox_drained(engine, "fhir")
            server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
            base = f"http://127.0.0.1:{server.port}"
            viewer = await issue(engine, Role.VIEWER, "ward-viewer")
            async with chromium() as page:
                await sign_in(page, base, viewer)
                await page.goto(base + "/#/channel/adt")
                said = await page.wait_for(
                    "!document.getElementById('converted-in-part').hidden"
                    " && document.getElementById('converted-in-part').textContent",
                    what="the channel's conversion warnings",
                )
                assert "Conversion to FHIR left something out" in said
                assert "missing segment 1" in said and "no message map 1" in said
                await page.click("#converted-in-part-messages")
                await page.wait_for(
                    "document.getElementById('search-converted_in_part')?.checked"
                    " && document.querySelectorAll('#events tbody tr').length === 2",
                    what="the messages converted in part, listed from the channel page",
                )
                linked = await rows_shown(page)
                assert sorted(row["control-id"] for row in linked) == ["PART1", "PART2"]

                await page.goto(base + "/#/messages")
                # Three messages received and the three Bundles derived from them.
                await page.wait_for("document.querySelectorAll('#events tbody tr').length === 6")
                await page.click("#search-converted_in_part")
                await answer(page, "#search-button")
                shown = await rows_shown(page)
                assert sorted(row["control-id"] for row in shown) == ["PART1", "PART2"]
                assert await page.text("#search-outcome") == "2 messages shown."

                (part1,) = [row for row in shown if row["control-id"] == "PART1"]
                await page.click(f'tr[data-event="{part1["event"]}"] a')
                await page.wait_for(
                    "document.querySelector('#steps li[data-step=\"converted_in_part\"]')",
                    what="the converted_in_part step",
                )
                assert "converted_in_part" in await steps(page)
                said = await page.text('#steps li[data-step="converted_in_part"]')
                assert "converted to FHIR in part" in said
                assert "required segment PV1 is missing" in said
                body = await page.evaluate("document.body.innerText")
                assert "Zyxwabble" not in body and "ZQX77" not in body
                assert not page.errors
        finally:
            if server is not None:
                await server.close()
            await engine.stop()

    asyncio.run(main())

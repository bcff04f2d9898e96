"""The bed-board page in a real headless Chromium against a running engine.

ADT over MLLP fills beds; a viewer signs in, opens Beds and sees each unit's
beds with status letter and word (colour only repeats them) and patients
masked; a discharge sent while the page is open turns the bed to `H
housekeeping` without reloading (the page is live). An operator declares
surge from the page (reason asked, audited under the token's name); a
viewer sees the mode, since when and why, and is offered no act.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api_support import issue
from tests.browser import chromium
from tests.dashboard.test_browser import sign_in
from tests.dashboard.test_browser_acts import act
from tests.e2e.procs import send_in_order
from tests.views.support import T0
from tests.views.test_live import engine_at
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.masking import MASK
from thumpflow.api.server import serve
from thumpflow.core.access import Role
from thumpflow.testing.hospital import adt


def tile(bed: str, what: str) -> str:
    return f"document.querySelector('li[data-bed=\"{bed}\"]')?.{what}"


def test_a_viewer_sees_the_board_by_unit_masked_and_live(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine_at(tmp_path) as engine:
            port = engine.source_port("adt-in")
            sent = [
                adt("A01", "P1", "4W/401-A", T0 + 1, "m1"),
                adt("A04", "P2", "ED/02", T0 + 2, "m2", patient_class="E"),
            ]
            assert len(await send_in_order(port, sent)) == 2
            server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
            try:
                url = f"http://127.0.0.1:{server.port}"
                async with chromium() as page:
                    await sign_in(page, url, await issue(engine, Role.VIEWER, "ward-clerk"))
                    await page.goto(url + "/#/beds")
                    await page.wait_for(
                        tile("4W/401-A", "dataset.status") + " === 'O'", what="bed 401-A occupied"
                    )
                    text = await page.text('li[data-bed="4W/401-A"]')
                    assert "O occupied" in text and MASK in text and "P1" not in text
                    units = await page.evaluate(
                        "[...document.querySelectorAll('section.unit h2')].map(h => h.textContent)"
                    )
                    assert units == ["ED (ed)", "4W (inpatient)"]
                    census = await page.text('section[data-unit="4W"] .census')
                    assert census.startswith("1 occupied, 2 open, 0 unavailable")
                    assert (
                        len(await send_in_order(port, [adt("A03", "P1", "4W/401-A", T0 + 3, "m3")]))
                        == 1
                    )
                    await page.wait_for(
                        tile("4W/401-A", "dataset.status") + " === 'H'",
                        what="bed 401-A to housekeeping, live",
                    )
                    assert "H housekeeping" in await page.text('li[data-bed="4W/401-A"]')
                    assert page.errors == []
            finally:
                await server.close()

    asyncio.run(main())


def test_an_operator_declares_surge_on_the_beds_page_and_a_viewer_sees_why(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with engine_at(tmp_path) as engine:
            server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
            try:
                url = f"http://127.0.0.1:{server.port}"
                async with chromium() as page:
                    await sign_in(page, url, await issue(engine, Role.OPERATOR, "bed-manager"))
                    await page.goto(url + "/#/beds")
                    state = await page.wait_for(
                        "document.getElementById('mode-state')?.textContent",
                        what="the mode in force",
                    )
                    assert str(state).startswith("NORMAL since ")
                    await page.evaluate("document.getElementById('mode-choice').value = 'surge'")
                    flashed = await act(page, "#mode-declare", "four ambulances inbound")
                    assert flashed == "The mode is now surge."
                    state = await page.wait_for(
                        "document.getElementById('mode').dataset.mode === 'surge'"
                        " && document.getElementById('mode-state').textContent",
                        what="surge shown",
                    )
                    assert "declared by bed-manager: four ambulances inbound" in str(state)
                    effect = await page.text("#mode-effect")
                    assert effect.startswith("Deferred lanes: bulk;")
                    assert page.errors == []
                async with chromium() as page:
                    await sign_in(page, url, await issue(engine, Role.VIEWER, "ward-clerk"))
                    await page.goto(url + "/#/beds")
                    await page.wait_for(
                        "document.getElementById('mode')?.dataset.mode === 'surge'",
                        what="surge shown to a viewer",
                    )
                    assert await page.evaluate(
                        "document.getElementById('mode-declare').closest('p').hidden"
                    )
                    assert page.errors == []
            finally:
                await server.close()
            entries = await engine.store.audit("mode:surge")
            assert [(e.actor, e.detail) for e in entries] == [
                ("bed-manager", "declared by an operator: four ambulances inbound")
            ]

    asyncio.run(main())

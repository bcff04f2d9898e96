"""The issue's "Done means", as a person would do it, with real processes throughout.

`thumpflow run --config` (what `make run` runs) starts the engine as a process
on a copy of `examples/thumpflow.yaml` in a fresh directory: the same
channel, lanes and file destinations with the same relative `var/` paths,
only the ports moved to free ones, a 2 s latency budget, alerts evaluated
often, and one HTTP destination added that points at a real
`thumpflow.testing.http_receiver` process. Then, in order:

1. Chromium signs in with the admin token the engine wrote to `var/admin-token`.
2. `thumpflow send` (the real command) sends three ADT messages; the overview
   shows them delivered to `ehr`, which reads `current`.
3. The receiver is broken on purpose: it refuses messages carrying a marker
   (two dead letters) and then answers slowly; the `ehr` row becomes
   `delayed` and a latency alert appears, which is acknowledged from the page.
4. The receiver is fixed; both dead letters are replayed from the
   destination's page with a reason, and the receiver gets them.
5. `thumpflow audit verify` exits 0 and `thumpflow audit list --json` holds the
   login, both replays and the acknowledgement with their actor and reason.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.browser import Page, chromium
from tests.dashboard.test_browser import adt, sign_in
from tests.e2e.procs import free_port, start_receiver, wait_listening

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "thumpflow.yaml"
THUMPFLOW = Path(sys.executable).with_name("thumpflow")
MARKER = "REFUSEME"
BUDGET = 2.0
REPLAY_REASON = "receiver fixed: marker rule removed"
ACK_REASON = "ehr is slow, vendor called"


def walkthrough_config(api: int, mllp: int, receiver: int) -> str:
    """The example configuration with free ports, a budget, alerts and an HTTP destination."""
    config = yaml.safe_load(EXAMPLE.read_text())
    config["api"]["port"] = api
    config["alerts"] = {"interval": "200ms", "disk_free_min_percent": 0}
    (channel,) = config["channels"]
    channel["source"]["port"] = mllp
    channel["latency_budget"] = BUDGET
    channel["destinations"].append(
        {
            "id": "ehr",
            "type": "http",
            "url": f"http://127.0.0.1:{receiver}/deliveries",
            "format": "raw",
            "timeout_seconds": 30,
            "retry": {"base": "50ms", "cap": "200ms"},
        }
    )
    return yaml.safe_dump(config, sort_keys=False)


async def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A `thumpflow` command as a process in `cwd` (60 s at most)."""
    process = await asyncio.create_subprocess_exec(
        str(THUMPFLOW),
        *args,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"thumpflow {' '.join(args)} did not finish in 60 s") from None
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def send(cwd: Path, port: int, *messages: bytes) -> None:
    """Write each message to a file and send them all with `thumpflow send`."""
    files = []
    for message in messages:
        control = message.split(b"\r")[0].split(b"|")[9].decode()
        path = cwd / f"{control}.hl7"
        path.write_bytes(message)
        files.append(path.name)
    sent = await run(cwd, "send", f"127.0.0.1:{port}", *files)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.count("-> AA") == len(messages), sent.stdout


async def receiver_call(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/_admin/{path}"
        request = session.get(url) if body is None else session.post(url, json=body)
        async with request as response:
            assert response.status == 200, await response.text()
            return await response.json()


def row(destination: str, field: str) -> str:
    return (
        f'document.querySelector(\'tr[data-row="destination:{destination}"]'
        f' [data-field="{field}"]\')?.textContent'
    )


async def replay_from_page(page: Page, remaining: int) -> None:
    """Replay the first dead letter listed, with a reason; wait until `remaining` are left."""
    await page.evaluate("document.getElementById('flash').textContent = ''")
    await page.click("#dead-letters tbody tr button.replay")
    await page.wait_for("document.getElementById('act-dialog').open", what="the replay dialog")
    await page.type("#act-reason", REPLAY_REASON)
    await page.click("#act-confirm")
    flashed = await page.wait_for(
        "document.getElementById('flash').textContent", what="the replay confirmation"
    )
    assert str(flashed).startswith("Replayed delivery"), flashed
    await page.wait_for(
        f"document.querySelectorAll('#dead-letters tbody tr').length === {remaining}",
        what=f"{remaining} dead letters left",
    )


def test_run_send_watch_break_delay_fix_replay_and_verify_the_audit(tmp_path: Path) -> None:
    api, mllp, receiver_port = free_port(), free_port(), free_port()
    (tmp_path / "thumpflow.yaml").write_text(walkthrough_config(api, mllp, receiver_port))
    receiver = start_receiver(receiver_port, tmp_path / "applied.jsonl", tmp_path / "receiver.out")
    engine: subprocess.Popen[bytes] | None = None

    async def main(engine: subprocess.Popen[bytes]) -> None:
        async with chromium() as page:
            admin = (tmp_path / "var" / "admin-token").read_text().strip()
            base = f"http://127.0.0.1:{api}"
            await sign_in(page, base, admin)
            assert "Signed in as admin (admin)" in await page.text("#who")
            rows = await page.evaluate(
                "[...document.querySelectorAll('#overview tbody tr')].map(tr => tr.dataset.row)"
            )
            assert rows == [
                "channel:hl7-in",
                "destination:archive",
                "destination:adt-feed",
                "destination:ehr",
            ]

            await send(tmp_path, mllp, *(adt(f"WALK{n}", f"MRN10{n}") for n in range(3)))
            await page.wait_for(f"{row('ehr', 'delivered')} === '3'", what="3 delivered to ehr")
            await page.wait_for(f"{row('archive', 'delivered')} === '3'", what="3 archived")
            assert (
                await page.evaluate(
                    "document.querySelector('tr[data-row=\"destination:ehr\"]').dataset.status"
                )
                == "current"
            )

            await receiver_call(receiver_port, "faults", {"reject_marker": MARKER})
            await send(
                tmp_path, mllp, adt("BROKEN1", "MRN201", MARKER), adt("BROKEN2", "MRN202", MARKER)
            )
            await page.wait_for(f"{row('ehr', 'dead')} === '2'", what="2 dead letters")

            await receiver_call(receiver_port, "faults", {"delay_seconds": BUDGET + 3})
            await send(tmp_path, mllp, adt("SLOW1", "MRN301"))
            await page.wait_for(
                "document.querySelector('tr[data-row=\"destination:ehr\"]').dataset.status"
                " === 'delayed'",
                what="the ehr row to read delayed",
            )
            assert "budget 2.0 s" in str(await page.evaluate(row("ehr", "status")))
            alert = await page.wait_for(
                "[...document.querySelectorAll('#alerts tbody tr')].find(tr => tr.querySelector("
                "'[data-field=\"kind\"]').textContent === 'latency_budget'"
                " && tr.querySelector('button.ack'))?.dataset.alert",
                what="the latency alert with its Acknowledge button",
            )
            latency = f'#alerts tr[data-alert="{alert}"]'
            assert await page.text(f"{latency} [data-field='subject']") == "ehr"
            await page.click(f"{latency} button.ack")
            await page.type("#act-reason", ACK_REASON)
            await page.click("#act-confirm")
            await page.wait_for(
                f"document.querySelector('{latency} [data-field=\"acknowledged\"]')"
                ".textContent.startsWith('by admin')",
                what="the acknowledgement on the page",
            )

            await receiver_call(
                receiver_port, "faults", {"delay_seconds": 0, "reject_marker": None}
            )
            await page.goto(base + "/#/destination/ehr")
            await page.wait_for(
                "document.querySelectorAll('#dead-letters tbody tr').length === 2",
                what="the two dead letters on the ehr page",
            )
            await replay_from_page(page, 1)
            await replay_from_page(page, 0)

            async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {admin}"}
            ) as client:
                broken = []
                for control in ("BROKEN1", "BROKEN2"):
                    async with client.get(f"{base}/api/events?control_id={control}") as answer:
                        (event,) = (await answer.json())["events"]
                        broken.append(f"{event['event_id']}.ehr")
            for _ in range(300):
                applied = (await receiver_call(receiver_port, "state"))["applied_keys"]
                if set(broken) <= set(applied):
                    break
                await asyncio.sleep(0.1)
            assert set(broken) <= set(applied), applied
            assert len(applied) == 6
            await page.goto(base + "/#/")
            await page.wait_for(f"{row('ehr', 'delivered')} === '6'", what="6 delivered to ehr")
            await page.wait_for(f"{row('ehr', 'dead')} === '0'", what="no dead letters left")
            assert not page.errors

        verified = await run(tmp_path, "audit", "verify", "--config", "thumpflow.yaml")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.startswith("audit trail intact:"), verified.stdout
        listed = await run(
            tmp_path, "audit", "list", "--config", "thumpflow.yaml", "--json", "--limit", "100000"
        )
        assert listed.returncode == 0, listed.stderr
        entries = json.loads(listed.stdout)
        acts = {
            (entry["action"], entry["actor"], entry["detail"])
            for entry in entries
            if entry["action"] in {"login", "replayed", "alert.acknowledged"}
        }
        assert acts == {
            ("login", "admin", "via token as admin"),
            ("replayed", "admin", REPLAY_REASON),
            ("alert.acknowledged", "admin", ACK_REASON),
        }
        replays = [entry["subject"] for entry in entries if entry["action"] == "replayed"]
        assert len(replays) == 2 and len(set(replays)) == 2
        assert engine.poll() is None, "the engine stopped during the walkthrough"

    try:
        engine = subprocess.Popen(
            [str(THUMPFLOW), "run", "--config", "thumpflow.yaml"],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=(tmp_path / "engine.out").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_listening(api, engine)
        asyncio.run(main(engine))
    finally:
        for process in (engine, receiver):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(30)

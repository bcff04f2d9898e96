"""Flow rejects: seen, shown (audited), fixed and reprocessed, from the CLI and the API.

The engine runs as a real process with a channel whose transform refuses a
message without MSH-7. A sender's message is refused (AE, with the reason);
`thumpflow rejects messages` lists it with that reason; `rejects message`
shows it through the API, audited; reprocessing it as kept is refused
again; reprocessing an edited copy (MSH-7 added) is accepted and delivered,
and the original reject stays. The same through `POST
/api/rejects/{id}/reprocess`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.e2e.procs import ack_code, free_port, send_in_order, start_engine

CONFIG = """\
store: {{path: var/t.db}}
api: {{port: {api}}}
transforms_path: [transforms]
channels:
  - id: lab
    source: {{type: mllp, port: {mllp}}}
    transform: require_time:require_time
    destinations:
      - {{id: archive, type: file, path: out/archive.hl7}}
"""

TRANSFORM = """\
from thumpflow.transform import TransformError, derive


def require_time(event, message):
    if not message.get("MSH-7"):
        raise TransformError("MSH-7 (message time) is missing", code="101")
    return [derive(event, event.body)]
"""


def oru(control: str, stamp: str = "") -> str:
    return (
        f"MSH|^~\\&|LAB|GEN|ENG|GEN|{stamp}||ORU^R01^ORU_R01|{control}|P|2.5\r"
        f"PID|1||M{control}^^^GEN^MR||Doe^Ana\r"
        "OBX|1|NM|K^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F\r"
    )


def thumpflow(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "THUMPFLOW_TOKEN": ""},
    )


def delivered(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split("|")[9] for line in path.read_text().split("\n") if line.startswith("MSH")]


def wait_delivered(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(delivered(path)) >= count:
            break
        time.sleep(0.05)
    return delivered(path)


def test_a_rejected_message_is_seen_fixed_and_reprocessed_from_the_cli_and_the_api(
    tmp_path: Path,
) -> None:
    (tmp_path / "transforms").mkdir()
    (tmp_path / "transforms" / "require_time.py").write_text(TRANSFORM)
    api, mllp = free_port(), free_port()
    config = tmp_path / "thumpflow.yaml"
    config.write_text(CONFIG.format(api=api, mllp=mllp))
    engine = start_engine(config, mllp, tmp_path / "engine.log")
    try:
        acks = asyncio.run(send_in_order(mllp, [oru("R1").encode(), oru("R2").encode()]))
        assert [ack_code(ack) for ack in acks] == ["AE", "AE"]
        assert b"transform failed: MSH-7 (message time) is missing" in acks[0]

        listed = thumpflow(config, "rejects", "messages", "--contains", "msh-7")
        assert listed.returncode == 0, listed.stderr
        rows = listed.stdout.splitlines()
        assert rows[0].split() == ["ID", "CHANNEL", "RECEIVED", "PEER", "REASON"]
        assert len(rows) == 3 and all("transform failed: MSH-7" in row for row in rows[1:])
        first = rows[-1].split()[0]

        shown = thumpflow(config, "rejects", "message", first, "--reason", "fix the lab feed")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[0].endswith("|ORU^R01^ORU_R01|R1|P|2.5")

        again = thumpflow(config, "rejects", "reprocess", first, "--reason", "retry as is")
        assert again.returncode == 1
        assert "AE: " in again.stdout and "MSH-7 (message time) is missing" in again.stdout

        fixed = tmp_path / "fixed.hl7"
        fixed.write_text(
            shown.stdout.replace("|LAB|GEN|ENG|GEN||", "|LAB|GEN|ENG|GEN|20261121090000|")
        )
        edited = thumpflow(
            config, "rejects", "reprocess", first, "--edit", str(fixed),
            "--reason", "MSH-7 added, confirmed with the lab",
        )  # fmt: skip
        assert edited.returncode == 0, edited.stderr + edited.stdout
        assert edited.stdout.strip() == f"reject {first} (edited) -> channel lab: AA"
        assert wait_delivered(tmp_path / "out" / "archive.hl7", 1) == ["R1"]

        async def through_the_api() -> None:
            token = (tmp_path / "var" / "admin-token").read_text().strip()
            headers = {"Authorization": f"Bearer {token}"}
            base = f"http://127.0.0.1:{api}"
            async with aiohttp.ClientSession(headers=headers) as session:
                async with session.get(f"{base}/api/rejects?channel=lab") as answer:
                    rejects = (await answer.json())["rejects"]
                second = next(r for r in rejects if r["reject_id"] != int(first))
                assert second["reason"] == "transform failed: MSH-7 (message time) is missing"
                body = {"reason": "time added", "body": oru("R2", "20261121091500")}
                url = f"{base}/api/rejects/{second['reject_id']}/reprocess"
                async with session.post(url, json=body) as answer:
                    assert answer.status == 200, await answer.text()
                    assert await answer.json() == {
                        "reject_id": second["reject_id"],
                        "channel_id": "lab",
                        "edited": True,
                        "content_type": "x-application/hl7-v2+er7",
                        "status": "accepted",
                        "accepted": True,
                        "ack_code": "AA",
                        "error": None,
                        "event_id": None,
                    }
                async with session.post(f"{base}/api/rejects/999/reprocess", json=body) as gone:
                    assert gone.status == 404
                async with session.get(f"{base}/api/rejects?channel=lab") as answer:
                    kept = (await answer.json())["rejects"]
                assert {r["reject_id"] for r in kept} >= {int(first), second["reject_id"]}

        asyncio.run(through_the_api())
        assert wait_delivered(tmp_path / "out" / "archive.hl7", 2) == ["R1", "R2"]
        trail = thumpflow(config, "audit", "list", "--subject", f"reject:{first}", "--json")
        entries = [(e["action"], e["detail"]) for e in json.loads(trail.stdout)]
        assert ("payload.viewed", "fix the lab feed") in entries
        reprocessed = [detail for action, detail in entries if action == "reject.reprocessed"]
        assert len(reprocessed) == 2
        assert any(
            d.startswith("MSH-7 added, confirmed with the lab (edited, sha256 ")
            for d in reprocessed
        )
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)

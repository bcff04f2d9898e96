"""The README's first-run walkthrough, command by command, on a copy of the example configuration.

Send the sample messages, see the one refused and why, fix and reprocess it,
then add a destination and reload without a restart (and see a typo
refused while the running configuration stays).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.procs import free_port, start_engine

ROOT = Path(__file__).resolve().parents[2]
RESULTS = """\
      - id: results
        type: file
        path: var/out/results.hl7
        when: [{path: MSH-9.1, equals: ORU}]
"""


def test_the_readme_first_run_walkthrough(tmp_path: Path) -> None:
    api, mllp = free_port(), free_port()
    text = (ROOT / "examples" / "thumpflow.yaml").read_text()
    text = text.replace("port: 8080", f"port: {api}").replace("port: 2575", f"port: {mllp}")
    config = tmp_path / "thumpflow.yaml"
    config.write_text(text)
    env = {**os.environ, "THUMPFLOW_CONFIG": str(config)}
    env.pop("THUMPFLOW_TOKEN", None)

    def thumpflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "thumpflow.cli.main", *args],
            capture_output=True, text=True, check=False, timeout=60, env=env, cwd=ROOT,
        )  # fmt: skip

    engine = start_engine(config, api, tmp_path / "engine.log")
    try:
        samples = sorted(
            str(p.relative_to(ROOT)) for p in (ROOT / "examples/messages").glob("*.hl7")
        )
        sent = thumpflow("send", f"127.0.0.1:{mllp}", *samples)
        assert sent.stdout.count("AA") == 4 and sent.stdout.count("AE") == 1, sent.stdout
        status = thumpflow("status", "--json")
        assert '"rejected": 1' in status.stdout and '"received": 4' in status.stdout
        listed = thumpflow("rejects", "messages")
        assert "message type (MSH-9) missing" in listed.stdout
        shown = thumpflow("rejects", "message", "1", "--reason", "fix the registration feed")
        assert shown.returncode == 0, shown.stderr
        fixed = tmp_path / "fixed.hl7"
        fixed.write_text(
            shown.stdout.replace("|20261205110000|||", "|20261205110000||ADT^A03^ADT_A03|")
        )
        again = thumpflow(
            "rejects", "reprocess", "1", "--edit", str(fixed), "--reason", "MSH-9 added"
        )
        assert again.returncode == 0 and again.stdout.strip().endswith(": AA"), again.stdout

        config.write_text(text.replace("    destinations:\n", "    destinations:\n" + RESULTS, 1))
        reloaded = thumpflow("reload", "--reason", "results to their own file")
        assert reloaded.returncode == 0, reloaded.stderr
        assert reloaded.stdout.splitlines()[0] == "changed: hl7-in"
        oru = tmp_path / "new-oru.hl7"
        sample = (ROOT / "examples/messages/oru-r01-normal-sodium.hl7").read_bytes()
        oru.write_bytes(sample.replace(b"LAB-0002", b"LAB-0003"))
        assert "AA" in thumpflow("send", f"127.0.0.1:{mllp}", str(oru)).stdout
        results = tmp_path / "var" / "out" / "results.hl7"
        deadline = time.monotonic() + 30
        while not (results.exists() and b"LAB-0003" in results.read_bytes()):
            assert time.monotonic() < deadline, "the new destination got the ORU"
            time.sleep(0.05)

        config.write_text(
            config.read_text().replace(
                "        when: [{path: MSH-9.1, equals: ORU}]", "        wen: x"
            )
        )
        typo = thumpflow("reload", "--reason", "oops")
        assert typo.returncode == 1 and "Traceback" not in typo.stderr
        assert re.search(
            r":\d+:9: channel 'hl7-in' > destination 'results' > wen: "
            r"unknown key 'wen' — did you mean 'when'\?",
            typo.stderr,
        )
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0

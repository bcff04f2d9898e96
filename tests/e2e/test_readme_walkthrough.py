"""The README's first-run walkthrough, run as written: its shell lines, its YAML, in order.

The section "First run" of README.md is read, not copied: its `sh` blocks
are run line by line through bash (an `export` carries over, as in a
terminal) in a folder laid out like the repository (a copy of `examples/`),
against an engine started as `make run` starts it. The only change is the
ports, moved to free ones (the configuration's and the `send` target's).
The YAML block is added under `destinations:` as the text says; then the
typo the text mentions is made and refused while the engine keeps running.
What each line's comment promises is checked; a README line this test does
not know fails it, so the walkthrough and its proof change together.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.procs import free_port, start_engine

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KNOWN = (
    "thumpflow send 127.0.0.1:2575 examples/messages/*.hl7",
    "export THUMPFLOW_CONFIG=examples/thumpflow.yaml",
    "thumpflow status",
    "thumpflow rejects messages",
    "thumpflow rejects message 1 ",
    "sed -i ",
    "thumpflow rejects reprocess 1 --edit fixed.hl7 ",
    "thumpflow reload ",
    "sed s/LAB-0002/LAB-0003/ ",
    "thumpflow send 127.0.0.1:2575 new.hl7",
    "cat examples/var/out/results.hl7",
)


def section() -> tuple[list[list[str]], str]:
    """The section's `sh` blocks (command lines, comments cut) and its YAML block."""
    text = (ROOT / "README.md").read_text()
    part = text[text.index("## First run") : text.index("## What it is")]
    blocks = re.findall(r"```(sh|yaml)\n(.*?)```", part, re.S)
    shell = [
        [re.sub(r"\s+#.*$", "", line) for line in body.splitlines() if line.strip()[:1] != "#"]
        for kind, body in blocks
        if kind == "sh"
    ]
    (yaml_block,) = [body for kind, body in blocks if kind == "yaml"]
    return shell, yaml_block


class Terminal:
    """A person's terminal in `cwd`: bash per line, exports kept, the venv on PATH."""

    def __init__(self, cwd: Path, mllp: int) -> None:
        self.cwd = cwd
        self.mllp = mllp
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        for name in ("THUMPFLOW_CONFIG", "THUMPFLOW_TOKEN"):
            self.env.pop(name, None)

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        assert line.startswith(KNOWN), f"README line the walkthrough test does not know: {line}"
        if line.startswith("export "):
            name, value = line.removeprefix("export ").split("=", 1)
            self.env[name] = value
        return subprocess.run(
            ["bash", "-c", line.replace("127.0.0.1:2575", f"127.0.0.1:{self.mllp}")],
            cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip


def eventually(path: Path, needle: bytes) -> None:
    deadline = time.monotonic() + 30
    while not (path.exists() and needle in path.read_bytes()):
        assert time.monotonic() < deadline, f"{needle!r} reached {path.name}"
        time.sleep(0.05)


def test_the_readme_first_run_walkthrough_as_written(tmp_path: Path) -> None:
    (first, second), snippet = section()
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("var"))
    api, mllp = free_port(), free_port()
    config = tmp_path / "examples" / "thumpflow.yaml"
    original = config.read_text()
    config.write_text(
        original.replace("port: 8080", f"port: {api}").replace("port: 2575", f"port: {mllp}")
    )
    out = tmp_path / "examples" / "var" / "out"
    person = Terminal(tmp_path, mllp)
    engine = start_engine(config, api, tmp_path / "engine.log")
    try:
        answers = [person.run(line) for line in first]
        codes = [done.returncode for done in answers]
        assert codes == [1] + [0] * (len(first) - 1), [(a.stdout, a.stderr) for a in answers]
        sent, _, status, listed, shown, _, reprocessed, after = answers
        assert sent.stdout.count("-> AA") == 4 and sent.stdout.count("-> AE") == 1
        (refused,) = [line for line in sent.stdout.splitlines() if "-> AE" in line]
        assert refused.startswith("examples/messages/adt-missing-message-type.hl7")
        assert "message type (MSH-9) missing" in refused
        assert re.search(r"^hl7-in\s+4$", status.stdout, re.M), status.stdout
        assert "rejected 1)" in status.stdout
        assert "message type (MSH-9) missing" in listed.stdout and listed.stdout.count("\n") == 2
        assert shown.stdout == "" and "ADM-0003" in (tmp_path / "fixed.hl7").read_text()
        assert "||ADT^A03^ADT_A03|ADM-0003|" in (tmp_path / "fixed.hl7").read_text()
        assert reprocessed.stdout.strip() == "reject 1 (edited) -> channel hl7-in: AA"
        assert re.search(r"^hl7-in\s+5$", after.stdout, re.M) and "rejected 1)" in after.stdout
        eventually(out / "archive.hl7", b"|ADT^A03^ADT_A03|ADM-0003|")

        changed = config.read_text().replace("    destinations:\n", "    destinations:\n" + snippet)
        config.write_text(changed)
        reload, make_new, send_new, cat = second
        done = person.run(reload)
        assert done.returncode == 0 and done.stdout.splitlines()[0] == "changed: hl7-in", done
        assert person.run(make_new).returncode == 0
        assert "new.hl7#1 MSH-10=LAB-0003 -> AA" in person.run(send_new).stdout
        eventually(out / "results.hl7", b"LAB-0003")
        shown_results = person.run(cat).stdout
        assert "LAB-0003" in shown_results
        assert "LAB-0002" not in shown_results and "ADM-" not in shown_results

        when = "        when: [{path: MSH-9.1, equals: ORU}]\n"
        assert snippet.endswith(when)
        config.write_text(changed.replace(snippet, snippet.replace(when, "        wen: x\n")))
        typo = person.run(reload)
        assert typo.returncode == 1 and "Traceback" not in typo.stderr
        assert re.search(
            r"examples/thumpflow\.yaml:\d+:9: channel 'hl7-in' > destination 'results' > wen: "
            r"unknown key 'wen' — did you mean 'when'\?",
            typo.stderr,
        ), typo.stderr
        (tmp_path / "new.hl7").write_text(
            (tmp_path / "new.hl7").read_text().replace("LAB-0003", "LAB-0004")
        )
        assert "-> AA" in person.run(send_new).stdout
        eventually(out / "results.hl7", b"LAB-0004")
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0

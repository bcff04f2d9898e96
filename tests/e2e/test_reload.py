"""Deploy without a restart: SIGHUP, `thumpflow reload` and the API act, under MLLP load.

The engine runs as a real process. A sender keeps one MLLP connection to an
unchanged channel busy while the configuration is reloaded: every message
is answered AA, none is lost, and the connection is never closed. A changed
channel restarts with its new destination; an added channel starts; an
invalid file is refused with its located problem while the old
configuration keeps running; SIGTERM still stops the engine with its
shutdown audit anchor.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.procs import END, START, ack_code, free_port, send_in_order, start_engine
from thumpflow.config import load_config
from thumpflow.runtime.engine import Engine
from thumpflow.runtime.reload import plan_reload

CONFIG = """\
store: {{path: var/reload.db}}
api: {{enabled: {api}, port: {api_port}}}
channels:
  - id: steady
    source: {{type: mllp, port: {steady}}}
    destinations:
      - {{id: steady-out, type: file, path: out/steady.hl7}}
  - id: lab
    source: {{type: mllp, port: {lab}}}
    destinations:
      - {{id: lab-out, type: file, path: out/lab.hl7}}
{more}"""

ADDED = """\
  - id: extra
    source: {{type: mllp, port: {extra}}}
    destinations:
      - {{id: extra-out, type: file, path: out/extra.hl7}}
"""


def adt(control: str) -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|{control}|P|2.5\r"
        f"PID|1||M{control}^^^GEN^MR||Doe^Ana\r"
    ).encode()


class Steady:
    """One connection sending one message at a time until told to stop; every answer kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.codes: list[str] = []
        self.closed_by_engine = False
        self.stop = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        number = 0
        try:
            while not self.stop.is_set() and number < 5000:
                number += 1
                writer.write(START + adt(f"S{number}") + END)
                await writer.drain()
                frame = await asyncio.wait_for(reader.readuntil(END), 10)
                self.codes.append(ack_code(frame))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_engine = True
        finally:
            writer.close()


def lines(path: Path) -> int:
    return path.read_bytes().count(b"MSH|") if path.exists() else 0


async def wait_for(check: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def test_sighup_reloads_per_channel_under_load_refuses_an_invalid_file_and_sigterm_anchors(
    tmp_path: Path,
) -> None:
    ports = {"steady": free_port(), "lab": free_port(), "extra": free_port()}
    config = tmp_path / "thumpflow.yaml"
    text = CONFIG.format(api="false", api_port=0, more="", **ports)
    config.write_text(text)
    log = tmp_path / "engine.log"
    engine = start_engine(config, ports["steady"], log)

    async def scenario() -> None:
        steady = Steady(ports["steady"])
        sending = asyncio.create_task(steady.run())
        await wait_for(lambda: len(steady.codes) >= 20)
        # 1. lab gets a second destination; a channel is added; steady is unchanged.
        changed = text.replace(
            "      - {id: lab-out, type: file, path: out/lab.hl7}\n",
            "      - {id: lab-out, type: file, path: out/lab.hl7}\n"
            "      - {id: lab-copy, type: file, path: out/lab-copy.hl7}\n",
        ) + ADDED.format(**ports)
        config.write_text(changed)
        before = len(steady.codes)
        engine.send_signal(signal.SIGHUP)
        await wait_for(
            lambda: "configuration reloaded: changed lab; added extra" in log.read_text()
        )
        await wait_for(lambda: len(steady.codes) >= before + 50)
        assert [ack_code(a) for a in await send_in_order(ports["lab"], [adt("L1")])] == ["AA"]
        assert [ack_code(a) for a in await send_in_order(ports["extra"], [adt("E1")])] == ["AA"]
        await wait_for(lambda: lines(tmp_path / "out" / "lab-copy.hl7") == 1)
        await wait_for(lambda: lines(tmp_path / "out" / "extra.hl7") == 1)
        # 2. An invalid file is refused, located; the running configuration stays.
        config.write_text(changed.replace(f"port: {ports['extra']}", f"prot: {ports['extra']}"))
        engine.send_signal(signal.SIGHUP)
        await wait_for(lambda: "reload refused; the running configuration stays" in log.read_text())
        assert (
            f"reload refused: {config}:14:26: channel 'extra' > source > prot: "
            "unknown key 'prot' — did you mean 'port'?"
        ) in log.read_text()
        assert [ack_code(a) for a in await send_in_order(ports["extra"], [adt("E2")])] == ["AA"]
        config.write_text(changed)
        steady.stop.set()
        await sending
        assert not steady.closed_by_engine, "the unchanged channel's connection stayed open"
        assert set(steady.codes) == {"AA"}
        sent = len(steady.codes)
        await wait_for(lambda: lines(tmp_path / "out" / "steady.hl7") == sent)

    try:
        asyncio.run(scenario())
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    output = log.read_text()
    assert output.count("audit.anchor") >= 2, "an anchor at start and one at shutdown"
    assert output.rstrip().splitlines()[-1].split("audit.anchor ")[-1].count(":") == 1
    assert "Traceback" not in output
    audit = subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "audit", "list", "--config", str(config),
         "--subject", "config", "--json"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    actions = [entry["action"] for entry in json.loads(audit.stdout)]
    assert "config.changed" in actions and "config.reload_refused" in actions, audit.stderr


def test_a_reload_that_changes_what_needs_a_restart_is_refused_whole(tmp_path: Path) -> None:
    ports = {"steady": free_port(), "lab": free_port(), "extra": free_port()}
    config = tmp_path / "thumpflow.yaml"
    text = CONFIG.format(api="false", api_port=0, more="", **ports)
    config.write_text(text)

    async def scenario() -> None:
        engine = Engine(load_config(config))
        engine.config_path = config
        await engine.start()
        try:
            config.write_text(text.replace("var/reload.db", "var/other.db") + ADDED.format(**ports))
            with pytest.raises(Exception, match="store change only with a restart"):
                await engine.reload_file("test")
            assert set(engine.channels) == {"steady", "lab"}
            config.write_text(text)
            plan = await engine.reload_file("test")
            assert plan.summary() == "nothing changed"
        finally:
            await engine.stop()

    asyncio.run(scenario())
    new = load_config(config)
    assert plan_reload(new, new).unchanged == ("lab", "steady")


def test_thumpflow_reload_through_the_api_is_an_audited_act(tmp_path: Path) -> None:
    ports = {"steady": free_port(), "lab": free_port(), "extra": free_port()}
    api_port = free_port()
    config = tmp_path / "thumpflow.yaml"
    text = CONFIG.format(api="true", api_port=api_port, more="", **ports)
    config.write_text(text)
    engine = start_engine(config, api_port, tmp_path / "engine.log")
    try:
        config.write_text(text + ADDED.format(**ports))
        env = {**os.environ, "THUMPFLOW_CONFIG": str(config)}
        done = subprocess.run(
            [sys.executable, "-m", "thumpflow.cli.main", "reload", "--reason", "add extra"],
            capture_output=True, text=True, check=False, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["added: extra", "unchanged: lab, steady"]
        assert [ack_code(a) for a in asyncio.run(send_in_order(ports["extra"], [adt("E1")]))] == [
            "AA"
        ]
        config.write_text(text.replace("var/reload.db", "var/other.db"))
        refused = subprocess.run(
            [sys.executable, "-m", "thumpflow.cli.main", "reload", "--reason", "oops"],
            capture_output=True, text=True, check=False, timeout=60, env=env,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "the engine refused the reload (422)" in refused.stderr
        assert "store change only with a restart; nothing was reloaded" in refused.stderr
        config.write_text("channels: []\n")
        invalid = subprocess.run(
            [sys.executable, "-m", "thumpflow.cli.main", "reload", "--reason", "oops"],
            capture_output=True, text=True, check=False, timeout=60, env=env,
        )  # fmt: skip
        assert invalid.returncode == 1 and "Traceback" not in invalid.stderr
        assert f"{config}:1:1: channels: List should have at least 1 item" in invalid.stderr
        assert [ack_code(a) for a in asyncio.run(send_in_order(ports["extra"], [adt("E2")]))] == [
            "AA"
        ]
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)
    config.write_text(text + ADDED.format(**ports))
    audit = subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "audit", "list", "--config", str(config),
         "--subject", "config", "--json"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    entries = [(e["action"], e["actor"], e["detail"]) for e in json.loads(audit.stdout)]
    assert ("config.reload", "admin", "add extra") in entries, entries
    assert any(action == "config.changed" and "added channel:extra" in detail
               for action, _, detail in entries), entries  # fmt: skip
    assert any(action == "config.reload_refused" and actor == "admin"
               for action, actor, _ in entries)  # fmt: skip


PROBE = """\
from thumpflow.transform import derive, editable


def mark(event, message):
    copy = editable(event)
    copy.set("PID-5.1", "{mark}")
    return [derive(event, copy.to_bytes(), purpose="marked")]
"""


def test_a_changed_transform_module_restarts_only_its_channel_and_a_broken_one_is_refused(
    tmp_path: Path,
) -> None:
    ports = {"steady": free_port(), "lab": free_port(), "extra": free_port()}
    module = f"tf_reload_probe_{abs(hash(tmp_path)) % 10**8}"
    folder = tmp_path / "transforms"
    folder.mkdir()
    (folder / f"{module}.py").write_text(PROBE.format(mark="FIRST"))
    config = tmp_path / "thumpflow.yaml"
    text = CONFIG.format(api="false", api_port=0, more="", **ports).replace(
        f"    source: {{type: mllp, port: {ports['lab']}}}\n",
        f"    source: {{type: mllp, port: {ports['lab']}}}\n    transform: '{module}:mark'\n",
    )
    config.write_text("transforms_path: [transforms]\n" + text)
    out = tmp_path / "out" / "lab.hl7"

    async def marks_after(control: str) -> list[str]:
        acks = await send_in_order(ports["lab"], [adt(control)])
        assert [ack_code(a) for a in acks] == ["AA"]
        await wait_for(lambda: out.exists() and control.encode() in out.read_bytes())
        pids = re.findall(r"PID\|[^\r\n]*", out.read_text())
        return [pid.split("|")[5].split("^")[0] for pid in pids]

    async def scenario() -> None:
        engine = Engine(load_config(config))
        engine.config_path = config
        await engine.start()
        try:
            assert await marks_after("T1") == ["FIRST"]
            (folder / f"{module}.py").write_text(PROBE.format(mark="SECOND-VERSION"))
            plan = await engine.reload_file("test")
            assert (plan.changed, plan.unchanged) == (("lab",), ("steady",))
            assert await marks_after("T2") == ["FIRST", "SECOND-VERSION"]
            (folder / f"{module}.py").write_text("def mark(event, message):\n    return [\n")
            with pytest.raises(Exception, match=f"transform module '{module}' cannot be imported"):
                await engine.reload_file("test")
            assert await marks_after("T3") == ["FIRST", "SECOND-VERSION", "SECOND-VERSION"]
        finally:
            await engine.stop()

    asyncio.run(scenario())

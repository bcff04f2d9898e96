"""First run: sample messages, help with examples, no traceback on a closed pipe, guarded upkeep."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.procs import free_port, start_engine

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = ROOT / "examples" / "messages"


def thumpflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=120,
    )


def test_a_closed_pipe_ends_quietly_without_a_traceback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "thumpflow.cli.main", "config", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10) == b'{\n  "$defs'
    process.stdout.close()
    errors = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert b"Traceback" not in errors and b"BrokenPipe" not in errors


def test_the_sample_messages_go_through_the_example_channel_and_one_is_refused() -> None:
    samples = sorted(MESSAGES.glob("*.hl7"))
    assert len(samples) == 5
    config = str(ROOT / "examples" / "thumpflow.yaml")
    for sample in samples:
        done = thumpflow("try", "--config", config, "hl7-in", str(sample), "--json")
        if sample.name == "adt-missing-message-type.hl7":
            assert done.returncode == 1
            assert "MSH (segment 1), field 9: message type (MSH-9) missing" in done.stdout
        else:
            assert done.returncode == 0, (sample.name, done.stdout, done.stderr)
    critical = thumpflow(
        "try", "--config", config, "hl7-in", str(MESSAGES / "oru-r01-critical-potassium.hl7")
    )
    assert "stat (rule 1)" in critical.stdout


def test_help_shows_examples() -> None:
    for command in (("send",), ("run",), ("check",), ("try",), ("reload",), ("mapping", "test")):
        done = thumpflow(*command, "--help")
        assert done.returncode == 0 and "\nexamples:\n  thumpflow " in done.stdout, command


def test_mapping_test_runs_anywhere_given_its_folder(tmp_path: Path) -> None:
    lost = thumpflow("mapping", "test", cwd=tmp_path)
    assert lost.returncode == 1 and "Traceback" not in lost.stderr
    assert "name the folder holding yours: thumpflow mapping test DIR" in lost.stderr
    found = thumpflow(
        "mapping", "test", str(ROOT / "tests" / "mappings" / "adt_a01_epic_full"), cwd=tmp_path
    )
    assert found.returncode == 0, found.stdout + found.stderr
    assert ", 0 failed" in found.stdout


def test_dlq_show_body_needs_a_reason() -> None:
    done = thumpflow(
        "dlq", "show", "1", "--body", "--config", str(ROOT / "examples" / "thumpflow.yaml")
    )
    assert done.returncode == 1
    assert "--body shows patient data: give --reason WHY (it is audited)" in done.stderr


def test_store_vacuum_refuses_to_run_against_a_live_engine(tmp_path: Path) -> None:
    api, mllp = free_port(), free_port()
    config = tmp_path / "t.yaml"
    config.write_text(
        f"store: {{path: var/t.db}}\napi: {{port: {api}}}\nchannels:\n  - id: a\n"
        f"    source: {{type: mllp, port: {mllp}}}\n"
        "    destinations: [{id: out, type: file, path: out/a.hl7}]\n"
    )
    engine = start_engine(config, api, tmp_path / "engine.log")
    try:
        done = thumpflow("store", "vacuum", "--config", str(config))
        assert done.returncode == 1
        assert f"an engine answers on 127.0.0.1:{api} with this configuration: stop it first" in (
            done.stderr
        )
    finally:
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    done = thumpflow("store", "vacuum", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("vacuumed: ")


def complete(*words: str) -> list[str]:
    script = thumpflow("completion", "bash").stdout
    line = " ".join(["thumpflow", *words])
    probe = (
        f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _thumpflow; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.split()


def test_bash_completion_offers_commands_actions_and_options() -> None:
    assert complete("rel") == ["reload"]
    assert complete("dlq", "") == ["edit", "list", "replay", "show"]
    assert complete("rejects", "rep") == ["replay", "reprocess"]
    assert "--messages" in complete("check", "--m")
    assert complete("dlq", "edit", "--r") == ["--reason"]
    assert complete("dlq", "list", "--re") == ["--reason-contains"]
    assert complete("send", "--t") == ["--timeout", "--tls"]

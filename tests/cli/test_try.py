"""`thumpflow try`: every stage shown, nothing stored or delivered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFIG = """\
channels:
  - id: lab
    source: {type: mllp, port: 0}
    filter: [{path: MSH-9.1, in: [ORU, ADT]}]
    lanes:
      rules:
        - {lane: stat, when: [{path: OBX-8, in: [HH, LL]}]}
    transform: tests.cli.transforms:split_obx
    destinations:
      - {id: everything, type: file, path: %(out)s/a.hl7}
      - {id: adt-only, type: file, path: %(out)s/b.hl7, when: [{path: MSH-9.1, equals: ADT}]}
"""

ORU = (
    b"MSH|^~\\&|LAB|GEN|ENG|GEN|20261121090000||ORU^R01^ORU_R01|L9|P|2.5\r"
    b"PID|1||123456^^^GEN^MR\r"
    b"OBX|1|NM|K^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F\r"
    b"OBX|2|NM|NA^Sodium^LN||140|mmol/L|135-145|N|||F\r"
)
MFN = b"MSH|^~\\&|X|Y|Z|W|2026||MFN^M02|M1|P|2.5\r"


def run_try(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG % {"out": tmp_path / "out"})
    messages = tmp_path / "in.hl7"
    messages.write_bytes(ORU + b"\n" + MFN)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "thumpflow.cli.main",
            "try",
            "--config",
            str(config),
            "lab",
            str(messages),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_try_shows_each_stage_and_delivers_nothing(tmp_path: Path) -> None:
    done = run_try(tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "MSH(12) PID(3) OBX(11) OBX(11)" in out
    assert "lab.result" in out and "Patient/GEN|123456" in out
    assert "stat (rule 1)" in out
    assert "✓ holds  MSH-9.1 in ['ORU', 'ADT']" in out
    assert "filtered out" in out, "the MFN message is shown as filtered"
    assert out.count("OBX|") == 2, "the transform's two outputs are shown"
    assert "everything: receives 2 event(s)" in out
    assert "adt-only: skipped" in out and "✗ fails  MSH-9.1 equals 'ADT'" in out
    assert "\x1b[" not in out, "no colours when not on a terminal"
    assert not (tmp_path / "out").exists()


def test_try_json(tmp_path: Path) -> None:
    done = run_try(tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    oru, mfn = json.loads(done.stdout)
    assert oru["accepted"] and not mfn["accepted"]
    assert oru["event"]["lane"] == "stat"
    assert [route["receives"] for route in oru["routes"]] == [True, False]
    assert len(oru["outputs"]) == 2


def test_try_names_a_missing_channel(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG % {"out": tmp_path})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "thumpflow.cli.main",
            "try",
            "--config",
            str(config),
            "nope",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 1
    assert "no channel 'nope' (channels: lab)" in done.stderr


FHIR_CONFIG = """\
channels:
  - id: adt
    source: {type: mllp, port: 0}
    transform: thumpflow.mapping:to_fhir
    destinations:
      - {id: fhir, type: file, path: %(out)s/a.jsonl, format: jsonl}
"""


def test_try_shows_what_the_conversion_left_out(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(FHIR_CONFIG % {"out": tmp_path / "out"})
    messages = tmp_path / "in.hl7"
    messages.write_bytes(
        b"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|A1|P|2.5.1\r"
        b"PID|1||ZQX77^^^GEN^MR||Zyxwabble^Quorra\r"
    )
    command = [sys.executable, "-m", "thumpflow.cli.main", "try", "--config", str(config)]
    done = subprocess.run(
        [*command, "adt", str(messages)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "converted in part: ADT^A01 (ADT_A01): required segment PV1 is missing" in done.stdout
    done = subprocess.run(
        [*command, "adt", str(messages), "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    [found] = json.loads(done.stdout)
    assert found["conversion_warnings"] == ["ADT^A01 (ADT_A01): required segment PV1 is missing"]

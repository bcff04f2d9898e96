"""Memory soak: the engine's RSS over minutes of hostile and valid input, HTTP and MLLP.

Run with the project's virtualenv (the system interpreter lacks the
dependencies); the engine runs as a child process with the same interpreter:

    .venv/bin/python bench/soak.py [--seconds 300] [--max-requests 200000]

Starts `thumpflow run` on a fresh store in a temporary directory (MLLP, the
API and HTTP ingest on loopback only, one file destination), then sends, from
`--http` HTTP workers and `--mllp` MLLP workers, until `--seconds` have passed
or `--max-requests` were sent:

- valid HL7 v2 ADT (new control ids, 2,000 patients), resends of them, and
  ADT with random sender ids (MSH-3/MSH-4), random or broken character sets
  (MSH-18, NUL bytes) and bytes that are not UTF-8;
- valid FHIR Patients, and FHIR JSON nested 5,000 arrays or 500 extensions
  deep, unknown element names, JSON that does not parse;
- garbage bodies, unknown channels, unknown content types, bodies over the
  size limit, random `Idempotency-Key`s;
- over MLLP: valid frames, garbage between frames, truncated frames, frames
  of 10 MB, a new connection (a new peer port) every few messages.

Every `--sample` seconds it reads the engine's VmRSS and VmHWM from
/proc/<pid>/status and prints a row; at the end, the answers by kind. No
message content is printed. Patient data is synthetic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

START, END = b"\x0b", b"\x1c\r"
HL7 = "x-application/hl7-v2+er7"
FHIR = "application/fhir+json"
CONFIG = """\
version: 1
store: {{path: {tmp}/soak.db}}
api: {{host: 127.0.0.1, port: {api}}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: {mllp}}}
    http_ingest: {{enabled: true}}
    entity_version: MSH-7
    destinations:
      - {{id: archive, type: file, path: {tmp}/out/archive.jsonl, format: jsonl, fsync: false}}
"""


@dataclass
class Tally:
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def adt(rng: random.Random, n: int, *, sender: str = "REG|GEN", charset: str = "") -> bytes:
    """An ADT^A08; `sender` is MSH-3 and MSH-4, `charset` MSH-18."""
    patient = rng.randrange(2000)
    return (
        f"MSH|^~\\&|{sender}|ENG|GEN|2026120{1 + n % 9}0830{n % 60:02d}||ADT^A08^ADT_A01|"
        f"SOAK{n:09d}|P|2.5||||||{charset}\r"
        f"PID|1||MRN{patient:06d}^^^GEN^MR||Doe{patient}^Jane||19800101|F\r"
        f"PV1|1|I|MED^{patient % 40}^A\r"
    ).encode()


def patient(rng: random.Random, n: int) -> bytes:
    return json.dumps(
        {
            "resourceType": "Patient",
            "id": f"soak-{n}",
            "identifier": [{"system": "urn:soak", "value": f"MRN{rng.randrange(2000):06d}"}],
            "name": [{"family": "Doe", "given": ["Jane"]}],
            "birthDate": "1980-01-01",
        }
    ).encode()


def nested_extensions(depth: int) -> bytes:
    """A Patient whose extension nests `depth` extensions (written as text: too deep for
    `json.dumps`)."""
    inner = '{"url": "urn:x", "valueString": "x"}'
    opening = '{"url": "urn:x", "extension": [' * depth
    closing = "]}" * depth
    return f'{{"resourceType": "Patient", "extension": [{opening}{inner}{closing}]}}'.encode()


def word(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(size))


def http_case(
    rng: random.Random, n: int, last: list[bytes]
) -> tuple[str, str, bytes, dict[str, str]]:
    """(kind, path channel, body, extra headers) of one request."""
    pick = rng.randrange(100)
    if pick < 25:
        body = adt(rng, n)
        last[:] = [body]
        return "hl7-valid", "adt", body, {"Content-Type": HL7}
    if pick < 30 and last:
        return "hl7-resend", "adt", last[0], {"Content-Type": HL7}
    if pick < 40:
        sender = f"{word(rng, 12)}|{word(rng, 8)}"
        return "hl7-sender", "adt", adt(rng, n, sender=sender), {"Content-Type": HL7}
    if pick < 47:
        charset = rng.choice([word(rng, 10), "UNICODE UTF-8\x00", "8859/\x00" + word(rng, 4)])
        body = adt(rng, n, charset=charset)
        if rng.random() < 0.5:
            body += b"\xff\xfe bad bytes"
        return "hl7-charset", "adt", body, {"Content-Type": HL7}
    if pick < 57:
        return "fhir-valid", "adt", patient(rng, n), {"Content-Type": FHIR}
    if pick < 62:
        depth = rng.choice([1000, 5000])
        return "fhir-nested", "adt", b"[" * depth + b"]" * depth, {"Content-Type": FHIR}
    if pick < 65:
        return "fhir-extensions", "adt", nested_extensions(500), {"Content-Type": FHIR}
    if pick < 72:
        body = json.dumps({"resourceType": "Patient", word(rng, 16): word(rng, 8)}).encode()
        return "fhir-unknown", "adt", body, {"Content-Type": FHIR}
    if pick < 77:
        return (
            "fhir-broken",
            "adt",
            b'{"resourceType": "Patient", "id": ' + rng.randbytes(64),
            {"Content-Type": FHIR},
        )
    if pick < 84:
        return "garbage", "adt", rng.randbytes(rng.randrange(1, 4096)), {"Content-Type": HL7}
    if pick < 88:
        return "no-channel", word(rng, 10).lower(), adt(rng, n), {"Content-Type": HL7}
    if pick < 91:
        return "content-type", "adt", adt(rng, n), {"Content-Type": f"text/{word(rng, 6)}"}
    if pick < 92:
        return "too-large", "adt", b"MSH|" + b"x" * (1 << 20), {"Content-Type": HL7}
    key = {"Idempotency-Key": word(rng, 40)}
    return "idempotency-key", "adt", adt(rng, n), {"Content-Type": HL7, **key}


def mllp_case(rng: random.Random, n: int) -> tuple[str, bytes]:
    pick = rng.randrange(100)
    if pick < 40:
        return "mllp-valid", START + adt(rng, n) + END
    if pick < 55:
        sender = f"{word(rng, 12)}|{word(rng, 8)}"
        return "mllp-sender", START + adt(rng, n, sender=sender) + END
    if pick < 65:
        body = adt(rng, n, charset=rng.choice([word(rng, 10), "UNICODE UTF-8\x00"]))
        return "mllp-charset", START + body + END
    if pick < 80:
        return "mllp-garbage", rng.randbytes(rng.randrange(1, 512)) + START + adt(rng, n) + END
    if pick < 90:
        return "mllp-truncated", START + adt(rng, n)[:40] + START + adt(rng, n + 1) + END
    if pick < 91:
        return "mllp-10MB", START + adt(rng, n) + b"x" * (10 << 20) + END
    return "mllp-not-hl7", START + rng.randbytes(rng.randrange(1, 2048)) + END


class Soak:
    def __init__(self, api: int, mllp: int, token: str, deadline: float, limit: int) -> None:
        self.api, self.mllp, self.token = api, mllp, token
        self.deadline, self.limit = deadline, limit
        self.tally = Tally()

    def more(self) -> bool:
        return time.monotonic() < self.deadline and self.tally.sent < self.limit

    async def http_worker(self, seed: int) -> None:
        rng, last = random.Random(seed), []
        auth = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while self.more():
                n = self.tally.sent = self.tally.sent + 1
                kind, channel, body, headers = http_case(rng, n * 16 + seed, last)
                url = f"http://127.0.0.1:{self.api}/api/channels/{channel}/messages"
                try:
                    async with session.post(url, data=body, headers={**auth, **headers}) as answer:
                        await answer.read()
                        self.tally.answers[f"{kind} {answer.status}"] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.tally.answers[f"{kind} {type(exc).__name__}"] += 1
                    if os.environ.get("SOAK_DEBUG"):
                        print(kind, repr(exc), flush=True)

    async def mllp_worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while self.more():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.mllp)
            except OSError as exc:
                self.tally.answers[f"mllp-connect {type(exc).__name__}"] += 1
                await asyncio.sleep(0.1)
                continue
            try:
                for _ in range(rng.randrange(1, 20)):
                    if not self.more():
                        break
                    n = self.tally.sent = self.tally.sent + 1
                    kind, frame = mllp_case(rng, n * 16 + seed)
                    writer.write(frame)
                    await writer.drain()
                    try:
                        await asyncio.wait_for(self.answers(reader, kind, frame), 10)
                    except (asyncio.IncompleteReadError, TimeoutError, OSError) as exc:
                        self.tally.answers[f"{kind} {type(exc).__name__}"] += 1
                        break
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def answers(self, reader: asyncio.StreamReader, kind: str, frame: bytes) -> None:
        """Read answers up to the one acknowledging the frame's own control id (garbage and
        truncated frames before it are answered too), or one answer when it has none."""
        control = frame[frame.find(b"|SOAK") + 1 :][:13] if b"|SOAK" in frame else b""
        while True:
            answer = await reader.readuntil(END)
            code = answer.split(b"MSA|", 1)[-1][:2].decode("ascii", "replace")
            if not control or b"|" + control in answer:
                self.tally.answers[f"{kind} {code}"] += 1
                return
            self.tally.answers[f"{kind} (earlier bytes) {code}"] += 1


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def sample(pid: int, every: float, tally: Tally, more: Callable[[], bool]) -> None:
    began = time.monotonic()
    print(f"{'elapsed s':>9} {'sent':>8} {'RSS MB':>8} {'peak MB':>8}", flush=True)
    while True:
        rss, peak = memory(pid)
        print(f"{time.monotonic() - began:9.0f} {tally.sent:8d} {rss:8.1f} {peak:8.1f}", flush=True)
        if not more():
            return
        await asyncio.sleep(every)


def wait_listening(port: int, engine: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine.poll() is not None:
            raise SystemExit(f"the engine exited with {engine.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port}")


async def drive(args: argparse.Namespace, engine: subprocess.Popen[bytes], soak: Soak) -> None:
    workers = [soak.http_worker(seed) for seed in range(args.http)]
    workers += [soak.mllp_worker(100 + seed) for seed in range(args.mllp)]
    sampler = asyncio.ensure_future(sample(engine.pid, args.sample, soak.tally, soak.more))
    await asyncio.gather(*workers)
    await asyncio.sleep(0)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    rss, peak = memory(engine.pid)
    print(f"{'end':>9} {soak.tally.sent:8d} {rss:8.1f} {peak:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--http", type=int, default=4, help="HTTP workers")
    parser.add_argument("--mllp", type=int, default=2, help="MLLP workers")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between RSS samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thumpflow-soak-") as directory:
        tmp = Path(directory)
        api, mllp = free_port(), free_port()
        config = tmp / "soak.yaml"
        config.write_text(CONFIG.format(tmp=tmp, api=api, mllp=mllp))
        command = [sys.executable, "-m", "thumpflow.cli.main", "run", "--config", str(config)]
        with (tmp / "engine.log").open("wb") as log:
            engine = subprocess.Popen(
                [*command, "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        soak: Soak | None = None
        try:
            wait_listening(api, engine)
            wait_listening(mllp, engine)
            token = (tmp / "admin-token").read_text().strip()
            soak = Soak(api, mllp, token, time.monotonic() + args.seconds, args.max_requests)
            print(f"interpreter {sys.executable} ({sys.version.split()[0]}), pid {engine.pid}")
            asyncio.run(drive(args, engine, soak))
        finally:
            engine.send_signal(signal.SIGTERM)
            try:
                engine.wait(60)
            except subprocess.TimeoutExpired:
                engine.kill()
                engine.wait(10)
        print("answers:")
        for kind, count in sorted(soak.tally.answers.items() if soak else ()):
            print(f"  {kind:32} {count:8d}")
        errors = (tmp / "engine.log").read_text(errors="replace").count("Traceback")
        print(f"tracebacks in the engine's log: {errors}")


if __name__ == "__main__":
    main()

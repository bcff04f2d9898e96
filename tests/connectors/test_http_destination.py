"""HTTP destination against the real test receiver: keys, formats, classification, faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp

from tests.connectors.conftest import TlsFiles
from thumpflow.connectors._http import parse_retry_after
from thumpflow.connectors.http.destination import HttpDestination, classify
from thumpflow.connectors.http.spec import HttpDestinationSpec
from thumpflow.core.event import Delivery
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import Permanent, Sent, Transient
from thumpflow.testing.http_receiver import HttpReceiver


def delivery(n: int, body: bytes | None = None) -> Delivery:
    return Delivery(
        delivery_id=n,
        event_id=f"EV{n}",
        destination_id="dw",
        channel_id="adt",
        ordering_key=f"Patient/{n % 3}",
        lane=Lane.URGENT,
        sequence=n,
        created_at=1_700_000_000.0,
        body=body if body is not None else f"MSH|^~\\&|A|B|||||ADT^A01|{n}|P|2.5\r".encode(),
        content_type="x-application/hl7-v2+er7",
        event_type="adt.admit",
    )


def http_spec(url: str, **kw: Any) -> HttpDestinationSpec:
    return HttpDestinationSpec.model_validate({"type": "http", "url": url, **kw})


def with_receiver(
    body: Callable[[HttpReceiver, HttpDestination], Awaitable[None]], **kw: Any
) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        dest = HttpDestination("dw", http_spec(receiver.url, **kw))
        await dest.start()
        try:
            await asyncio.wait_for(body(receiver, dest), 20)
        finally:
            await dest.close()
            await receiver.close()

    asyncio.run(main())


def test_json_envelope_and_headers() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        assert await dest.send([delivery(1)]) == [Sent("HTTP 201")]
        (request,) = receiver.requests
        assert request.idempotency_key == "EV1.dw"
        assert request.event_id == "EV1"
        assert request.ordering_key == "Patient/1"
        assert request.content_type == "application/json"
        envelope = json.loads(request.body)
        assert envelope["delivery_key"] == "EV1.dw"
        assert envelope["event_type"] == "adt.admit"
        assert envelope["lane"] == "urgent"
        assert envelope["body"].startswith("MSH|")

    with_receiver(body, headers={"X-Source": "thumpflow"})


def test_raw_format_posts_the_body_with_its_content_type() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        assert await dest.send([delivery(1, b"\xffbinary")]) == [Sent("HTTP 201")]
        (request,) = receiver.requests
        assert request.body == b"\xffbinary"
        assert request.content_type == "x-application/hl7-v2+er7"

    with_receiver(body, format="raw")


def test_resend_is_applied_once() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        receiver.set_faults(drop_after_apply=1)
        (lost,) = await dest.send([delivery(1)])
        assert isinstance(lost, Transient)
        assert await dest.send([delivery(1)]) == [Sent("HTTP 200")]
        assert list(receiver.applied) == ["EV1.dw"]

    with_receiver(body)


def test_throttling_and_unavailability_are_transient_with_retry_after() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        receiver.set_faults(throttle=1, unavailable=1, retry_after=7)
        (throttled,) = await dest.send([delivery(1)])
        (unavailable,) = await dest.send([delivery(1)])
        assert isinstance(throttled, Transient) and throttled.retry_after == 7.0
        assert throttled.reason.startswith("HTTP 429")
        assert isinstance(unavailable, Transient) and unavailable.retry_after == 7.0
        assert await dest.send([delivery(1)]) == [Sent("HTTP 201")]

    with_receiver(body)


def test_operation_outcome_diagnostics_make_a_permanent_reason() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        receiver.set_faults(reject_marker="|7|")
        (rejected,) = await dest.send([delivery(7)])
        assert isinstance(rejected, Permanent)
        assert rejected.reason.startswith("HTTP 422: error: rejected by the test receiver")
        assert await dest.send([delivery(8)]) == [Sent("HTTP 201")]

    with_receiver(body)


def test_dropped_connection_timeout_and_down_are_transient() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        receiver.set_faults(drop=1)
        (dropped,) = await dest.send([delivery(1)])
        assert isinstance(dropped, Transient)
        receiver.set_faults(delay_seconds=1.0)
        (slow,) = await dest.send([delivery(2)])
        assert slow == Transient("timed out after 0.3 s")
        receiver.set_faults(delay_seconds=0.0)
        await receiver.go_down(0.5)
        fresh = HttpDestination("dw", http_spec(receiver.url))
        await fresh.start()
        (down,) = await fresh.send([delivery(3)])
        await fresh.close()
        assert isinstance(down, Transient) and down.reason.startswith("cannot connect")
        await asyncio.sleep(0.7)
        assert await dest.send([delivery(3)]) == [Sent("HTTP 201")]

    with_receiver(body, timeout_seconds=0.3)


def test_batch_is_sent_concurrently_with_results_in_order() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        receiver.set_faults(delay_seconds=0.2, reject_marker="|3|")
        started = time.monotonic()
        results = await dest.send([delivery(n) for n in range(1, 9)])
        assert time.monotonic() - started < 1.0
        assert [type(r) for r in results] == [Sent, Sent, Permanent, Sent, Sent, Sent, Sent, Sent]
        assert len(receiver.applied) == 7

    with_receiver(body, max_batch=8)


def test_classification_of_statuses() -> None:
    assert classify(204, {}, b"") == Sent("HTTP 204")
    assert isinstance(classify(409, {}, b"conflict"), Sent)
    for status in (408, 429, 500, 502, 503, 504):
        assert isinstance(classify(status, {}, b""), Transient), status
    for status in (301, 400, 401, 403, 404, 413, 422):
        assert isinstance(classify(status, {}, b""), Permanent), status
    long = classify(400, {}, b"x" * 1000)
    assert isinstance(long, Permanent) and len(long.reason) < 320


def test_retry_after_seconds_and_http_date() -> None:
    now = time.time()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None
    in_a_minute = formatdate(now + 60, usegmt=True)
    assert 58 <= (parse_retry_after(in_a_minute, now=now) or 0) <= 61
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert classify(503, {"Retry-After": in_a_minute}, b"").retry_after is not None  # type: ignore[union-attr]


def test_admin_endpoint_sets_faults() -> None:
    async def body(receiver: HttpReceiver, dest: HttpDestination) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{receiver.admin_url}/faults", json={"unavailable": 2}) as r:
                assert r.status == 200
            async with session.post(f"{receiver.admin_url}/faults", json={"bogus": 1}) as r:
                assert r.status == 400
        assert isinstance((await dest.send([delivery(1)]))[0], Transient)
        assert isinstance((await dest.send([delivery(1)]))[0], Transient)
        assert await dest.send([delivery(1)]) == [Sent("HTTP 201")]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{receiver.admin_url}/state") as r:
                assert (await r.json())["applied_keys"] == ["EV1.dw"]
            async with session.post(
                f"{receiver.admin_url}/faults", json={"down_seconds": 0.3}
            ) as r:
                assert r.status == 200
        await asyncio.sleep(0.15)
        assert not receiver.is_listening
        await asyncio.sleep(0.4)
        assert receiver.is_listening

    with_receiver(body)


def test_mutual_tls(tls_files: TlsFiles) -> None:
    async def main() -> None:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(str(tls_files.server_cert), str(tls_files.server_key))
        server_ctx.load_verify_locations(cafile=str(tls_files.ca))
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        receiver = HttpReceiver(ssl_context=server_ctx)
        await receiver.start()
        tls = {
            "ca_file": str(tls_files.ca),
            "cert_file": str(tls_files.client_cert),
            "key_file": str(tls_files.client_key),
        }
        good = HttpDestination("dw", http_spec(receiver.url, tls=tls))
        anonymous = HttpDestination("dw", http_spec(receiver.url, tls={"ca_file": tls["ca_file"]}))
        for dest in (good, anonymous):
            await dest.start()
        assert await good.send([delivery(1)]) == [Sent("HTTP 201")]
        (refused,) = await anonymous.send([delivery(2)])
        for dest in (good, anonymous):
            await dest.close()
        await receiver.close()
        assert isinstance(refused, Transient)
        assert list(receiver.applied) == ["EV1.dw"]

    asyncio.run(main())


def test_receiver_as_a_process_logs_applied_deliveries_durably(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "applied.jsonl"
    root = Path(__file__).resolve().parents[2]
    command = [
        sys.executable,
        "-m",
        "thumpflow.testing.http_receiver",
        "--port",
        str(port),
        "--log",
        str(log),
    ]

    async def send(numbers: list[int]) -> list[Any]:
        dest = HttpDestination("dw", http_spec(f"http://127.0.0.1:{port}/deliveries"))
        await dest.start()
        try:
            return [(await dest.send([delivery(n)]))[0] for n in numbers]
        finally:
            await dest.close()

    for numbers, expected in (([1, 2], "HTTP 201"), ([2], "HTTP 200")):
        proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening on http://127.0.0.1:")
        results = asyncio.run(send(numbers))
        assert results[-1] == Sent(expected)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    keys = [json.loads(line)["idempotency_key"] for line in log.read_text().splitlines()]
    assert keys == ["EV1.dw", "EV2.dw"]

"""MLLP source: ACK after receive, order per connection, framing errors, limits, TLS."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.connectors.conftest import RecordingIngress, TlsFiles, hl7
from thumpflow.connectors.mllp.client import send_messages
from thumpflow.connectors.mllp.framing import MllpDecoder, frame
from thumpflow.connectors.mllp.source import MllpSource
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.connectors.tls import ServerTls
from thumpflow.hl7v2 import parse_ack


def source_spec(**kw: Any) -> MllpSourceSpec:
    return MllpSourceSpec.model_validate({"type": "mllp", "host": "127.0.0.1", "port": 0, **kw})


def run_with_source(
    body: Callable[[MllpSource, RecordingIngress], Awaitable[None]],
    ingress: RecordingIngress | None = None,
    **kw: Any,
) -> None:
    async def main() -> None:
        ing = ingress if ingress is not None else RecordingIngress()
        source = MllpSource("adt", source_spec(**kw), ing)
        await source.start()
        try:
            await asyncio.wait_for(body(source, ing), 20)
        finally:
            await source.close()

    asyncio.run(main())


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    decoder = MllpDecoder(1 << 20)
    frames: list[bytes] = []
    while len(frames) < count:
        data = await reader.read(65536)
        if not data:
            break
        for item in decoder.feed(data):
            assert isinstance(item, bytes)
            frames.append(item)
    return frames


def test_each_message_is_acknowledged_after_receive() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        acks = await send_messages("127.0.0.1", source.port, [hl7(1), hl7(2), hl7(3)])
        assert [parse_ack(a).control_id for a in acks] == ["MSG00001", "MSG00002", "MSG00003"]
        assert all(parse_ack(a).code == "AA" for a in acks)
        assert [raw for raw, _, _ in ingress.calls] == [hl7(1), hl7(2), hl7(3)]
        assert ingress.calls[0][1].startswith("127.0.0.1:")

    run_with_source(body)


def test_pipelined_frames_are_processed_in_order_one_at_a_time() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        writer.write(b"".join(frame(hl7(n)) for n in range(40)))
        acks = await read_frames(reader, 40)
        writer.close()
        assert [parse_ack(a).control_id for a in acks] == [f"MSG{n:05d}" for n in range(40)]
        assert ingress.max_in_flight == 1

    run_with_source(body, RecordingIngress(delay=0.001))


def test_connections_are_served_concurrently() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                send_messages("127.0.0.1", source.port, [hl7(c * 10 + n) for n in range(3)])
                for c in range(8)
            )
        )
        assert sum(len(r) for r in results) == 24
        assert ingress.max_in_flight > 1
        assert time.monotonic() - started < 1.5

    run_with_source(body, RecordingIngress(delay=0.05))


def test_framing_errors_reach_the_ingress_with_the_bytes() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        writer.write(
            b"junk!" + frame(hl7(1)) + b"\x0bcut short" + frame(b"x" * 500) + frame(hl7(2))
        )
        responses = await read_frames(reader, 5)
        writer.close()
        assert [parse_ack(r).code for r in responses] == ["AR", "AA", "AR", "AR", "AA"]
        errors = [(raw, err) for raw, _, err in ingress.calls if err is not None]
        assert errors[0][0] == b"junk!" and "outside a frame" in (errors[0][1] or "")
        assert errors[1][0] == b"cut short" and "truncated" in (errors[1][1] or "")
        assert errors[2][0] == b"x" * 256 and "oversized" in (errors[2][1] or "")

    run_with_source(body, max_message_bytes=256)


def test_frame_cut_by_disconnect_is_kept_as_truncated() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", source.port)
        writer.write(frame(hl7(1)) + b"\x0bMSH|half")
        await writer.drain()
        writer.close()
        for _ in range(100):
            if len(ingress.calls) == 2:
                break
            await asyncio.sleep(0.02)
        assert ingress.calls[0][0] == hl7(1)
        assert ingress.calls[1][0] == b"MSH|half"
        assert "truncated" in (ingress.calls[1][2] or "")

    run_with_source(body)


def test_idle_connection_is_closed() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        writer.write(frame(hl7(1)))
        assert len(await read_frames(reader, 1)) == 1
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(100), 3) == b""
        assert 0.2 <= time.monotonic() - started < 2
        writer.close()

    run_with_source(body, idle_timeout_seconds=0.3)


def test_closed_ingress_stops_reading_until_it_opens() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        ingress.close_gate()
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        writer.write(frame(hl7(1)) + frame(hl7(2)))
        await asyncio.sleep(0.2)
        assert ingress.calls == []
        ingress.open_gate()
        acks = await read_frames(reader, 2)
        assert [parse_ack(a).control_id for a in acks] == ["MSG00001", "MSG00002"]
        writer.close()

    run_with_source(body)


def test_slow_ingress_bounds_the_frames_read_ahead() -> None:
    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", source.port)
        payload = b"".join(frame(hl7(n, "X" * 10_000)) for n in range(2500))
        writer.write(payload)
        await asyncio.sleep(0.3)
        buffered = writer.transport.get_write_buffer_size()
        assert buffered > len(payload) // 2, "the source kept reading while the ingress was slow"
        writer.transport.abort()

    run_with_source(body, RecordingIngress(delay=0.05))


def test_close_finishes_in_flight_message_and_answers_it() -> None:
    async def main() -> None:
        ingress = RecordingIngress(delay=0.3)
        source = MllpSource("adt", source_spec(), ingress)
        await source.start()
        port = source.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frame(hl7(1)))
        await asyncio.sleep(0.1)
        await source.close()
        acks = await read_frames(reader, 2)
        assert [parse_ack(a).control_id for a in acks] == ["MSG00001"]
        assert len(ingress.calls) == 1
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(main())


def client_ctx(tls: TlsFiles, cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    if cert:
        ctx.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    return ctx


def test_tls_with_client_certificates(tls_files: TlsFiles) -> None:
    server_tls = ServerTls(
        cert_file=str(tls_files.server_cert),
        key_file=str(tls_files.server_key),
        ca_file=str(tls_files.ca),
        require_client_cert=True,
    )

    async def body(source: MllpSource, ingress: RecordingIngress) -> None:
        acks = await send_messages(
            "127.0.0.1", source.port, [hl7(1)], ssl_context=client_ctx(tls_files)
        )
        assert parse_ack(acks[0]).code == "AA"
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            await send_messages(
                "127.0.0.1", source.port, [hl7(2)], ssl_context=client_ctx(tls_files, cert=False)
            )
        assert [raw for raw, _, _ in ingress.calls] == [hl7(1)]

    run_with_source(body, tls=server_tls.model_dump())

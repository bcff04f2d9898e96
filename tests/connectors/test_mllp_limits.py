"""MLLP source connection limits over real loopback sockets: idle connections
make room for new senders, trickling frames are closed after their grace, one
peer cannot take every slot, and each closure and refusal is counted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.connectors.conftest import RecordingIngress, hl7
from tests.connectors.test_mllp_source import read_frames, source_spec
from tests.e2e.harness import eventually
from thumpflow.connectors.mllp.framing import frame
from thumpflow.connectors.mllp.metrics import MllpMetrics
from thumpflow.connectors.mllp.source import MllpSource
from thumpflow.core.metrics import Registry
from thumpflow.hl7v2 import parse_ack
from thumpflow.testing.batch import FakeClock

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class HoldingIngress(RecordingIngress):
    """Holds every message carrying `HOLD` until `release` is set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(
        self, raw: bytes, peer: str, framing_error: str | None = None
    ) -> bytes | None:
        if b"HOLD" in raw:
            self.in_flight += 1
            try:
                await self.release.wait()
            finally:
                self.in_flight -= 1
        return await super().receive(raw, peer, framing_error)


@dataclass
class Listener:
    source: MllpSource
    ingress: RecordingIngress
    clock: FakeClock
    registry: Registry
    streams: list[Stream] = field(default_factory=list)

    async def connect(self, address: str = "127.0.0.1") -> Stream:
        """A client connection from `address` (a loopback address), once the source took it."""
        before = self.source.connection_count + self.source.refused + self.source.evicted
        stream = await asyncio.open_connection(
            "127.0.0.1", self.source.port, local_addr=(address, 0)
        )
        self.streams.append(stream)
        await eventually(
            lambda: (
                self.source.connection_count + self.source.refused + self.source.evicted > before
            ),
            5,
            "connection taken or refused",
        )
        return stream

    def metric(self, line: str) -> bool:
        return line in self.registry.render().splitlines()

    def closed(self, reason: str) -> bool:
        """Whether exactly one connection was closed for `reason`."""
        return self.metric(
            f'thumpflow_mllp_connections_closed_total{{channel="adt",reason="{reason}"}} 1'
        )


async def listener(ingress: RecordingIngress | None = None, **spec: Any) -> Listener:
    clock, registry = FakeClock(), Registry()
    ing = ingress if ingress is not None else RecordingIngress()
    source = MllpSource(
        "adt",
        source_spec(**spec),
        ing,
        clock=clock,
        metrics=MllpMetrics(registry).listener("adt"),
    )
    await source.start()
    return Listener(source, ing, clock, registry)


def run(body: Any, ingress: RecordingIngress | None = None, **spec: Any) -> None:
    async def main() -> None:
        found = await listener(ingress, **spec)
        try:
            await asyncio.wait_for(body(found), 30)
        finally:
            for _, writer in found.streams:
                writer.transport.abort()
            await found.source.close()

    asyncio.run(main())


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the source sends until it closes (or resets) the connection."""
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            received += chunk
    except ConnectionResetError:
        pass
    return received


async def exchange(stream: Stream, message: bytes) -> str:
    reader, writer = stream
    writer.write(frame(message))
    acks = await asyncio.wait_for(read_frames(reader, 1), 5)
    return parse_ack(acks[0]).code


def test_idle_connections_in_every_slot_make_room_for_a_new_sender() -> None:
    async def body(at: Listener) -> None:
        first = await at.connect("127.0.0.2")
        await at.clock.advance(5)
        for n in range(1, 64):
            await at.connect(f"127.0.0.{2 + n // 16}")
        assert at.source.connection_count == 64

        assert await exchange(await at.connect(), hl7(1)) == "AA"
        assert await until_closed(first[0]) == b"", "the connection idle longest is closed"
        assert at.source.connection_count == 64
        assert (at.source.evicted, at.source.refused) == (1, 0)
        assert at.source.limit_reached == "max_connections"
        assert at.closed("evicted")
        assert at.metric('thumpflow_mllp_connections{channel="adt"} 64')

    run(body)


def test_a_new_connection_is_refused_only_when_no_connection_can_be_closed() -> None:
    ingress = HoldingIngress()

    async def body(at: Listener) -> None:
        held = [await at.connect() for _ in range(2)]
        for n, (_, writer) in enumerate(held):
            writer.write(frame(hl7(n, "HOLD")))
        await eventually(lambda: ingress.in_flight == 2, 5, "both messages in progress")

        reader, writer = await at.connect()
        writer.write(frame(hl7(9)))
        assert await until_closed(reader) == b"", "refused: no ACK"
        assert (at.source.refused, at.source.evicted) == (1, 0)
        assert at.metric('thumpflow_mllp_connections_refused_total{channel="adt",reason="limit"} 1')

        ingress.release.set()
        for held_reader, _ in held:
            assert parse_ack((await read_frames(held_reader, 1))[0]).code == "AA"
        assert await exchange(await at.connect(), hl7(10)) == "AA"
        assert at.source.evicted == 1

    run(body, ingress, max_connections=2)


def test_a_trickling_frame_is_closed_after_its_grace_and_kept_as_truncated() -> None:
    async def body(at: Listener) -> None:
        start = at.clock.monotonic()
        trickler = await at.connect()
        fast = await at.connect()
        message = hl7(2, "X" * 20_000)
        fast[1].write(b"\x0b" + message[:20_000])
        trickler[1].write(b"\x0bMSH|^~\\&|")
        for _ in range(9):
            trickler[1].write(b"X")
            await trickler[1].drain()
            await at.clock.advance(1)
        assert at.source.connection_count == 2, "closed within the grace"
        closed_at = None
        for _ in range(20):
            trickler[1].write(b"Y")
            await trickler[1].drain()
            await at.clock.advance(1)
            if at.source.connection_count == 1:
                closed_at = at.clock.monotonic()
                break
        assert closed_at is not None and 10 <= closed_at - start <= 13

        answer = await until_closed(trickler[0])
        assert parse_ack(answer.strip(b"\x0b\x1c\r")).code == "AR"
        raw, _, error = at.ingress.calls[0]
        assert raw.startswith(b"MSH|^~\\&|XXXXXXXXX") and "truncated" in (error or "")
        assert at.closed("slow")

        fast[1].write(message[20_000:] + b"\x1c\r")
        assert parse_ack((await read_frames(fast[0], 1))[0]).code == "AA"

    run(body, frame_grace_seconds=10, min_frame_bytes_per_second=1024)


def test_idle_connection_is_closed_on_the_injected_clock() -> None:
    async def body(at: Listener) -> None:
        reader, _ = await at.connect()
        await at.clock.advance(59)
        assert at.source.connection_count == 1
        await at.clock.advance(2)
        assert at.source.connection_count == 0
        assert await until_closed(reader) == b""
        assert at.closed("idle")

    run(body, idle_timeout_seconds=60)


def test_one_peer_cannot_take_every_slot() -> None:
    ingress = HoldingIngress()

    async def body(at: Listener) -> None:
        held = [await at.connect("127.0.0.2") for _ in range(2)]
        for n, (_, writer) in enumerate(held):
            writer.write(frame(hl7(n, "HOLD")))
        await eventually(lambda: ingress.in_flight == 2, 5, "both messages in progress")
        reader, writer = await at.connect("127.0.0.2")
        writer.write(frame(hl7(3)))
        assert await until_closed(reader) == b"", "third connection of 127.0.0.2 refused"
        assert at.metric(
            'thumpflow_mllp_connections_refused_total{channel="adt",reason="peer_limit"} 1'
        )
        assert at.source.limit_reached == "max_connections_per_peer"

        oldest = await at.connect("127.0.0.3")
        await at.clock.advance(1)
        newer = await at.connect("127.0.0.3")
        assert await exchange(await at.connect("127.0.0.3"), hl7(4)) == "AA"
        assert await until_closed(oldest[0]) == b"", "127.0.0.3's idle-longest made room"
        assert at.source.connection_count == 4
        assert (at.source.refused, at.source.evicted) == (1, 1)
        assert await exchange(newer, hl7(5)) == "AA"

        ingress.release.set()
        for held_reader, _ in held:
            assert parse_ack((await read_frames(held_reader, 1))[0]).code == "AA"

    run(body, ingress, max_connections=8, max_connections_per_peer=2)

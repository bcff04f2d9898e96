"""MLLP destination: ACK codes classified, timeouts and drops transient, reconnects, TLS."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.connectors.conftest import RecordingIngress, TlsFiles, hl7
from thumpflow.connectors.mllp.destination import MllpDestination
from thumpflow.connectors.mllp.source import MllpSource
from thumpflow.connectors.mllp.spec import MllpDestinationSpec, MllpSourceSpec
from thumpflow.core.event import Delivery
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import Permanent, Sent, Transient
from thumpflow.testing.mllp_peer import Delay, Drop, MllpPeer, Reply


def delivery(n: int, body: bytes | None = None) -> Delivery:
    return Delivery(
        delivery_id=n,
        event_id=f"EV{n}",
        destination_id="lab",
        channel_id="adt",
        ordering_key=f"Patient/{n}",
        lane=Lane.ROUTINE,
        sequence=None,
        created_at=time.time(),
        body=body if body is not None else hl7(n),
        content_type="x-application/hl7-v2+er7",
        event_type="adt.admit",
    )


def dest_spec(port: int, **kw: Any) -> MllpDestinationSpec:
    return MllpDestinationSpec.model_validate(
        {"type": "mllp", "host": "127.0.0.1", "port": port, **kw}
    )


def with_peer(body: Callable[[MllpPeer, MllpDestination], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        peer = MllpPeer()
        await peer.start()
        dest = MllpDestination("lab", dest_spec(peer.port, **kw))
        await dest.start()
        try:
            await asyncio.wait_for(body(peer, dest), 20)
        finally:
            await dest.close()
            await peer.close()

    asyncio.run(main())


def test_aa_is_sent_over_one_persistent_connection() -> None:
    async def body(peer: MllpPeer, dest: MllpDestination) -> None:
        for n in range(1, 4):
            assert await dest.send([delivery(n)]) == [Sent("AA")]
        assert peer.received == [hl7(1), hl7(2), hl7(3)]
        assert peer.connections == 1
        assert dest.max_batch == 1

    with_peer(body)


def test_ack_codes_are_classified() -> None:
    async def body(peer: MllpPeer, dest: MllpDestination) -> None:
        peer.on_message(1, Reply("AE", text="PID-3 missing"))
        peer.on_message(2, Reply("AR", text="busy"))
        peer.on_message(3, Reply("CE"))
        peer.on_message(4, Reply("CR"))
        peer.on_message(5, Reply("CA"))
        results = [(await dest.send([delivery(n)]))[0] for n in range(1, 6)]
        assert results[0] == Permanent("AE: PID-3 missing")
        assert results[1] == Transient("AR: busy")
        assert isinstance(results[2], Permanent) and results[2].reason.startswith("CE")
        assert isinstance(results[3], Transient) and results[3].reason.startswith("CR")
        assert results[4] == Sent("CA")

    with_peer(body)


def test_ack_timeout_is_transient_and_the_connection_is_replaced() -> None:
    async def body(peer: MllpPeer, dest: MllpDestination) -> None:
        peer.on_message(1, Delay(1.0))
        (result,) = await dest.send([delivery(1)])
        assert isinstance(result, Transient) and "no ACK within 0.3 s" in result.reason
        assert await dest.send([delivery(2)]) == [Sent("AA")]
        assert peer.connections == 2

    with_peer(body, ack_timeout_seconds=0.3)


def test_dropped_connection_is_transient_then_reconnects() -> None:
    async def body(peer: MllpPeer, dest: MllpDestination) -> None:
        peer.on_message(2, Drop())
        assert await dest.send([delivery(1)]) == [Sent("AA")]
        (result,) = await dest.send([delivery(2)])
        assert isinstance(result, Transient) and "closed the connection" in result.reason
        assert await dest.send([delivery(2)]) == [Sent("AA")]
        assert peer.connections == 2

    with_peer(body)


def test_ack_for_another_message_is_transient() -> None:
    async def body(peer: MllpPeer, dest: MllpDestination) -> None:
        peer.on_message(1, Reply("AA", control_id="SOMETHING-ELSE"))
        (result,) = await dest.send([delivery(1)])
        assert isinstance(result, Transient) and "MSA-2" in result.reason
        assert await dest.send([delivery(1)]) == [Sent("AA")]
        assert peer.connections == 2

    with_peer(body)


def test_body_that_is_not_hl7_is_permanent() -> None:
    async def body(peer: MllpPeer, dest: MllpDestination) -> None:
        (result,) = await dest.send([delivery(1, b'{"resourceType": "Patient"}')])
        assert isinstance(result, Permanent)
        assert peer.received == []

    with_peer(body)


def test_refused_connection_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        dest = MllpDestination("lab", dest_spec(port, connect_timeout_seconds=2))
        await dest.start()
        (result,) = await dest.send([delivery(1)])
        await dest.close()
        assert isinstance(result, Transient) and result.reason.startswith("cannot connect")

    asyncio.run(main())


def test_peer_closing_an_idle_connection_costs_no_failure() -> None:
    async def main() -> None:
        ingress = RecordingIngress()
        source = MllpSource(
            "adt",
            MllpSourceSpec(type="mllp", host="127.0.0.1", port=0, idle_timeout_seconds=0.2),
            ingress,
        )
        await source.start()
        dest = MllpDestination("lab", dest_spec(source.port))
        await dest.start()
        assert await dest.send([delivery(1)]) == [Sent("AA")]
        await asyncio.sleep(0.5)
        assert await dest.send([delivery(2)]) == [Sent("AA")]
        await dest.close()
        await source.close()
        assert len(ingress.calls) == 2

    asyncio.run(main())


def test_mutual_tls_end_to_end(tls_files: TlsFiles) -> None:
    async def main() -> None:
        ingress = RecordingIngress()
        source_tls = {
            "cert_file": str(tls_files.server_cert),
            "key_file": str(tls_files.server_key),
            "ca_file": str(tls_files.ca),
            "require_client_cert": True,
        }
        source = MllpSource(
            "adt",
            MllpSourceSpec(type="mllp", host="127.0.0.1", port=0, tls=source_tls),  # type: ignore[arg-type]
            ingress,
        )
        await source.start()
        good = MllpDestination(
            "lab",
            dest_spec(
                source.port,
                tls={
                    "ca_file": str(tls_files.ca),
                    "cert_file": str(tls_files.client_cert),
                    "key_file": str(tls_files.client_key),
                },
            ),
        )
        untrusted = MllpDestination(
            "lab",
            dest_spec(
                source.port,
                tls={
                    "ca_file": str(tls_files.ca),
                    "cert_file": str(tls_files.other_cert),
                    "key_file": str(tls_files.other_key),
                },
            ),
        )
        for dest in (good, untrusted):
            await dest.start()
        assert await good.send([delivery(1)]) == [Sent("AA")]
        (refused,) = await untrusted.send([delivery(2)])
        assert isinstance(refused, Transient)
        for dest in (good, untrusted):
            await dest.close()
        await source.close()
        assert [raw for raw, _, _ in ingress.calls] == [hl7(1)]

    asyncio.run(main())


def test_source_and_destination_under_uvloop() -> None:
    import uvloop

    async def main() -> None:
        ingress = RecordingIngress()
        source = MllpSource("adt", MllpSourceSpec(type="mllp", host="127.0.0.1", port=0), ingress)
        await source.start()
        dest = MllpDestination("lab", dest_spec(source.port))
        await dest.start()
        results = [(await dest.send([delivery(n)]))[0] for n in range(1, 21)]
        await dest.close()
        await source.close()
        assert results == [Sent("AA")] * 20
        assert [raw for raw, _, _ in ingress.calls] == [hl7(n) for n in range(1, 21)]

    uvloop.run(main())

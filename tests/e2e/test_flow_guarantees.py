"""Flow guarantees with a real engine, store, MLLP source and HTTP receiver, in one process.

Duplicates, destination faults (429 + Retry-After, 503, slow, dropped
connections, down for a while), validation errors and replay, urgent lanes
under a rate limit, stale entity versions, and backpressure.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.e2e.harness import eventually, outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.core.event import DeadLetterFilter
from thumpflow.hl7v2 import Message
from thumpflow.testing.http_receiver import HttpReceiver


def adt(
    control: str, mrn: str, trigger: str = "A08", version: int | None = None, note: str = ""
) -> bytes:
    seq = "" if version is None else str(version)
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^{trigger}^ADT_A01|{control}|P|2.5|{seq}\r"
        f"EVN|{trigger}|20261121083000\r"
        f"PID|1||{mrn}^^^GEN^MR||Doe^Jane{note}||19800101|F\r"
        "PV1|1|I|ICU^12^A\r"
    ).encode()


def http_destination(url: str, extra: str = "") -> str:
    return (
        f"      - id: ehr\n        type: http\n        url: {url}\n        format: raw\n"
        f"        concurrency: 4\n        timeout_seconds: 2\n"
        f"        retry: {{base: 20ms, cap: 200ms, max_attempts: 200}}\n"
        f"        circuit_breaker: {{failure_threshold: 5, cooldown: 300ms}}\n{extra}"
    )


def controls(receiver: HttpReceiver) -> list[str]:
    return [Message.parse(body).control_id for body in receiver.applied.values()]


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_resend_of_same_control_id_is_acked_again_and_applied_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        async with running_engine(tmp_path, http_destination(receiver.url)) as (engine, port):
            message = adt("DUP1", "MRN1")
            first = await send_in_order(port, [message, message])
            second = await send_in_order(port, [message])
            assert [ack_code(a) for a in first + second] == ["AA", "AA", "AA"]
            await outbox_drained(engine, "ehr")
            stats = (await engine.stats())[0]
            assert (stats.received, stats.duplicates) == (1, 2)
        assert controls(receiver) == ["DUP1"]
        await receiver.close()

    run(scenario())


def test_faulty_destination_loses_nothing_applies_nothing_twice_keeps_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(
            throttle=6,
            retry_after=0.2,
            unavailable=6,
            drop=4,
            drop_after_apply=4,
            delay_seconds=0.01,
        )
        async with running_engine(tmp_path, http_destination(receiver.url)) as (engine, port):
            sent: dict[str, list[str]] = defaultdict(list)
            batches: list[list[bytes]] = [[] for _ in range(4)]
            for n in range(240):
                mrn = f"MRN{n % 24}"
                batches[(n % 24) % 4].append(adt(f"F{n}", mrn))
                sent[f"GEN|{mrn}"].append(f"F{n}")

            async def down_for_a_while() -> None:
                await asyncio.sleep(0.3)
                await receiver.go_down(1.0)

            results = await asyncio.gather(
                *(send_in_order(port, batch) for batch in batches), down_for_a_while()
            )
            assert sum(len(acks) for acks in results[:4]) == 240
            await outbox_drained(engine, "ehr", 60)
            stats = (await engine.stats())[0].outboxes[0]
            assert (stats.delivered, stats.dead, stats.pending) == (240, 0, 0)
        applied = controls(receiver)
        assert sorted(applied) == sorted(c for cs in sent.values() for c in cs)
        assert max(Counter(applied).values()) == 1
        statuses = Counter(r.status for r in receiver.requests)
        assert statuses[429] == 6 and statuses[503] == 6 and statuses[0] == 4
        assert statuses[200] >= 4, "responses lost after applying were resent and recognised"
        for key, expected in sent.items():
            order = [
                Message.parse(receiver.applied[k]).control_id
                for k in receiver.applied_order(f"Patient/{key}")
            ]
            assert order == expected
        await receiver.close()

    run(scenario())


def test_validation_error_dead_letters_with_reason_then_replay_delivers(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker="REJECTME")
        async with running_engine(tmp_path, http_destination(receiver.url)) as (engine, port):
            acks = await send_in_order(
                port, [adt("V1", "MRN1"), adt("V2", "MRN2", note="REJECTME"), adt("V3", "MRN1")]
            )
            assert [ack_code(a) for a in acks] == ["AA", "AA", "AA"]
            await outbox_drained(engine, "ehr")
            (dead,) = await engine.dead_letters(DeadLetterFilter())
            assert dead.attempts == 1
            assert "422" in dead.reason and "reject marker" in dead.reason
            assert sorted(controls(receiver)) == ["V1", "V3"]
            receiver.set_faults(reject_marker=None)
            replayed = await engine.replay(
                DeadLetterFilter(destination_id="ehr"), "alice", "receiver fixed"
            )
            assert [d.delivery_id for d in replayed.replayed] == [dead.delivery_id]
            await outbox_drained(engine, "ehr")
            assert await engine.dead_letters(DeadLetterFilter()) == []
            trail = await engine.store.audit(f"delivery:{dead.delivery_id}")
            actions = [entry.action for entry in reversed(trail)]
            assert actions == ["dead_lettered", "replayed", "delivered"]
            assert trail[1].actor == "alice" and "receiver fixed" in trail[1].detail
        assert sorted(controls(receiver)) == ["V1", "V2", "V3"]
        await receiver.close()

    run(scenario())


def test_stat_lane_moves_past_a_bulk_backlog_under_a_rate_limit(tmp_path: Path) -> None:
    extra = (
        "    lanes:\n      default: routine\n      rules:\n"
        "        - {lane: stat, when: [{path: MSH-9.2, equals: A01}]}\n"
        "        - {lane: bulk, when: [{path: MSH-9.2, equals: A31}]}\n"
    )
    limit = "        rate_limit: {per_second: 100, burst: 1}\n"

    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        async with running_engine(tmp_path, http_destination(receiver.url, limit), extra) as (
            engine,
            port,
        ):
            bulk = [adt(f"B{n}", f"BULK{n}", "A31") for n in range(300)]
            assert len(await send_in_order(port, bulk)) == 300
            await asyncio.sleep(0.3)
            stat = [adt(f"S{n}", f"STAT{n}", "A01") for n in range(10)]
            started = time.monotonic()
            assert len(await send_in_order(port, stat)) == 10
            await eventually(
                lambda: sum(c.startswith("S") for c in controls(receiver)) == 10,
                10,
                "stat delivered",
            )
            stat_latency = time.monotonic() - started
            bulk_done = sum(c.startswith("B") for c in controls(receiver))
            assert bulk_done < 200, "stat went ahead of most of the bulk backlog"
            assert stat_latency < 1.5
            await outbox_drained(engine, "ehr", 30)
        await receiver.close()

    run(scenario())


def test_stale_entity_version_is_superseded_not_sent(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        async with running_engine(
            tmp_path, http_destination(receiver.url), "    entity_version: MSH-13\n"
        ) as (engine, port):
            acks = await send_in_order(
                port,
                [
                    adt("E2", "MRN1", version=2),
                    adt("E1", "MRN1", version=1),
                    adt("E3", "MRN1", version=3),
                ],
            )
            assert [ack_code(a) for a in acks] == ["AA"] * 3
            await outbox_drained(engine, "ehr")
            stats = (await engine.stats())[0].outboxes[0]
            assert (stats.delivered, stats.superseded) == (2, 1)
        assert controls(receiver) == ["E2", "E3"]
        await receiver.close()

    run(scenario())


def test_backpressure_stops_reading_until_the_outbox_drains(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(unavailable=10**6, retry_after=0.05)
        destination = http_destination(receiver.url, "        high_water: 20\n")
        async with running_engine(tmp_path, destination) as (engine, port):
            first = await send_in_order(port, [adt(f"P{n}", f"MRN{n}") for n in range(20)])
            assert len(first) == 20
            assert not engine.channels["flow"].ingress.is_open()
            blocked = asyncio.ensure_future(send_in_order(port, [adt("LATE", "MRN99")], timeout=30))
            await asyncio.sleep(0.7)
            assert not blocked.done(), "no ACK while the outbox is past its high-water mark"
            receiver.set_faults(unavailable=0)
            late = await asyncio.wait_for(blocked, 20)
            assert [ack_code(a) for a in late] == ["AA"]
            await outbox_drained(engine, "ehr")
        assert len(receiver.applied) == 21
        await receiver.close()

    run(scenario())


def test_circuit_breaker_stops_hammering_a_failing_destination(tmp_path: Path) -> None:
    def destination(url: str) -> str:
        return (
            f"      - id: ehr\n        type: http\n        url: {url}\n        format: raw\n"
            "        retry: {base: 10ms, cap: 20ms, max_attempts: 1000}\n"
            "        circuit_breaker: {failure_threshold: 3, cooldown: 400ms}\n"
        )

    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(unavailable=10**6, retry_after=0)
        async with running_engine(tmp_path, destination(receiver.url)) as (engine, port):
            acks = await send_in_order(port, [adt(f"C{n}", f"MRN{n}") for n in range(20)])
            assert len(acks) == 20
            await asyncio.sleep(1.3)
            attempts = len(receiver.requests)
            assert 3 <= attempts <= 3 + 5, f"{attempts} requests while the breaker was open"
            assert engine.outboxes["ehr"].breaker.state.value in {"open", "half_open"}
            receiver.set_faults(unavailable=0)
            await outbox_drained(engine, "ehr")
            assert engine.outboxes["ehr"].breaker.state.value == "closed"
        assert len(receiver.applied) == 20
        await receiver.close()

    run(scenario())


def test_backlog_beyond_memory_capacity_waits_on_disk_and_keeps_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        await receiver.go_down(2.0)
        limits = "        memory_capacity: 10\n"
        async with running_engine(tmp_path, http_destination(receiver.url, limits)) as (
            engine,
            port,
        ):
            outbox = engine.outboxes["ehr"]
            sent = [adt(f"M{n}", f"MRN{n % 7}") for n in range(150)]
            assert len(await send_in_order(port, sent)) == 150
            assert outbox.pending == 150
            assert outbox.in_memory <= 10
            await outbox_drained(engine, "ehr", 60)
            assert outbox.pending == 0
        resent = [r for r in receiver.requests if r.status == 200]
        assert resent == [], "a delivery paged back from disk is sent once, not once per worker"
        for mrn in range(7):
            order = [
                Message.parse(receiver.applied[key]).control_id
                for key in receiver.applied_order(f"Patient/GEN|MRN{mrn}")
            ]
            assert order == [f"M{n}" for n in range(150) if n % 7 == mrn]
        await receiver.close()

    run(scenario())

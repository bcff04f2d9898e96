"""Every input over MLLP is answered and kept: hostile character sets, arbitrary bytes, reused ids.

Guarantee 9 (nothing silently dropped) and guarantee 2 (a reused control id
is a new event, never a duplicate), through a real engine and store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import running_engine
from tests.e2e.test_bad_input import END, START, exchange
from thumpflow.alerts import CountTrend, conditions
from thumpflow.alerts.conditions import AlertSettings
from thumpflow.core.alerts import AlertKind
from thumpflow.hl7v2 import parse_ack
from thumpflow.runtime.engine import Engine

DESTINATION = "      - {id: out, type: file, path: %s}\n"


def adt(control: str, mrn: str, *, charset: bytes = b"", sent: bytes = b"20261121083000") -> bytes:
    return (
        b"MSH|^~\\&|REG|GEN|ENG|GEN|" + sent + b"||ADT^A08^ADT_A01|" + control.encode()
        + b"|P|2.5||||||" + charset + b"\r"
        + b"PID|1||" + mrn.encode() + b"^^^GEN^MR||Doe^Jane||19800101|F\r"
    )  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(adt("NUL1", "MRN1", charset=b"\x00UTF-8"), id="utf8-body"),
        pytest.param(adt("NUL2", "MRN\xe92".encode("latin-1").decode("latin-1"), charset=b"UN\x00")
                     .replace(b"MRN\xc3\xa92", b"MRN\xe92"), id="non-utf8-body"),
    ],
)  # fmt: skip
def test_a_nul_in_msh18_is_acknowledged_and_a_resend_too(tmp_path: Path, body: bytes) -> None:
    async def scenario() -> None:
        async with running_engine(tmp_path, DESTINATION % (tmp_path / "out.hl7")) as (engine, port):
            (first,) = await exchange(port, START + body + END, 1)
            (again,) = await exchange(port, START + body + END, 1)
            assert parse_ack(first).code == "AA"
            assert parse_ack(again).code == "AA", "the resend is a duplicate, answered the same"
            stats = (await engine.stats())[0]
            assert (stats.received, stats.duplicates, stats.rejected) == (1, 1, 0)

    asyncio.run(scenario())


def test_a_reused_control_id_with_other_content_is_a_new_flagged_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_engine(tmp_path, DESTINATION % (tmp_path / "out.hl7")) as (engine, port):
            first, other = adt("C1", "MRN1"), adt("C1", "MRN2")
            resent = adt("C1", "MRN1", sent=b"20261121090000")
            answers = [
                (await exchange(port, START + raw + END, 1))[0]
                for raw in (first, other, resent, other)
            ]
            assert [parse_ack(a).code for a in answers] == ["AA"] * 4
            stats = (await engine.stats())[0]
            assert (stats.received, stats.duplicates) == (2, 2)
            reused = [e for e in await engine.store.audit(None) if e.action == "control_id_reused"]
            assert len(reused) == 1
            event = await engine.store.event(reused[0].subject)
            assert event is not None and event.body == other
            assert "MRN2" not in reused[0].detail
            metric = engine.metrics.flow.control_ids_reused.labels("flow").value
            assert metric == 1
            reading = await engine._alert_reading()
            holding = conditions(reading, AlertSettings(), CountTrend(300))
            assert [c.kind for c in holding] == [AlertKind.CONTROL_ID_REUSED]
            timeline = await engine.store.timeline(event.event_id)
            assert timeline is not None
            assert "control_id_reused" in [entry.action for entry in timeline.audit]

    asyncio.run(scenario())


def _valid() -> st.SearchStrategy[bytes]:
    field = st.binary(max_size=12).map(lambda b: b.replace(b"|", b"").replace(b"\r", b""))
    return st.builds(
        lambda control, charset, mrn, tail: (
            b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|" + control + b"|P|2.5||||||" + charset + b"\r"
            + b"PID|1||" + mrn + b"\r" + tail
        ),
        field.filter(lambda b: b.strip() != b""),
        field,
        field,
        st.binary(max_size=40),
    )  # fmt: skip


@pytest.fixture(scope="module")
def engine_loop(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Engine, asyncio.AbstractEventLoop]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    loop = asyncio.new_event_loop()
    context = running_engine(tmp, DESTINATION % (tmp / "out.hl7"))
    engine, _ = loop.run_until_complete(context.__aenter__())
    yield engine, loop
    loop.run_until_complete(context.__aexit__(None, None, None))
    loop.close()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(min_size=1, max_size=200), _valid()))
def test_any_bytes_are_answered_or_kept_and_every_nak_has_its_reject(
    engine_loop: tuple[Engine, asyncio.AbstractEventLoop], raw: bytes
) -> None:
    engine, loop = engine_loop
    ingress = engine.channels["flow"].ingress

    async def counts() -> tuple[int, int, int]:
        found = [s for s in await engine.stats() if s.channel_id == "flow"]
        return (found[0].received, found[0].duplicates, found[0].rejected) if found else (0, 0, 0)

    async def once() -> None:
        before = await counts()
        answer = await ingress.receive(raw, "fuzz")
        kept = tuple(now - then for now, then in zip(await counts(), before, strict=True))
        if raw.lstrip(b"\r\n\t \x0b")[:3] in (b"FHS", b"BHS"):
            assert answer is not None, "a batch is answered with a batch of ACKs"
            return
        assert sum(kept) == 1, "each input is admitted, recognised or kept as a reject"
        if answer is None:
            assert kept[2] == 0, "a reject is always answered"
            return
        info = parse_ack(answer)
        if info.code in ("AE", "CR", "AR", "CE"):
            assert kept[2] == 1
            ((_, reject),) = await engine.store.rejects("flow", 1)
            assert reject.raw == raw
        else:
            assert kept[2] == 0

    loop.run_until_complete(once())

"""A channel's ledger projection keys and hashes a message exactly as its partner job keys and
hashes the same fact read from a CSV (proved against a real `JobRunner` run), and costs nothing
on a channel without a ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from thumpflow.config import parse_config
from thumpflow.core.batch import RunTrigger
from thumpflow.core.errors import ConfigError
from thumpflow.flow.pipeline import ChannelPipeline
from thumpflow.hl7v2 import Message
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.batch import FakeClock, MemoryDestination, MemorySource
from thumpflow.thump.runner import Connectors, JobRunner

CONFIG = """\
channels:
  - id: adt
    source: {type: mllp, port: 0}
    destinations:
      - {id: census-feed, type: file, path: census.ndjson}
    ledger:
      business_key: [facility, visit]
      record:
        facility: MSH-4
        visit: PV1-19.1
        mrn: PID-3[1].1
        family: PID-5.1
        birth_date: PID-7
        admitted_at: PV1-44
        weight: OBX-5
        visits: PV1-50
        vip: PV1-16
        unit: PV1-3.1
        bed: PV1-3.3
jobs:
  - id: census
    schedule: {interval: 1h}
    reconciles: adt
    source: {type: file_drop, directory: drop, pattern: '*.csv', format: csv}
    schema:
      - {name: facility, type: string}
      - {name: visit, type: string}
      - {name: mrn, type: string}
      - {name: family, type: string}
      - {name: birth_date, type: date}
      - {name: admitted_at, type: datetime}
      - {name: weight, type: decimal}
      - {name: visits, type: integer}
      - {name: vip, type: boolean}
      - {name: unit, type: code, allowed: [ICU, MED]}
    business_key: [facility, visit]
    destinations:
      - {id: census-feed, type: batch_file, directory: out, name: 'census-{run}.ndjson',
         format: ndjson, source_system: THUMPFLOW}
"""

PV1 = {1: "1", 2: "I", 3: "ICU^12^A", 16: "Y", 19: "V100", 44: "20261120083000-0500", 50: "3"}
ADT = (
    "MSH|^~\\&|REG|GENHOSP|ENGINE|GENHOSP|20261121083000||ADT^A01^ADT_A01|C1|P|2.5\r"
    "PID|1||123456^^^GENHOSP^MR||O'Neil \\T\\ Sons^Jane||19800101\r"
    + "|".join(["PV1", *(PV1.get(n, "") for n in range(1, 51))])
    + "\rOBX|1|NM|WT^Weight||72.50|kg\r"
)
# The same fact as the registration system's census CSV gives it.
CSV_ROW = {
    "facility": "GENHOSP",
    "visit": "V100",
    "mrn": "123456",
    "family": "O'Neil & Sons",
    "birth_date": "1980-01-01",
    "admitted_at": "2026-11-20T08:30:00-05:00",
    "weight": "72.50",
    "visits": "3",
    "vip": "yes",
    "unit": "ICU",
    "bed": "A",
}


def runner_item(tmp_path: Path, row: dict[str, str]) -> tuple[str, str]:
    """(business key, content hash) of `row` as a real run of the partner job computes them."""
    config = parse_config(CONFIG)
    (job,) = config.jobs
    destination = MemoryDestination("census-feed")

    async def main() -> None:
        store = SqliteStore(tmp_path / "runs.db")
        await store.open()
        try:
            runner = JobRunner(
                job,
                store,
                FakeClock(0.0),
                lambda _: Connectors(MemorySource("census", [row]), [destination]),
            )
            outcome = await runner.run(RunTrigger.MANUAL)
            assert outcome is not None and outcome.counts.written == 1, outcome
        finally:
            await store.close()

    asyncio.run(main())
    ((key, (digest, _)),) = destination.store.items()
    return key, digest


def pipeline(text: str = CONFIG) -> ChannelPipeline:
    config = parse_config(text)
    channel = config.channels[0]
    return ChannelPipeline(channel, None, config.partner(channel.id))


def test_a_delivery_carries_the_key_and_hash_the_partner_job_computes(tmp_path: Path) -> None:
    result = pipeline().run(Message.parse(ADT), ADT.encode(), received_at=1000.0)
    (delivery,) = result.deliveries
    assert (delivery.business_key, delivery.content_hash) == runner_item(tmp_path, CSV_ROW)
    assert delivery.business_key == "GENHOSP|V100"


def test_changed_content_changes_the_hash_not_the_key() -> None:
    changed = ADT.replace("|72.50|", "|73.00|")
    run = pipeline().run
    (same,) = run(Message.parse(ADT), ADT.encode(), 1.0).deliveries
    (other,) = run(Message.parse(changed), changed.encode(), 1.0).deliveries
    assert other.business_key == same.business_key
    assert other.content_hash != same.content_hash


@pytest.mark.parametrize(
    ("hl7", "csv"),
    [
        ("20261120083000", "2026-11-20T08:30:00"),
        ("202611200830", "2026-11-20 08:30"),
        ("20261120083000.25+0100", "2026-11-20T08:30:00.25+01:00"),
    ],
)
def test_hl7_date_times_hash_like_their_iso_spelling(tmp_path: Path, hl7: str, csv: str) -> None:
    message = ADT.replace("20261120083000-0500", hl7)
    (delivery,) = pipeline().run(Message.parse(message), message.encode(), 1.0).deliveries
    assert delivery.content_hash == runner_item(tmp_path, {**CSV_ROW, "admitted_at": csv})[1]


@pytest.mark.parametrize(
    "broken",
    [
        ADT.replace("|V100|", "||"),  # empty key field
        ADT.replace("|19800101", "|1980013X"),  # not a date
        ADT.replace("|72.50|", "|heavy|"),  # not a decimal
    ],
)
def test_a_message_that_does_not_fit_is_left_out_of_the_ledger(broken: str) -> None:
    (delivery,) = pipeline().run(Message.parse(broken), broken.encode(), 1.0).deliveries
    assert (delivery.business_key, delivery.content_hash) == (None, None)


def test_a_channel_without_a_ledger_carries_nothing() -> None:
    text = CONFIG.split("    ledger:", maxsplit=1)[0] + "jobs: []\n"
    (delivery,) = pipeline(text).run(Message.parse(ADT), ADT.encode(), 1.0).deliveries
    assert (delivery.business_key, delivery.content_hash) == (None, None)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("business_key: [facility, visit]", "business_key: [ward]"), "not a field of `record`"),
        (("visit: PV1-19.1", "visit: PV1-"), "not an HL7 v2 path"),
        (("business_key: [facility, visit]", "business_key: [visit, facility]"), "same order"),
        (("        unit: PV1-3.1\n", ""), "lacks field\\(s\\) unit"),
        (
            (
                "    business_key: [facility, visit]\n    destinations",
                "    unknown_fields: drop\n    business_key: [facility, visit]\n    destinations",
            ),
            "does not keep",
        ),
    ],
)
def test_a_ledger_that_cannot_match_its_partner_job_is_refused(
    edit: tuple[str, str], problem: str
) -> None:
    text = CONFIG.replace(*edit, 1)
    assert text != CONFIG
    with pytest.raises(ConfigError, match=problem):
        parse_config(text)

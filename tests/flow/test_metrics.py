"""The Prometheus registry writes text format 0.0.4 that parses back to what was counted.

The parser here is deliberately independent of the writer: it follows the
format's grammar (comments, `name{label="value",...} value`, escapes).
"""

from __future__ import annotations

import math
import threading
import time

import pytest

from thumpflow.core.batch import RunCounts, RunRecord, RunStatus, RunTrigger, Window
from thumpflow.core.lanes import Lane
from thumpflow.core.metrics import Registry, format_value
from thumpflow.flow.limits import BreakerState
from thumpflow.flow.metrics import FlowMetrics
from thumpflow.runtime.metrics import JobMetrics

Sample = tuple[str, dict[str, str], float]

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _parse_labels(text: str, at: int) -> tuple[dict[str, str], int]:
    """Labels from just after `{`; returns them and the index just after `}`."""
    labels: dict[str, str] = {}
    while text[at] != "}":
        equals = text.index("=", at)
        name = text[at:equals]
        assert text[equals + 1] == '"', text
        at = equals + 2
        value = []
        while text[at] != '"':
            if text[at] == "\\":
                value.append(_ESCAPES[text[at + 1]])
                at += 2
            else:
                value.append(text[at])
                at += 1
        assert name not in labels, f"label {name} repeated"
        labels[name] = "".join(value)
        at += 1
        if text[at] == ",":
            at += 1
    return labels, at + 1


def parse(text: str) -> tuple[dict[str, str], dict[str, str], list[Sample]]:
    """(TYPE by family, HELP by family, samples) of an exposition, checking its grammar."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    samples: list[Sample] = []
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            helps[name] = doc.replace("\\n", "\n").replace("\\\\", "\\")
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name not in types, f"TYPE of {name} twice"
            types[name] = kind
            continue
        assert line and not line.startswith("#"), line
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and brace < space:
            name = line[:brace]
            labels, after = _parse_labels(line, brace + 1)
            rest = line[after:]
        else:
            name, labels, rest = line[:space], {}, line[space:]
        assert rest.startswith(" ") and len(rest.split()) == 1, line
        value = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(rest.strip())
        samples.append((name, labels, float(rest) if value is None else value))
    return types, helps, samples


def family_of(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and types.get(base) == "histogram":
            return base
    return name


def test_counters_and_gauges_parse_back_with_escaped_labels_and_help() -> None:
    registry = Registry()
    counter = registry.counter("demo_total", 'Help with \\ and "quotes"\nand a line.', ("who",))
    gauge = registry.gauge("demo_level", "A level.")
    tricky = 'a"b\\c\nd'
    counter.labels(tricky).inc()
    counter.labels(tricky).inc(2.5)
    counter.labels("plain").inc()
    gauge.labels().set(-4)
    types, helps, samples = parse(registry.render())
    assert types == {"demo_total": "counter", "demo_level": "gauge"}
    assert helps["demo_total"] == 'Help with \\ and "quotes"\nand a line.'
    assert ("demo_total", {"who": tricky}, 3.5) in samples
    assert ("demo_total", {"who": "plain"}, 1.0) in samples
    assert ("demo_level", {}, -4.0) in samples
    for name, _, _ in samples:
        assert family_of(name, types) in types, "every sample follows its TYPE line"


def test_histogram_buckets_are_cumulative_and_end_at_inf_equal_to_count() -> None:
    registry = Registry()
    histogram = registry.histogram("op_seconds", "Durations.", ("dest",), buckets=(0.1, 1, 5))
    child = histogram.labels("x")
    for value in (0.05, 0.1, 0.5, 2, 7, 100):
        child.observe(value)
    types, _, samples = parse(registry.render())
    assert types == {"op_seconds": "histogram"}
    buckets = [(labels["le"], value) for name, labels, value in samples if name.endswith("_bucket")]
    assert buckets == [("0.1", 2), ("1", 3), ("5", 4), ("+Inf", 6)]
    assert all(labels["dest"] == "x" for name, labels, _ in samples)
    (total,) = [value for name, _, value in samples if name == "op_seconds_sum"]
    (count,) = [value for name, _, value in samples if name == "op_seconds_count"]
    assert total == pytest.approx(109.65) and count == 6
    assert "le" not in next(labels for name, labels, _ in samples if name == "op_seconds_count")


def test_values_are_written_as_the_format_spells_them() -> None:
    assert [format_value(v) for v in (3.0, 0.25, math.inf, -math.inf, 1e20)] == [
        "3",
        "0.25",
        "+Inf",
        "-Inf",
        "1e+20",
    ]
    assert format_value(math.nan) == "NaN"


def test_invalid_names_labels_and_updates_are_refused() -> None:
    registry = Registry()
    with pytest.raises(ValueError, match="name"):
        registry.counter("bad-name", "x")
    with pytest.raises(ValueError, match="label"):
        registry.counter("ok_total", "x", ("__reserved",))
    with pytest.raises(ValueError, match="reserved"):
        registry.histogram("h", "x", ("le",))
    registry.counter("once_total", "x")
    with pytest.raises(ValueError, match="registered already"):
        registry.gauge("once_total", "x")
    counter = registry.counter("two_total", "x", ("a", "b"))
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("only-one")
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("1", "2").inc(-1)


def test_updates_from_another_thread_are_not_lost_and_a_scrape_stays_consistent() -> None:
    registry = Registry()
    counter = registry.counter("hits_total", "x").labels()
    histogram = registry.histogram("lat_seconds", "x", buckets=(0.5,)).labels()

    def hammer() -> None:
        for _ in range(20_000):
            counter.inc()
            histogram.observe(0.1)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        _, _, samples = parse(registry.render())
        values = {(name, labels.get("le")): value for name, labels, value in samples}
        assert values[("lat_seconds_bucket", "+Inf")] == values[("lat_seconds_count", None)]
    for thread in threads:
        thread.join()
    assert counter.value == 80_000 and histogram.count == 80_000


def test_an_update_costs_a_few_hundred_nanoseconds() -> None:
    registry = Registry()
    counter = registry.counter("fast_total", "x", ("channel",)).labels("c")
    histogram = registry.histogram("fast_seconds", "x", ("destination",)).labels("d")
    rounds = 200_000
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            counter.inc()
            histogram.observe(0.02)
        best = min(best, (time.perf_counter() - started) / rounds)
    assert best < 2e-6, f"an increment plus an observation took {best * 1e9:.0f} ns"


def test_flow_families_bind_channel_destination_and_lane_labels_only() -> None:
    registry = Registry()
    flow = FlowMetrics(registry)
    ingress = flow.ingress("adt")
    ingress.received.inc()
    ingress.rejected["structure"].inc()
    outbox = flow.outbox("adt", "ehr")
    outbox.lag.observe(0.2)
    outbox.sample(
        pending=3,
        lane_depths={Lane.STAT: 1, Lane.ROUTINE: 2},
        circuit=BreakerState.HALF_OPEN,
        blocking=False,
        oldest_pending_age=4.5,
    )
    types, helps, samples = parse(registry.render())
    assert set(types) == set(helps)
    assert all(name.startswith("thumpflow_") for name in types)
    assert ("thumpflow_received_total", {"channel": "adt"}, 1) in samples
    assert (
        "thumpflow_rejected_total",
        {"channel": "adt", "reason": "structure"},
        1,
    ) in samples
    ids = {"channel": "adt", "destination": "ehr"}
    assert ("thumpflow_circuit_state", ids, 1) in samples
    assert ("thumpflow_pending", ids, 3) in samples
    assert ("thumpflow_oldest_pending_age_seconds", ids, 4.5) in samples
    assert ("thumpflow_in_memory", {**ids, "lane": "stat"}, 1) in samples
    allowed = {"channel", "destination", "lane", "reason", "kind", "le"}
    assert all(set(labels) <= allowed for _, labels, _ in samples)


def test_job_figures_come_from_the_newest_runs() -> None:
    def run(run_id: int, status: RunStatus, started: float, finished: float | None) -> RunRecord:
        return RunRecord(
            run_id=run_id,
            job_id="nightly",
            trigger=RunTrigger.SCHEDULE,
            window=Window(),
            status=status,
            scheduled_for=started,
            started_at=started,
            finished_at=finished,
            counts=RunCounts(read=10, valid=9, rejected=1, written=9),
        )

    registry = Registry()
    jobs = JobMetrics(registry)
    jobs.sample(
        "nightly",
        [
            run(4, RunStatus.RUNNING, 400.0, None),
            run(3, RunStatus.FAILED, 300.0, 312.5),
            run(2, RunStatus.PARTIAL, 200.0, 230.0),
            run(1, RunStatus.SUCCEEDED, 100.0, 110.0),
        ],
    )
    jobs.sample("idle", [])
    _, _, samples = parse(registry.render())
    job = {"job": "nightly"}
    assert ("thumpflow_job_running", job, 1) in samples
    assert ("thumpflow_job_running", {"job": "idle"}, 0) in samples
    assert ("thumpflow_job_last_run_status", {**job, "status": "failed"}, 1) in samples
    assert ("thumpflow_job_last_run_status", {**job, "status": "succeeded"}, 0) in samples
    assert ("thumpflow_job_last_run_finished_timestamp_seconds", job, 312.5) in samples
    assert ("thumpflow_job_last_run_duration_seconds", job, 12.5) in samples
    assert ("thumpflow_job_last_run_records", {**job, "count": "rejected"}, 1) in samples
    assert ("thumpflow_job_last_success_timestamp_seconds", job, 230) in samples
    assert not [s for s in samples if s[1].get("job") == "idle" and s[0] != "thumpflow_job_running"]

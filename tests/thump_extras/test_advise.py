"""`thumpflow advise`: deterministic rules, table-tested; the command line around them."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from thumpflow.cli import advise as cli
from thumpflow.thump.advise import (
    Answers,
    advise,
    answers_from_mapping,
    batch_interval,
    duration_text,
)

BASE: dict[str, Any] = {
    "latency": "10s",
    "peak_per_second": 20,
    "average_per_day": 50_000,
    "receiver_coupled": "yes",
    "recovery": "per_record",
    "audit": "basic",
    "source_feed": "events",
}

# (changes to BASE, rhythm, interval, a phrase in the reasons or None, warns)
TABLE: list[tuple[dict[str, Any], str, str | None, str | None, bool]] = [
    ({}, "flow", None, "Only event-driven flow", False),
    ({"source_feed": "polling"}, "flow", None, None, True),
    ({"source_feed": "files", "latency": "5m"}, "flow", None, None, True),
    ({"audit": "completeness"}, "hybrid", "1d", "Completeness must be proven", False),
    ({"receiver_coupled": "no"}, "hybrid", "1d", "outbox holds deliveries", False),
    ({"recovery": "reload"}, "hybrid", "1d", "reloading a window", False),
    ({"peak_per_second": 900}, "flow", None, None, True),
    ({"latency": "1d", "source_feed": "polling"}, "thump", "12h", "only polling", False),
    ({"latency": "4h", "receiver_coupled": "no"}, "thump", "2h", "decouples them", False),
    ({"latency": "1h", "recovery": "reload"}, "thump", "30m", "re-runnable by window", False),
    ({"latency": "2h", "peak_per_second": 5000}, "thump", "1h", "one bulk load", False),
    ({"latency": "45m", "source_feed": "files"}, "thump", "15m", "batches already", False),
    ({"latency": "3d", "source_feed": "files", "audit": "per_record"}, "thump", "1d", None, False),
    ({"latency": "1d", "source_feed": "cdc"}, "flow", None, "change data (CDC)", False),
    ({"latency": "1d", "audit": "completeness"}, "hybrid", "1d", "fresher data", False),
    ({"latency": "29m", "source_feed": "polling"}, "flow", None, None, True),
    ({"latency": "30m", "source_feed": "polling"}, "thump", "15m", None, False),
]


@pytest.mark.parametrize(("changes", "rhythm", "interval", "phrase", "warns"), TABLE)
def test_rules(
    changes: dict[str, Any], rhythm: str, interval: str | None, phrase: str | None, warns: bool
) -> None:
    advice = advise(answers_from_mapping({**BASE, **changes}))
    assert advice.rhythm == rhythm
    assert (None if advice.interval is None else duration_text(advice.interval)) == interval
    if phrase is not None:
        assert any(phrase in reason for reason in advice.reasons), advice.reasons
    assert bool(advice.warnings) == warns
    assert advice == advise(answers_from_mapping({**BASE, **changes}))


def test_polling_is_warned_against_as_a_compromise() -> None:
    advice = advise(answers_from_mapping({**BASE, "source_feed": "polling", "latency": "2m"}))
    (warning,) = advice.warnings
    assert "compromise" in warning and "change data capture" in warning
    assert "Warnings:" in advice.render()


def test_batch_interval_is_at_most_half_the_tolerance() -> None:
    assert [duration_text(batch_interval(s)) for s in (1800, 3599, 7200, 86_400, 10**6)] == [
        "15m",
        "15m",
        "1h",
        "12h",
        "1d",
    ]


def test_answers_are_validated() -> None:
    for changes, said in [
        ({"latency": "soon"}, "latency"),
        ({"latency": 0}, "latency: must be positive"),
        ({"peak_per_second": -1}, "peak_per_second"),
        ({"receiver_coupled": "maybe"}, "receiver_coupled"),
        ({"audit": "none"}, "audit: one of"),
        ({"colour": "blue"}, "unknown answer(s): colour"),
        ({"recovery": None}, "missing answer(s): recovery"),
    ]:
        with pytest.raises(ValueError, match=re.escape(said)):
            answers_from_mapping({**BASE, **changes})
    answers = answers_from_mapping({**BASE, "receiver_coupled": False, "recovery": "Per-Record"})
    assert answers == Answers(10.0, 20.0, 50_000.0, False, "per_record", "basic", "events")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def test_cli_from_yaml_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(
        "latency: 1d\npeak_per_second: 10\naverage_per_day: 2000\nreceiver_coupled: false\n"
        "recovery: reload\naudit: completeness\nsource_feed: polling\n"
    )
    assert _run(["--file", str(answers), "--no-input"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Recommendation: thump (a scheduled batch every 12h)")
    assert _run(["-f", str(answers), "--latency", "10s", "--json", "--no-input"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"] == "hybrid" and data["interval"] == "1d"


def test_cli_reports_missing_and_bad_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--latency", "1h", "--no-input"]) == 2
    err = capsys.readouterr().err
    assert "missing answers: --peak-per-second, --average-per-day" in err
    flags = [
        "--latency", "later", "--peak-per-second", "1", "--average-per-day", "1",
        "--receiver-coupled", "yes", "--recovery", "reload", "--audit", "basic",
        "--source-feed", "cdc", "--no-input",
    ]  # fmt: skip
    assert _run(flags) == 2
    assert "latency: not a duration" in capsys.readouterr().err

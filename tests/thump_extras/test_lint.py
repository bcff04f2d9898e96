"""Lint rules for integration anti-patterns, over real configuration models."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from thumpflow.config.lint import Finding, lint
from thumpflow.config.model import Config

MLLP_SOURCE = {"type": "mllp", "port": 2575}


def config(*channels: dict[str, Any]) -> Config:
    return Config.model_validate({"channels": list(channels)})


def with_jobs(cfg: Config, *jobs: Any) -> Config:
    """The configuration with `jobs`, as `Config.jobs` will carry them."""
    return cast(Config, SimpleNamespace(channels=cfg.channels, jobs=list(jobs)))


def channel(id_: str, *destinations: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"id": id_, "source": MLLP_SOURCE, "destinations": list(destinations), **kw}


def job(id_: str, **kw: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "id": id_,
        "schedule": SimpleNamespace(cron="0 2 * * *", interval=None),
        "source": SimpleNamespace(type="sql"),
        "destinations": [SimpleNamespace(id="out", type="batch_file")],
        "expect_records": True,
        "reconciles": None,
    }
    fields.update(kw)
    return SimpleNamespace(**fields)


FHIR = {"id": "ehr", "type": "fhir", "base_url": "https://ehr.example.org/fhir"}
MLLP = {"id": "lab", "type": "mllp", "host": "lab", "port": 2575}
FILE = {"id": "archive", "type": "file", "path": "var/out/adt.hl7"}


def rules(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.rule, f.location) for f in findings]


def test_a_clean_configuration_has_no_findings() -> None:
    cfg = with_jobs(config(channel("adt", FHIR, FILE)), job("nightly", reconciles="adt"))
    assert lint(cfg) == []
    assert lint(config(channel("files-only", FILE))) == []


def test_flow_to_a_critical_system_without_a_reconciling_job() -> None:
    cfg = config(channel("adt", FHIR, FILE), channel("off", FHIR, enabled=False))
    (finding,) = lint(cfg)
    assert finding.rule == "unreconciled-flow"
    assert finding.location == "channel 'adt' > destination 'ehr'"
    assert finding.severity == "warning"
    assert "reconciles: adt" in finding.suggestion
    reconciling = job("nightly", reconciles=SimpleNamespace(channel="adt"))
    assert lint(with_jobs(cfg, reconciling)) == []


def test_destinations_that_cannot_deduplicate() -> None:
    raw = {"id": "raw", "type": "http", "url": "https://x.example.org", "format": "raw"}
    json_http = {"id": "json", "type": "http", "url": "https://x.example.org"}
    cfg = with_jobs(
        config(channel("results", MLLP, raw, json_http)), job("r", reconciles="results")
    )
    assert rules(lint(cfg)) == [
        ("no-dedup", "channel 'results' > destination 'lab'"),
        ("no-dedup", "channel 'results' > destination 'raw'"),
    ]
    findings = lint(cfg)
    assert "MSH-10" in findings[0].message and "Idempotency-Key" in findings[1].message
    assert "receiver_deduplicates: true" in findings[0].suggestion
    marked = job(
        "j", destinations=[SimpleNamespace(id="m", type="mllp", receiver_deduplicates=True)]
    )
    assert lint(with_jobs(config(channel("x", FILE)), marked)) == []


def test_short_polls_by_interval_and_by_cron() -> None:
    cases = [
        (SimpleNamespace(interval=60.0, cron=None), True),
        (SimpleNamespace(interval=900.0, cron=None), False),
        (SimpleNamespace(interval=None, cron="*/5 * * * *"), True),
        (SimpleNamespace(interval=None, cron="*/15 * * * *"), False),
        (SimpleNamespace(interval=None, cron="0,10,20,30,40,50 * * * *"), True),
        (SimpleNamespace(interval=None, cron="0 * * * *"), False),
        (SimpleNamespace(interval=None, cron="0 */2 * * *"), False),
        (SimpleNamespace(interval=None, cron="* 2 * * *"), True),
        ("*/2 * * * *", True),
        (SimpleNamespace(interval=None, cron="@hourly"), False),
    ]
    base = config(channel("x", FILE))
    for schedule, short in cases:
        found = rules(lint(with_jobs(base, job("poll", schedule=schedule))))
        assert found == ([("short-poll", "job 'poll' > source")] if short else []), schedule
    drop = job(
        "drop", schedule=SimpleNamespace(interval=60.0), source=SimpleNamespace(type="file_drop")
    )
    assert lint(with_jobs(base, drop)) == []
    (finding,) = lint(with_jobs(base, job("p", schedule=SimpleNamespace(interval=120.0))))
    assert "polls every 120 s" in finding.message and "change data capture" in finding.suggestion


def test_jobs_without_manifests_or_zero_record_alert() -> None:
    quiet = job(
        "extract",
        source=SimpleNamespace(type="sftp_drop", manifest="none"),
        destinations=[
            SimpleNamespace(id="drop", type="sftp", manifest=False),
            SimpleNamespace(id="db", type="sql_upsert"),
        ],
        expect_records=False,
    )
    base = config(channel("x", FILE))
    assert rules(lint(with_jobs(base, quiet))) == [
        ("no-manifest", "job 'extract' > source"),
        ("no-zero-record-alert", "job 'extract'"),
        ("no-manifest", "job 'extract' > destination 'drop'"),
    ]
    lenient = job("lenient", source=SimpleNamespace(type="file_drop", manifest="optional"))
    (finding,) = lint(with_jobs(base, lenient))
    assert (finding.rule, finding.severity) == ("no-manifest", "info")
    assert "when none is present" in finding.message
    assert lint(with_jobs(base, job("off", enabled=False, expect_records=False))) == []


def test_real_job_models_are_linted() -> None:
    cfg = Config.model_validate(
        {
            "channels": [channel("adt", FHIR)],
            "jobs": [
                {
                    "id": "census",
                    "schedule": {"interval": "5m"},
                    "expect_records": False,
                    "source": {
                        "type": "sql",
                        "dialect": "sqlite",
                        "database": "var/ehr.db",
                        "query": "SELECT mrn FROM patients",
                    },
                    "schema": [{"name": "mrn", "type": "string", "required": True}],
                    "business_key": ["mrn"],
                    "destinations": [
                        {
                            "id": "out",
                            "type": "batch_file",
                            "directory": "var/out",
                            "name": "census-{run}.ndjson",
                            "format": "ndjson",
                            "source_system": "ehr",
                        }
                    ],
                }
            ],
        }
    )
    assert rules(lint(cfg)) == [
        ("unreconciled-flow", "channel 'adt' > destination 'ehr'"),
        ("short-poll", "job 'census' > source"),
        ("no-zero-record-alert", "job 'census'"),
    ]


def test_findings_print_as_one_line() -> None:
    (finding,) = lint(config(channel("adt", FHIR)))
    text = str(finding)
    assert text.startswith("warning: channel 'adt' > destination 'ehr': a flow to a critical")
    assert "\n" not in text

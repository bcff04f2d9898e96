"""What a `kind: census_reconcile` job may and must say (`config.jobs.Job` asks). Pure."""

from __future__ import annotations

from collections.abc import Set

from thumpflow.connectors.batchfile.spec import FileDropSourceSpec
from thumpflow.connectors.sftp.spec import SftpDropSourceSpec

_NOT_FOR_CENSUS = frozenset(
    {
        "schema_",
        "rules",
        "unknown_fields",
        "business_key",
        "transform",
        "destinations",
        "reconciles",
        "destination",
        "report_dir",
        "version_field",
        "extras",
        "read_processes",
    }
)
_SHOWN = {"schema_": "schema"}


def census_job_problem(given: Set[str], source: object) -> str | None:
    """Why a `census_reconcile` job with the fields `given` and this `source` is wrong, or None.

    It reads the census columns itself (no schema, key, transform or
    destinations), from a drop directory of CSV or NDJSON files, each with a
    manifest (whose window end, else `created_at`, is the snapshot's time).
    """
    wrong = [_SHOWN.get(name, name) for name in sorted(given & _NOT_FOR_CENSUS)]
    if wrong:
        return (
            "a `census_reconcile` job reads the census columns unit, bed and patient and "
            f"compares them with the bed board: {', '.join(wrong)} do not apply"
        )
    if not isinstance(source, FileDropSourceSpec | SftpDropSourceSpec) or (
        source.format == "hl7_batch"
    ):
        return (
            "a `census_reconcile` job reads snapshots from a `file_drop` or `sftp_drop` "
            "source of `format: csv` or `ndjson`"
        )
    if source.manifest != "required":
        return (
            "a `census_reconcile` job's source needs `manifest: required`: a snapshot's time "
            "is its manifest's window end (else its `created_at`), without which it could be "
            "taken for live data"
        )
    return None

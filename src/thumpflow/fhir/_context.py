"""The state of one validation: its findings, and what references may resolve to."""

from __future__ import annotations

from thumpflow.fhir._issues import FhirIssue, Severity

NO_IDS: frozenset[str] = frozenset()


class Context:
    """State of one validation: findings, and what references may resolve to."""

    __slots__ = ("bundle_type", "contained_ids", "entry_types", "issues")

    def __init__(self) -> None:
        self.issues: list[FhirIssue] = []
        self.contained_ids: frozenset[str] = NO_IDS
        self.bundle_type: str | None = None
        self.entry_types: dict[str, str] = {}

    def error(self, path: str, code: str, message: str) -> None:
        self.issues.append(FhirIssue(path, "error", code, message))

    def add(self, path: str, severity: Severity, code: str, message: str) -> None:
        self.issues.append(FhirIssue(path, severity, code, message))

"""Validation findings and the error that carries them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from thumpflow.core.errors import ThumpflowError

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class FhirIssue:
    """One finding: where (`path`, FHIRPath-like), how bad, what rule, and why.

    `path` names the element as written in the JSON, with array indexes, e.g.
    `Bundle.entry[3].resource.identifier[0].system`. `code` is stable and
    machine-readable (an R4 invariant key such as `bdl-3` where one applies).
    `message` never repeats the offending value, so an issue may be logged
    without leaking patient data; code-binding messages may list the allowed
    codes, which come from the FHIR specification.
    """

    path: str
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.severity} {self.code}: {self.message}"


class ValidationError(ThumpflowError):
    """A resource that is not valid FHIR R4; `issues` holds every finding (errors first)."""

    def __init__(self, issues: list[FhirIssue]) -> None:
        self.issues = issues
        errors = [issue for issue in issues if issue.severity == "error"]
        shown = "; ".join(str(issue) for issue in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"invalid FHIR R4 resource: {shown}{more}")

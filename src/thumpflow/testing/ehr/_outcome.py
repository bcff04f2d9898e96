"""FHIR errors as exceptions, and the OperationOutcome they are answered with."""

from __future__ import annotations

from typing import Any

_SEVERITY = "error"


class FhirError(Exception):
    """A FHIR interaction failed; answered with `status` and an OperationOutcome.

    `code` is the OperationOutcome issue type (`invalid`, `not-found`,
    `conflict`, `processing`, ...). In a transaction, the first FhirError
    aborts every entry; in a batch it becomes that entry's response.
    """

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics

    def in_entry(self, index: int) -> FhirError:
        """The same error, its diagnostics prefixed with the Bundle entry it came from."""
        return FhirError(self.status, self.code, f"Bundle.entry[{index}]: {self.diagnostics}")

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.diagnostics)


def operation_outcome(code: str, diagnostics: str, severity: str = _SEVERITY) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }

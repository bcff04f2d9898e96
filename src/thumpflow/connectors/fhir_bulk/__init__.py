"""The FHIR Bulk Data export source: `$export`, status polling, NDJSON outputs as records."""

from thumpflow.connectors.auth import BearerAuth, NoAuth, SmartBackendAuth
from thumpflow.connectors.fhir_bulk.source import ExportIssue, FhirBulkSource
from thumpflow.connectors.fhir_bulk.spec import FhirBulkSourceSpec

__all__ = [
    "BearerAuth",
    "ExportIssue",
    "FhirBulkSource",
    "FhirBulkSourceSpec",
    "NoAuth",
    "SmartBackendAuth",
]

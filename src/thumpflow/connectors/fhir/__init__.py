"""The FHIR destination: Bundles written to a FHIR R4 server exactly once in effect."""

from thumpflow.connectors.auth import BearerAuth, NoAuth, SmartBackendAuth
from thumpflow.connectors.fhir.destination import FhirDestination
from thumpflow.connectors.fhir.spec import FhirDestinationSpec

__all__ = [
    "BearerAuth",
    "FhirDestination",
    "FhirDestinationSpec",
    "NoAuth",
    "SmartBackendAuth",
]

"""The FHIR Subscriptions source: its configuration and the client that reads back from the server.

Notifications themselves arrive through the HTTP API (`api/routes/subscriptions.py`)
and are handled by `flow.subscription`.
"""

from thumpflow.connectors.fhir_subscription.client import FhirSubscriptionClient
from thumpflow.connectors.fhir_subscription.spec import FhirSubscriptionSourceSpec

__all__ = ["FhirSubscriptionClient", "FhirSubscriptionSourceSpec"]

"""Credentials for FHIR requests, shared by the FHIR connectors (a helper, not a connector).

`spec` holds the `auth` configuration models (`none`, `bearer`,
`smart_backend`); `client` turns one into an `Authorizer` that gives the
`Authorization` header of each request and renews it after a 401.
"""

from thumpflow.connectors.auth.client import Authorizer, CredentialError, SmartBackend, authorizer
from thumpflow.connectors.auth.spec import AuthSpec, BearerAuth, NoAuth, SmartBackendAuth

__all__ = [
    "AuthSpec",
    "Authorizer",
    "BearerAuth",
    "CredentialError",
    "NoAuth",
    "SmartBackend",
    "SmartBackendAuth",
    "authorizer",
]

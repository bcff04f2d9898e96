"""Credentials for FHIR requests, shared by the FHIR connectors (a helper, not a connector).

`spec` holds the `auth` configuration models (`none`, `bearer`,
`smart_backend`) and `SecretRef` (a value read from the environment or a
file, e.g. `secret_headers`); `client` turns one into an `Authorizer` that gives the
`Authorization` header of each request and renews it after a 401.
"""

from thumpflow.connectors.auth.client import (
    Authorizer,
    CredentialError,
    SmartBackend,
    authorizer,
    read_secret,
)
from thumpflow.connectors.auth.spec import (
    AuthSpec,
    BearerAuth,
    NoAuth,
    SecretRef,
    SmartBackendAuth,
    no_userinfo,
    plain_headers,
)

__all__ = [
    "AuthSpec",
    "Authorizer",
    "BearerAuth",
    "CredentialError",
    "NoAuth",
    "SecretRef",
    "SmartBackend",
    "SmartBackendAuth",
    "authorizer",
    "no_userinfo",
    "plain_headers",
    "read_secret",
]

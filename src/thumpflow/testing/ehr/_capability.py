"""What the simulated EHR says about itself: its CapabilityStatement and its SMART
configuration.

Pure descriptions of what the server really serves (the same resource
types, interactions and search parameters the store and the executor
implement), so a client that discovers its way from `metadata` or
`.well-known/smart-configuration` finds only what works. Built from the
server's URLs and auth mode; no state, nothing that can fail.
"""

from __future__ import annotations

import time
from typing import Any

from thumpflow import __version__
from thumpflow.testing.ehr._auth import SIGNING_ALGORITHMS
from thumpflow.testing.ehr._http import FHIR_JSON
from thumpflow.testing.ehr._store import instant_text
from thumpflow.testing.ehr._types import RESOURCE_TYPES

_SEARCH_PARAMS = [
    {"name": "_id", "type": "token"},
    {"name": "identifier", "type": "token"},
    {"name": "_lastUpdated", "type": "date"},
]
_INTERACTIONS = ["read", "vread", "update", "delete", "history-instance", "create", "search-type"]


def smart_configuration(token_url: str) -> dict[str, Any]:
    """`.well-known/smart-configuration`: the token endpoint and what it supports."""
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "scopes_supported": ["system/*.read", "system/*.write", "system/*.*", "system/*.cruds"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


def capability_statement(base_url: str, token_url: str, *, smart: bool) -> dict[str, Any]:
    """The CapabilityStatement (`GET /metadata`): every resource type with the interactions,
    conditional operations and search parameters served, transaction, batch and `$export`;
    with `smart`, the SMART security service and its token endpoint."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant_text(time.time_ns() // 1000)[:10],
        "kind": "instance",
        "software": {"name": "thumpflow simulated EHR", "version": __version__},
        "implementation": {"description": "thumpflow simulated EHR", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                **({"security": _security(token_url)} if smart else {}),
                "resource": [
                    {
                        "type": type_,
                        "interaction": [{"code": code} for code in _INTERACTIONS],
                        "versioning": "versioned-update",
                        "readHistory": True,
                        "updateCreate": True,
                        "conditionalCreate": True,
                        "conditionalUpdate": True,
                        "conditionalDelete": "single",
                        "searchParam": _SEARCH_PARAMS,
                    }
                    for type_ in sorted(RESOURCE_TYPES)
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [
                    {
                        "name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                    }
                ],
            }
        ],
    }


def _security(token_url: str) -> dict[str, Any]:
    return {
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": token_url}],
            }
        ],
    }

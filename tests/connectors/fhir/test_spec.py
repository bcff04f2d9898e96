"""The FHIR destination spec: example validates, every field described, auth checked."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from thumpflow.connectors.fhir import (
    BearerAuth,
    FhirDestinationSpec,
    NoAuth,
    SmartBackendAuth,
)
from thumpflow.connectors.tls import ClientTls


def test_example_validates_and_every_field_is_described() -> None:
    spec = FhirDestinationSpec.model_validate(FhirDestinationSpec.example)
    assert isinstance(spec.auth, SmartBackendAuth) and spec.auth.algorithm == "ES384"
    schema = FhirDestinationSpec.model_json_schema()
    assert schema["description"] and "\n" not in schema["description"]
    models: list[type[BaseModel]] = [
        FhirDestinationSpec,
        ClientTls,
        NoAuth,
        BearerAuth,
        SmartBackendAuth,
    ]
    for model in models:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
    with pytest.raises(ValidationError):
        FhirDestinationSpec.model_validate({**FhirDestinationSpec.example, "unknown": 1})


def test_defaults() -> None:
    spec = FhirDestinationSpec.model_validate({"type": "fhir", "base_url": "http://ehr/fhir"})
    assert spec.mode == "transaction" and spec.max_batch == 1
    assert isinstance(spec.auth, NoAuth)
    assert spec.on_version_conflict == "retry" and not spec.version_aware


def test_auth_and_tls_are_checked() -> None:
    base = {"type": "fhir", "base_url": "https://ehr/fhir"}
    for auth in (
        {"type": "bearer"},
        {"type": "bearer", "token_env": "A", "token_file": "/t"},
        {"type": "bearer", "token": "secret"},
        {"type": "smart_backend", "client_id": "c", "private_key_file": "k", "key_id": "1",
         "algorithm": "HS256"},
        {"type": "basic"},
    ):  # fmt: skip
        with pytest.raises(ValidationError):
            FhirDestinationSpec.model_validate({**base, "auth": auth})
    with pytest.raises(ValidationError):
        ClientTls(cert_file="c.pem")
    with pytest.raises(ValidationError):
        FhirDestinationSpec.model_validate({**base, "base_url": "ftp://x"})
    scope = SmartBackendAuth(
        type="smart_backend", client_id="c", private_key_file="k", key_id="1"
    ).scope
    assert scope == "system/*.write system/*.read"

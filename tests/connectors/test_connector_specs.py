"""Connector specs: examples validate, every field is described, unknown keys are refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from thumpflow.connectors.file import FileDestinationSpec
from thumpflow.connectors.http import HttpDestinationSpec
from thumpflow.connectors.mllp import (
    MllpClientTls,
    MllpDestinationSpec,
    MllpSourceSpec,
)
from thumpflow.connectors.tls import ClientTls, ServerTls

SPECS: list[Any] = [MllpSourceSpec, MllpDestinationSpec, FileDestinationSpec, HttpDestinationSpec]
NESTED: list[type[BaseModel]] = [ServerTls, MllpClientTls, ClientTls]


@pytest.mark.parametrize("spec", SPECS)
def test_example_validates_and_schema_is_documented(spec: Any) -> None:
    model = spec.model_validate(spec.example)
    assert model.type == spec.example["type"]
    schema = spec.model_json_schema()
    assert schema["description"] and "\n" not in schema["description"]
    for model_cls in [spec, *NESTED]:
        for name, info in model_cls.model_fields.items():
            assert info.description, f"{model_cls.__name__}.{name} has no description"
    with pytest.raises(ValidationError):
        spec.model_validate({**spec.example, "unknown": 1})


def test_tls_pairs_are_checked() -> None:
    with pytest.raises(ValidationError):
        MllpClientTls(cert_file="c.pem")
    with pytest.raises(ValidationError):
        ClientTls(key_file="k.pem")
    with pytest.raises(ValidationError):
        ServerTls(cert_file="c", key_file="k", require_client_cert=True)

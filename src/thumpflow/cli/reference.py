"""`thumpflow config docs|schema`."""

from __future__ import annotations

from thumpflow.config.reference import json_schema, reference_markdown


def print_reference(what: str) -> int:
    print(reference_markdown() if what == "docs" else json_schema())
    return 0

"""Invariants of single R4 resources that are cheap to check: the status
invariants of AllergyIntolerance (ait-1, ait-2) and Condition (con-3, con-4,
con-5), each an issue at the element it concerns (con-3 a warning, as R4
defines it). Run after the structural walk of a resource of that type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thumpflow.fhir._context import Context

_AIT_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_CON_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CON_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CON_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def _has_coding(concept: Any, system: str, codes: tuple[str, ...]) -> bool:
    """Whether CodeableConcept `concept` has a coding of `system` with one of `codes`."""
    if type(concept) is not dict:
        return False
    codings = concept.get("coding")
    if type(codings) is not list:
        return False
    return any(
        type(c) is dict and c.get("system") == system and c.get("code") in codes for c in codings
    )


def _allergy(resource: dict[str, Any], path: str, ctx: Context) -> None:
    error = _has_coding(
        resource.get("verificationStatus"), _AIT_VERIFICATION, ("entered-in-error",)
    )
    clinical = "clinicalStatus" in resource
    if not error and not clinical:
        ctx.error(
            f"{path}.clinicalStatus",
            "ait-1",
            "clinicalStatus SHALL be present if verificationStatus is not entered-in-error",
        )
    elif error and clinical:
        ctx.error(
            f"{path}.clinicalStatus",
            "ait-2",
            "clinicalStatus SHALL NOT be present if verificationStatus is entered-in-error",
        )


def _condition(resource: dict[str, Any], path: str, ctx: Context) -> None:
    error = _has_coding(
        resource.get("verificationStatus"), _CON_VERIFICATION, ("entered-in-error",)
    )
    clinical = resource.get("clinicalStatus")
    if clinical is None and not error:
        categories = resource.get("category")
        # R4's con-3 tests the category's code (`category.select($this =
        # 'problem-list-item')`); a coding of condition-category is what it means.
        if type(categories) is list and any(
            _has_coding(c, _CON_CATEGORY, ("problem-list-item",)) for c in categories
        ):
            ctx.add(
                f"{path}.clinicalStatus",
                "warning",
                "con-3",
                "clinicalStatus SHALL be present if verificationStatus is not"
                " entered-in-error and category is problem-list-item",
            )
    if clinical is not None and error:
        ctx.error(
            f"{path}.clinicalStatus",
            "con-5",
            "clinicalStatus SHALL NOT be present if verificationStatus is entered-in-error",
        )
    if any(key in resource for key in _ABATEMENT) and not _has_coding(
        clinical, _CON_CLINICAL, ("inactive", "resolved", "remission")
    ):
        ctx.error(
            f"{path}.clinicalStatus",
            "con-4",
            "an abated condition's clinicalStatus is inactive, resolved or remission",
        )


_ABATEMENT = (
    "abatementDateTime",
    "abatementAge",
    "abatementPeriod",
    "abatementRange",
    "abatementString",
)

# Resource type -> its invariant check.
RESOURCE_RULES: dict[str, Callable[[dict[str, Any], str, Context], None]] = {
    "AllergyIntolerance": _allergy,
    "Condition": _condition,
}

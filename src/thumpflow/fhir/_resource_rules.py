"""Invariants of single R4 resources, each an issue at the element it concerns, with
the key, severity and wording of R4.0.1 (`profiles-resources.json`): AllergyIntolerance
ait-1/ait-2; Condition con-3 (a warning)/con-4/con-5; Observation obs-3/obs-6/obs-7;
Appointment app-1 to app-4; ServiceRequest prr-1; Patient pat-1; Organization org-1 to
org-3; MedicationDispense mdd-1; and, for a resource with contained resources, dom-3 to
dom-5 (dom-2 is part of the structural walk). Run after the structural walk of a resource
of that type; they read the JSON only and never raise on malformed input.

Not checked here: con-1/con-2 (Condition.stage/evidence) and imm-1
(Immunization.education), which the converter does not produce, and dom-6 (a
best-practice warning for a resource without narrative)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thumpflow.fhir._context import Context
from thumpflow.fhir._type_rules import check_order, has

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


def _items(resource: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    items = resource.get(key)
    if type(items) is not list:
        return []
    return [(i, item) for i, item in enumerate(items) if type(item) is dict]


def _has_value(obj: dict[str, Any]) -> bool:
    """Whether a `value[x]` variant (or its extensions) is present."""
    return any(key.startswith(("value", "_value")) for key in obj)


def _observation(resource: dict[str, Any], path: str, ctx: Context) -> None:
    for i, reference_range in _items(resource, "referenceRange"):
        if not (
            "low" in reference_range or "high" in reference_range or has(reference_range, "text")
        ):
            ctx.error(
                f"{path}.referenceRange[{i}]",
                "obs-3",
                "Must have at least a low or a high or text",
            )
    if not _has_value(resource):
        return
    if "dataAbsentReason" in resource:
        ctx.error(
            f"{path}.dataAbsentReason",
            "obs-6",
            "dataAbsentReason SHALL only be present if Observation.value[x] is not present",
        )
    code = resource.get("code")
    codings = code.get("coding") if type(code) is dict else None
    if type(codings) is not list or not codings:
        return
    for i, component in _items(resource, "component"):
        inner = component.get("code")
        inner_codings = inner.get("coding") if type(inner) is dict else None
        # FHIRPath intersect compares Codings as whole values (every property).
        if type(inner_codings) is list and any(c in codings for c in inner_codings):
            ctx.error(
                f"{path}.component[{i}].code",
                "obs-7",
                "If Observation.code is the same as an Observation.component.code then the"
                " value element associated with the code SHALL NOT be present",
            )


def _appointment(resource: dict[str, Any], path: str, ctx: Context) -> None:
    for i, participant in _items(resource, "participant"):
        if "type" not in participant and "actor" not in participant:
            ctx.error(
                f"{path}.participant[{i}]",
                "app-1",
                "Either the type or actor on the participant SHALL be specified",
            )
    start, end = has(resource, "start"), has(resource, "end")
    status = resource.get("status")
    if start != end:
        ctx.error(
            f"{path}.{'end' if start else 'start'}",
            "app-2",
            "Either start and end are specified, or neither",
        )
    if not (start and end) and status not in ("proposed", "cancelled", "waitlist"):
        ctx.error(
            f"{path}.start",
            "app-3",
            "Only proposed or cancelled appointments can be missing start/end dates",
        )
    if "cancelationReason" in resource and status not in ("noshow", "cancelled"):
        ctx.error(
            f"{path}.cancelationReason",
            "app-4",
            "Cancelation reason is only used for appointments that have been cancelled, or no-show",
        )


def _service_request(resource: dict[str, Any], path: str, ctx: Context) -> None:
    if "orderDetail" in resource and "code" not in resource:
        ctx.error(
            f"{path}.orderDetail", "prr-1", "orderDetail SHALL only be present if code is present"
        )


def _patient(resource: dict[str, Any], path: str, ctx: Context) -> None:
    for i, contact in _items(resource, "contact"):
        if not any(key in contact for key in ("name", "telecom", "address", "organization")):
            ctx.error(
                f"{path}.contact[{i}]",
                "pat-1",
                "SHALL at least contain a contact's details or a reference to an organization",
            )


def _organization(resource: dict[str, Any], path: str, ctx: Context) -> None:
    if "identifier" not in resource and not has(resource, "name"):
        ctx.error(
            path,
            "org-1",
            "The organization SHALL at least have a name or an identifier, and possibly more"
            " than one",
        )
    for key, code, what in (
        ("address", "org-2", "An address"),
        ("telecom", "org-3", "The telecom"),
    ):
        for i, item in _items(resource, key):
            if item.get("use") == "home":
                ctx.error(
                    f"{path}.{key}[{i}].use",
                    code,
                    f"{what} of an organization can never be of use 'home'",
                )


def _dispense(resource: dict[str, Any], path: str, ctx: Context) -> None:
    if "whenHandedOver" in resource and "whenPrepared" in resource:
        check_order(
            resource["whenPrepared"],
            resource["whenHandedOver"],
            f"{path}.whenHandedOver",
            "mdd-1",
            "whenHandedOver cannot be before whenPrepared",
            ctx=ctx,
        )


def _strings(value: Any, found: set[str]) -> None:
    """Every string in a JSON value, collected into `found`."""
    if type(value) is str:
        found.add(value)
    elif type(value) is dict:
        for item in value.values():
            _strings(item, found)
    elif type(value) is list:
        for item in value:
            _strings(item, found)


def contained_rules(
    resource: dict[str, Any], contained: list[Any], path: str, ctx: Context
) -> None:
    """dom-3, dom-4 and dom-5 for the resources contained in `resource`.

    dom-3 counts a contained resource as referred to when `#` and its id is any string
    in the container (a reference, canonical or uri), or when it refers to `#` itself.
    """
    strings: set[str] = set()
    _strings(resource, strings)
    for i, inner in enumerate(contained):
        if type(inner) is not dict:
            continue
        where = f"{path}.contained[{i}]"
        meta = inner.get("meta")
        if type(meta) is dict:
            if has(meta, "versionId") or has(meta, "lastUpdated"):
                ctx.error(
                    f"{where}.meta",
                    "dom-4",
                    "If a resource is contained in another resource, it SHALL NOT have a"
                    " meta.versionId or a meta.lastUpdated",
                )
            if "security" in meta:
                ctx.error(
                    f"{where}.meta.security",
                    "dom-5",
                    "If a resource is contained in another resource, it SHALL NOT have a"
                    " security label",
                )
        rid = inner.get("id")
        own: set[str] = set()
        _strings(inner, own)
        if not (type(rid) is str and "#" + rid in strings) and "#" not in own:
            ctx.error(
                where,
                "dom-3",
                "If the resource is contained in another resource, it SHALL be referred to"
                " from elsewhere in the resource or SHALL refer to the containing resource",
            )


# Resource type -> its invariant check.
RESOURCE_RULES: dict[str, Callable[[dict[str, Any], str, Context], None]] = {
    "AllergyIntolerance": _allergy,
    "Appointment": _appointment,
    "Condition": _condition,
    "MedicationDispense": _dispense,
    "Observation": _observation,
    "Organization": _organization,
    "Patient": _patient,
    "ServiceRequest": _service_request,
}

"""The structural walk over a FHIR R4 JSON resource (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thumpflow.fhir._bundle_rules import bundle_rules
from thumpflow.fhir._context import NO_IDS, Context
from thumpflow.fhir._definitions import (
    PRIMITIVE,
    REGISTRY,
    RESOURCE,
    Element,
    TypeTable,
    ValueSetCodes,
)
from thumpflow.fhir._issues import FhirIssue, ValidationError
from thumpflow.fhir._primitives import describe_json
from thumpflow.fhir._references import check_reference
from thumpflow.fhir._resource_rules import RESOURCE_RULES, contained_rules
from thumpflow.fhir._type_rules import TYPE_RULES

_ELEMENT = REGISTRY.tables["Element"]
_RESOURCES = REGISTRY.resources


def validate(resource: dict[str, Any]) -> list[FhirIssue]:
    """Every structural finding on `resource` (decoded FHIR R4 JSON); empty when valid.

    Errors come before warnings; within a severity, findings are depth-first
    (an object's missing required elements after its children's findings).
    The resource is not modified. Never raises on bad input: any JSON-like
    value yields findings instead.
    """
    ctx = Context()
    if type(resource) is not dict:
        ctx.error("Resource", "structure", f"expected a JSON object, got {describe_json(resource)}")
        return ctx.issues
    rtype = resource.get("resourceType")
    _resource(resource, rtype if type(rtype) is str and rtype in _RESOURCES else "Resource", ctx)
    issues = ctx.issues
    if any(issue.severity == "warning" for issue in issues):
        issues.sort(key=lambda issue: issue.severity != "error")
    return issues


def is_valid(resource: dict[str, Any]) -> bool:
    """True when `validate` finds no error (warnings allowed)."""
    return not any(issue.severity == "error" for issue in validate(resource))


def assert_valid(resource: dict[str, Any]) -> None:
    """Return quietly when `resource` has no error; else raise ValidationError with all issues."""
    issues = validate(resource)
    if any(issue.severity == "error" for issue in issues):
        raise ValidationError(issues)


def _resource(value: Any, path: str, ctx: Context, contained: bool = False) -> None:
    if type(value) is not dict or not value:
        ctx.error(path, "structure", f"expected a resource object, got {describe_json(value)}")
        return
    rtype = value.get("resourceType")
    table = _RESOURCES.get(rtype) if type(rtype) is str else None
    if table is None:
        if rtype is None:
            ctx.error(path, "resource-type", "resourceType is missing")
        else:
            ctx.error(f"{path}.resourceType", "resource-type", "not an R4 resource type")
        return
    if contained:
        if "contained" in value:
            ctx.error(f"{path}.contained", "dom-2", "a contained resource cannot contain resources")
        _walk(value, table, path, ctx)
        _invariants(value, str(rtype), path, ctx)
        return
    saved_ids = ctx.contained_ids
    inner = value.get("contained")
    if type(inner) is list:
        ctx.contained_ids = frozenset(
            r["id"] for r in inner if type(r) is dict and type(r.get("id")) is str
        )
        contained_rules(value, inner, path, ctx)
    else:
        ctx.contained_ids = NO_IDS
    if rtype == "Bundle":
        _bundle(value, table, path, ctx)
    else:
        _walk(value, table, path, ctx)
        _invariants(value, str(rtype), path, ctx)
    ctx.contained_ids = saved_ids


def _invariants(value: dict[str, Any], rtype: str, path: str, ctx: Context) -> None:
    """The resource type's invariants (`_resource_rules`), after its structural walk."""
    rules = RESOURCE_RULES.get(rtype)
    if rules is not None:
        rules(value, path, ctx)


def _walk(obj: dict[str, Any], table: TypeTable, path: str, ctx: Context) -> None:
    """Check one JSON object against its element table, recursively.

    The common cases (a valid plain primitive, object, or array of them) are
    settled in this loop; anything else, including every failure, goes to
    `_general`, which finds and reports the problem.
    """
    elements = table.elements
    for key, value in obj.items():
        element = elements.get(key)
        if element is None:
            _unlisted(obj, key, table, path, ctx)
            continue
        mode = element.mode  # the _definitions FAST_* constants, as literals for speed
        if mode == 0:
            if type(value) is str and element.match(value) is not None:  # type: ignore[misc]
                continue
        elif mode == 1:
            if type(value) is dict and value:
                _walk(value, element.table, f"{path}.{key}", ctx)  # type: ignore[arg-type]
                continue
        elif mode == 3:
            if type(value) is list and value:
                sub = element.table
                for i, item in enumerate(value):
                    if type(item) is dict and item:
                        _walk(item, sub, f"{path}.{key}[{i}]", ctx)  # type: ignore[arg-type]
                    else:
                        _bad_object(element, f"{path}.{key}[{i}]", item, ctx)
                continue
        elif mode == 6:
            if type(value) is str and value in element.codes:  # type: ignore[operator]
                continue
        elif mode == 8:
            if element.check(value):  # type: ignore[misc]
                continue
        elif mode == 7:
            if type(value) is dict and value:
                where = f"{path}.{key}"
                _walk(value, element.table, where, ctx)  # type: ignore[arg-type]
                check_reference(value, element, where, ctx)
                continue
        elif mode == 9:
            if type(value) is list and value:
                sub = element.table
                for i, item in enumerate(value):
                    where = f"{path}.{key}[{i}]"
                    if type(item) is dict and item:
                        _walk(item, sub, where, ctx)  # type: ignore[arg-type]
                        check_reference(item, element, where, ctx)
                    else:
                        _bad_object(element, where, item, ctx)
                continue
        elif mode == 2:
            if type(value) is list and value:
                match = element.match
                for item in value:
                    if type(item) is not str or match(item) is None:  # type: ignore[misc]
                        break
                else:
                    continue
        elif mode == 5:
            continue
        _general(obj, key, element, path, ctx)
    if len(obj) == 1 and "id" in obj and not table.is_resource and table is not _ELEMENT:
        ctx.error(path, "ele-1", "All FHIR elements must have a @value or children")
    if table.variants:
        _check_choices(obj, table, path, ctx)
    for name, keys in table.required:
        for key in keys:
            if key in obj:
                break
        else:
            ctx.error(f"{path}.{name}", "required", f"{name} is required (min 1)")


def _unlisted(obj: dict[str, Any], key: str, table: TypeTable, path: str, ctx: Context) -> None:
    """A property that is not an element: a primitive's `_key`, or unknown.

    An unknown property's name comes from the input and may be patient data
    (a name or MRN used as a key), so the issue locates it by its position
    among the object's properties and never repeats it.
    """
    if key[:1] == "_":
        element = table.elements.get(key[1:])
        if element is not None and element.kind == PRIMITIVE and not element.attribute:
            _primitive_extension(obj, key, element, path, ctx)
            return
    position = list(obj).index(key) + 1
    ctx.error(
        f"{path}.<property {position}>",
        "unknown-element",
        f"property {position} of this {table.name} is not an R4 element "
        "(its name is not repeated here)",
    )


def _check_choices(obj: dict[str, Any], table: TypeTable, path: str, ctx: Context) -> None:
    """At most one variant of each choice element (`valueX` and `_valueX` are one)."""
    variants = table.variants
    seen: dict[str, str] = {}
    for key in obj:
        found = variants.get(key)
        if found is None:
            continue
        group, variant = found
        other = seen.setdefault(group, variant)
        if other != variant:
            ctx.error(
                f"{path}.{key}",
                "choice",
                f"only one of {group} may be present; {other} is present too",
            )


def _general(obj: dict[str, Any], key: str, element: Element, path: str, ctx: Context) -> None:
    """Every check of one property, reporting what is wrong."""
    value = obj[key]
    if element.many:
        if type(value) is not list:
            ctx.error(
                f"{path}.{key}",
                "array-expected",
                f"{key} repeats (max {_max(element)}), so it must be a JSON array",
            )
            return
        if not value:
            ctx.error(f"{path}.{key}", "ele-1", "an empty array is not allowed")
            return
        if element.max > 1 and len(value) > element.max:
            ctx.error(
                f"{path}.{key}", "cardinality", f"at most {element.max} allowed, found {len(value)}"
            )
        kind = element.kind
        if kind == PRIMITIVE:
            check = element.check
            codes = element.codes
            for i, item in enumerate(value):
                if check(item):  # type: ignore[misc]
                    if codes is not None and item not in codes:
                        _bad_code(element, f"{path}.{key}[{i}]", ctx)
                elif item is not None or not _has_extension(obj, key, i):
                    _bad_primitive(element, f"{path}.{key}[{i}]", item, ctx)
        elif kind == RESOURCE:
            contained = key == "contained"
            for i, item in enumerate(value):
                _resource(item, f"{path}.{key}[{i}]", ctx, contained)
        else:
            sub = element.table
            hook = element.hook
            for i, item in enumerate(value):
                where = f"{path}.{key}[{i}]"
                if type(item) is dict and item:
                    _walk(item, sub, where, ctx)  # type: ignore[arg-type]
                    if hook is not None:
                        _HOOKS[hook](item, element, where, ctx)
                else:
                    _bad_object(element, where, item, ctx)
    elif type(value) is list:
        if element.max == 0:
            ctx.error(f"{path}.{key}", "cardinality", f"{key} is not allowed here (max 0)")
        else:
            ctx.error(
                f"{path}.{key}",
                "array-not-allowed",
                f"{key} does not repeat (max 1), so it must not be a JSON array",
            )
    elif element.max == 0:
        ctx.error(f"{path}.{key}", "cardinality", f"{key} is not allowed here (max 0)")
    elif element.kind == PRIMITIVE:
        if element.check(value):  # type: ignore[misc]
            if element.codes is not None and value not in element.codes:
                _bad_code(element, f"{path}.{key}", ctx)
        else:
            _bad_primitive(element, f"{path}.{key}", value, ctx)
    elif element.kind == RESOURCE:
        _resource(value, f"{path}.{key}", ctx)
    elif type(value) is dict and value:
        where = f"{path}.{key}"
        _walk(value, element.table, where, ctx)  # type: ignore[arg-type]
        if element.hook is not None:
            _HOOKS[element.hook](value, element, where, ctx)
    else:
        _bad_object(element, f"{path}.{key}", value, ctx)


def _max(element: Element) -> str:
    return "*" if element.max < 0 else str(element.max)


def _has_extension(obj: dict[str, Any], key: str, index: int) -> bool:
    """True when a null in array `key` is matched by an object in `_key` (FHIR JSON rule)."""
    extensions = obj.get("_" + key)
    return type(extensions) is list and index < len(extensions) and type(extensions[index]) is dict


def _primitive_extension(
    obj: dict[str, Any], key: str, element: Element, path: str, ctx: Context
) -> None:
    value = obj[key]
    where = f"{path}.{key}"
    if not element.many:
        if type(value) is dict and value:
            _walk(value, _ELEMENT, where, ctx)
        else:
            ctx.error(where, "structure", f"expected an object, got {describe_json(value)}")
        return
    if type(value) is not list or not value:
        ctx.error(where, "structure", f"expected a non-empty array, got {describe_json(value)}")
        return
    values = obj.get(element.key)
    if type(values) is list and len(values) != len(value):
        ctx.error(where, "structure", f"must have as many items as {element.key}")
    for i, item in enumerate(value):
        if item is None:
            if type(values) is not list or i >= len(values) or values[i] is None:
                ctx.error(f"{where}[{i}]", "structure", "null here and in the value array")
        elif type(item) is dict and item:
            _walk(item, _ELEMENT, f"{where}[{i}]", ctx)
        else:
            ctx.error(
                f"{where}[{i}]", "structure", f"expected an object, got {describe_json(item)}"
            )


def _bad_primitive(element: Element, path: str, value: Any, ctx: Context) -> None:
    if value is None:
        ctx.error(path, "structure", "null is not allowed here")
    elif type(value) in (dict, list):
        ctx.error(path, "type", f"expected a {element.type_name} value, got {describe_json(value)}")
    else:
        ctx.error(
            path,
            "value",
            f"{describe_json(value)} that is not a valid FHIR {element.type_name}",
        )


def _bad_object(element: Element, path: str, value: Any, ctx: Context) -> None:
    if type(value) is dict or type(value) is list:
        ctx.error(path, "ele-1", "an empty element is not allowed")
    elif value is None:
        ctx.error(path, "structure", "null is not allowed here")
    else:
        ctx.error(
            path, "type", f"expected a {element.type_name} object, got {describe_json(value)}"
        )


def _bad_code(element: Element, path: str, ctx: Context) -> None:
    value_set = element.value_set
    assert value_set is not None
    ctx.error(path, "code-invalid", f"code is not in the required value set {value_set.allowed()}")


def _coding_matches(coding: Any, value_set: ValueSetCodes) -> str | None:
    """'yes' when the coding is in the value set, 'no-system' when only its code is, else None."""
    if type(coding) is not dict:
        return None
    code = coding.get("code")
    system = coding.get("system")
    if system is None:
        return "no-system" if code in value_set.all_codes else None
    codes = value_set.by_system.get(system) if type(system) is str else None
    return "yes" if codes is not None and code in codes else None


def _check_coding(coding: dict[str, Any], element: Element, path: str, ctx: Context) -> None:
    value_set = element.value_set
    assert value_set is not None
    match = _coding_matches(coding, value_set)
    if match == "no-system":
        ctx.add(
            f"{path}.system",
            "warning",
            "code-system",
            f"Coding has a code of the required value set {value_set.url} but no system",
        )
    elif match is None:
        system = coding.get("system")
        if system is not None and system not in value_set.by_system:
            systems = ", ".join(sorted(value_set.by_system))
            ctx.error(f"{path}.system", "code-invalid", f"system must be one of {systems}")
        else:
            ctx.error(
                f"{path}.code",
                "code-invalid",
                f"code is not in the required value set {value_set.allowed()}",
            )


def _check_codeable(concept: dict[str, Any], element: Element, path: str, ctx: Context) -> None:
    value_set = element.value_set
    assert value_set is not None
    codings = concept.get("coding")
    best = None
    if type(codings) is list:
        for coding in codings:
            match = _coding_matches(coding, value_set)
            if match == "yes":
                return
            best = best or match
    if best == "no-system":
        ctx.add(
            f"{path}.coding",
            "warning",
            "code-system",
            f"a coding has a code of the required value set {value_set.url} but no system",
        )
        return
    ctx.error(
        path,
        "code-invalid",
        f"no coding is from the required value set {value_set.allowed()}",
    )


def _check_extension(extension: dict[str, Any], element: Element, path: str, ctx: Context) -> None:
    has_value = any(key.startswith(("value", "_value")) for key in extension)
    if has_value == ("extension" in extension):
        ctx.error(path, "ext-1", "an extension must have either extensions or a value[x], not both")


def _type_hook(
    rule: Callable[[dict[str, Any], str, Context], None],
) -> Callable[[dict[str, Any], Element, str, Context], None]:
    def hook(value: dict[str, Any], element: Element, path: str, ctx: Context) -> None:
        rule(value, path, ctx)

    return hook


_HOOKS: dict[str, Callable[[dict[str, Any], Element, str, Context], None]] = {
    "reference": check_reference,
    "extension": _check_extension,
    "Coding": _check_coding,
    "CodeableConcept": _check_codeable,
    **{name: _type_hook(rule) for name, rule in TYPE_RULES.items()},
}


def _bundle(bundle: dict[str, Any], table: TypeTable, path: str, ctx: Context) -> None:
    btype = bundle.get("type")
    entries = bundle.get("entry")
    if type(entries) is not list:
        entries = []
    entry_types: dict[str, str] = {}
    for entry in entries:
        if type(entry) is dict:
            full_url = entry.get("fullUrl")
            resource = entry.get("resource")
            if type(full_url) is str and type(resource) is dict:
                rtype = resource.get("resourceType")
                if type(rtype) is str:
                    entry_types[full_url] = rtype
    saved = (ctx.bundle_type, ctx.entry_types)
    ctx.bundle_type = btype if type(btype) is str else None
    ctx.entry_types = entry_types
    _walk(bundle, table, path, ctx)
    ctx.bundle_type, ctx.entry_types = saved
    bundle_rules(bundle, btype, entries, path, ctx)

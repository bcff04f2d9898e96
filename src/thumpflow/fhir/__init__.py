"""FHIR R4 (4.0.1) structural validation and resource helpers. Pure: no I/O, no asyncio.

`parse_notification(bundle)` reads a Subscription notification Bundle (R4
Subscriptions Backport IG or R5) into a `Notification`.

`validate(resource)` walks decoded FHIR JSON against per-type element tables
compiled at import from the official R4 StructureDefinitions (the data file
`r4/definitions.json.gz`, made by `scripts/gen_fhir_r4.py`). It returns every
finding as a `FhirIssue` with a FHIRPath-like path; it never raises on bad
input and never modifies the resource. `is_valid` and `assert_valid` (raising
`ValidationError`) treat warnings as valid.

Checked (issue `code` in brackets):

- `resourceType` present and a concrete R4 resource type [resource-type];
  every JSON property is an element of its type [unknown-element]; an
  `_element` (primitive extension) is accepted only beside a primitive
  element, as an object, or for a repeating element as an array as long as
  the values array; a null in a value array needs an object at the same index
  of its `_` array [structure];
- cardinality: required elements present (an element carrying only
  extensions in `_element` counts as present) [required]; repeating elements
  are JSON arrays [array-expected], single ones are not [array-not-allowed];
  max 0 elements absent and numeric maxima kept [cardinality]; no empty
  objects or arrays [ele-1]; no nulls outside value arrays [structure];
- primitive values: JSON kind and the R4 lexical regexes for every primitive
  type (see `_primitives` for the few stricter checks: real calendar days,
  canonical base64, 32-bit integers) [value], objects and arrays where a
  primitive belongs and vice versa [type];
- choice elements: at most one `value[x]` variant, exactly one when required
  [choice, required];
- complex types and backbone elements recursively, including
  `contentReference` elements (e.g. `Questionnaire.item.item`) and the
  SimpleQuantity profile (no `comparator`); `contained`, `Bundle.entry.resource`,
  `Bundle.entry.response.outcome` and `Parameters.parameter.resource` are
  validated as resources; a contained resource has no `contained` [dom-2];
- required bindings whose ValueSet is enumerable from the R4 definitions
  (219 of them): `code` values must be in the value set; a bound `Coding`
  must have a system of the value set and a code of that system; a bound
  `CodeableConcept` needs at least one such coding [code-invalid]; a matching
  code without a system is a warning [code-system];
- `Reference.reference`: `Type/id[/_history/vid]`, an absolute http(s) URL,
  `urn:uuid:`/`urn:oid:`, `#id` naming a contained resource of the same
  container (or `#`), or `Type?param=value` inside a transaction or batch
  Bundle [reference]; the referenced type is an R4 resource allowed by the
  element's target profiles, and agrees with `Reference.type` [reference-type];
  in a transaction, a `urn:` reference must be the fullUrl of an entry;
- `Extension`: a value or nested extensions, not both [ext-1]; an element
  with only an `id` is empty [ele-1];
- R4 data-type invariants wherever the type occurs (`_type_rules`): per-1,
  qty-3, drt-1, age-1, cnt-3, dis-1, rng-2, rat-1, cpt-2, att-1, txt-2 and
  tim-1, 2, 4..10; a date comparison that FHIRPath leaves undetermined
  (different precisions that agree) is a warning of its key;
- R4 resource invariants (`_resource_rules`): ait-1/2, con-3 (warning)/4/5,
  obs-3/6/7, app-1..4, prr-1, pat-1, org-1..3, mdd-1, dom-3/4/5;
- Bundle invariants bdl-1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12 (so transaction and
  batch entries need `request`, whose `method` and `url` are required
  elements); POST/PUT/PATCH entries of a transaction or batch carry a resource
  [bundle-request]; `fullUrl` is an absolute http(s) URL, `urn:uuid:<uuid>` or
  `urn:oid:` and, when it is a RESTful URL, agrees with the resource's type and
  id [bundle-fullurl].

Not checked:

- invariants (FHIRPath constraints) beyond those named above: e.g. `txt-1`
  (the XHTML content rules; `Narrative.div` is only checked to be a `<div`
  string with some text), `dom-6` (a best-practice warning), and the
  invariants of resources and types the converter does not produce;
- bindings that are not required (extensible, preferred, example), and
  required bindings whose ValueSet cannot be enumerated from the definitions
  (BCP-13 mime types, ISO 4217 currencies, UCUM units, one LOINC answer list;
  see the generator);
- profiles (`meta.profile`), the content of extensions against their
  definitions, and references against the server (existence, versions);
- lexical detail lost by JSON decoding (e.g. decimal precision, `1.0` vs `1`).
"""

from thumpflow.fhir._decimal import FhirDecimal
from thumpflow.fhir._definitions import FHIR_VERSION
from thumpflow.fhir._issues import FhirIssue, Severity, ValidationError
from thumpflow.fhir._notification import (
    Notification,
    NotificationError,
    NotificationEvent,
    parse_notification,
)
from thumpflow.fhir._resources import deterministic_id, reference
from thumpflow.fhir._validate import assert_valid, is_valid, validate

__all__ = [
    "FHIR_VERSION",
    "FhirDecimal",
    "FhirIssue",
    "Notification",
    "NotificationError",
    "NotificationEvent",
    "Severity",
    "ValidationError",
    "assert_valid",
    "deterministic_id",
    "is_valid",
    "parse_notification",
    "reference",
    "validate",
]

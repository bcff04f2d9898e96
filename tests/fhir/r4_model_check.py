"""Check FHIR R4 Bundles with an independent model: fhir.resources 6.1.0 (FHIR 4.0.1).

Runs under the venv `test_independent_r4` makes (pydantic 1, which the engine's
own venv cannot hold), never in the engine's: it imports nothing of thumpflow.
Reads JSON Lines from stdin, each `{"name": ..., "bundle": {...}}`; writes one
JSON object: how many Bundles were read and, for each refused one, its name and
the model's errors (element path and message).

Two refusals are the model's, not R4's, and are left out:
- a required choice element given only as a primitive's extension
  (`_effectiveDateTime` holding a data-absent-reason, no value), which FHIR
  JSON allows and the model's "one of" check does not see;
- a `url` element holding a `urn:oid:` or `urn:uuid:` URI: R4's `url` is any
  string without whitespace, and the V2-to-FHIR IG writes a MessageHeader's
  endpoints so (`"urn:oid:"+HD.2`), while the model takes only locators with
  a host, `mailto:` and `mllp:`.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from fhir.resources.bundle import Bundle
from pydantic import ValidationError

_ONE_OF = re.compile(r"Expect any of field value from this list \[(.*)\]")


def _extension_only(bundle: dict[str, Any], loc: tuple[Any, ...], message: str) -> bool:
    """Whether the error is the model missing a required choice given as `_name` only."""
    found = _ONE_OF.match(message)
    if found is None or loc[:1] != ("entry",) or loc[-1:] != ("__root__",) or len(loc) != 4:
        return False
    resource = bundle["entry"][loc[1]]["resource"]
    names = [name.strip().strip("'") for name in found.group(1).split(",")]
    return not any(name in resource for name in names) and any(
        "_" + name in resource for name in names
    )


def _value(bundle: dict[str, Any], loc: tuple[Any, ...]) -> Any:
    found: Any = bundle
    for part in loc:
        try:
            found = found[part]
        except (KeyError, IndexError, TypeError):
            return None
    return found


def _urn_as_url(bundle: dict[str, Any], loc: tuple[Any, ...], message: str) -> bool:
    """Whether the error is the model refusing a `urn:oid:`/`urn:uuid:` URI as a `url`."""
    value = _value(bundle, loc)
    return (
        "URL scheme" in message
        and isinstance(value, str)
        and value.startswith(("urn:oid:", "urn:uuid:"))
    )


def _the_models(bundle: dict[str, Any], loc: tuple[Any, ...], message: str) -> bool:
    return _extension_only(bundle, loc, message) or _urn_as_url(bundle, loc, message)


def main() -> None:
    read = 0
    refused = []
    for line in sys.stdin:
        item = json.loads(line)
        read += 1
        try:
            Bundle.parse_obj(item["bundle"])
        except ValidationError as error:
            problems = [
                {"path": ".".join(str(part) for part in problem["loc"]), "msg": problem["msg"]}
                for problem in error.errors()
                if not _the_models(item["bundle"], tuple(problem["loc"]), problem["msg"])
            ]
            if problems:
                refused.append({"name": item["name"], "errors": problems[:5]})
    json.dump({"read": read, "refused": refused}, sys.stdout)


if __name__ == "__main__":
    main()

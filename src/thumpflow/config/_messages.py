"""Validation errors in words a person understands. Pure: no I/O.

pydantic says `Extra inputs are not permitted` and `Input tag 'kafka' found
using 'type' does not match any of the expected tags`; `explain` turns the
errors a person most often makes into sentences that name the remedy:

- an unknown key: `unknown key 'fliter' — did you mean 'filter'?` (or the
  keys allowed there when nothing is close);
- a secret written inline (`token: ...`) where the model reads it from the
  environment or a file: `inline secrets are not allowed here: use
  token_env or token_file`;
- a value outside a fixed set: `unknown value 'ndjsn' — did you mean
  'ndjson'?; one of: csv, ndjson, hl7_batch`;
- an unknown type: `unknown destination type 'kafka'; known: file, http,
  mllp, fhir`, the list taken from the models of the union (each connector's
  spec), so it cannot drift from what validation accepts.

The model a key belongs to is found by walking the configuration model
along the error's location, choosing each union's member by the data's
`type`.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

_SECRET_WORDS = ("token", "password", "secret", "key", "api_key", "client_secret", "passphrase")
_KINDS = {"destinations": "destination", "source": "source", "auth": "authentication"}


def explain(error: ErrorDetails, data: Any, root: type[BaseModel]) -> str:
    """The message for one pydantic error at its location in `data`, validated as `root`."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden" and loc:
        known = _keys_at(root, data, loc[:-1])
        if known is not None:
            return unknown_key(str(loc[-1]), known)
    if error["type"] == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        kind = _kind(loc)
        tags = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"unknown {kind} type {str(ctx.get('tag'))!r}; known: {tags}"
    if error["type"] == "union_tag_not_found":
        kind = _kind(loc)
        return f"a {kind} needs `type`"
    if error["type"] in ("literal_error", "enum"):
        return unknown_value(error.get("input"), str((error.get("ctx") or {}).get("expected", "")))
    if error["type"] == "missing" and loc:
        return f"required: give `{loc[-1]}`"
    return error["msg"].removeprefix("Value error, ")


def unknown_key(key: str, known: list[str]) -> str:
    """`unknown key 'fliter' — did you mean 'filter'?`, or the secret rule, or the keys allowed."""
    inline = [name for name in known if name in (f"{key}_env", f"{key}_file")]
    if not inline and key.lower() in _SECRET_WORDS:
        inline = [name for name in known if name.endswith(("_env", "_file"))]
    if inline:
        return f"inline secrets are not allowed here: use {' or '.join(sorted(inline))}"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} — did you mean {close[0]!r}?"
    return f"unknown key {key!r}; allowed here: {', '.join(known)}"


def unknown_value(value: Any, expected: str) -> str:
    """`unknown value 'loudest'; one of: owner_only, newest` (with a close match first)."""
    choices = [part.strip().strip("'") for part in expected.replace(" or ", ", ").split(",")]
    choices = [choice for choice in choices if choice]
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    return f"unknown value {str(value)!r}{hint}; one of: {', '.join(choices)}"


def _kind(loc: tuple[int | str, ...]) -> str:
    for part in reversed(loc):
        if isinstance(part, str) and part in _KINDS:
            return _KINDS[part]
    return "component"


def _keys_at(root: type[BaseModel], data: Any, loc: tuple[int | str, ...]) -> list[str] | None:
    annotation: Any = root
    node = data
    for part in loc:
        chosen = _narrow(annotation, {"type": part})
        if isinstance(chosen, type) and part in tag_values(chosen):
            annotation = chosen  # a union's tag in the location names the member
            continue
        annotation = _narrow(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = _field(annotation, part)
            node = node.get(part) if isinstance(node, dict) else None
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
            node = node[part] if isinstance(node, list) and isinstance(part, int) else None
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
            node = node.get(part) if isinstance(node, dict) else None
        else:
            return None
    model = _narrow(annotation, node)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [field.alias or name for name, field in model.model_fields.items()]
    return None


def _field(model: type[BaseModel], part: int | str) -> Any:
    for name, field in model.model_fields.items():
        if part in (name, field.alias):
            return field.annotation
    return None


def _narrow(annotation: Any, node: Any) -> Any:
    """Strip Annotated and Optional; choose a union's member by the node's `type`."""
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, types.UnionType):
        return annotation
    members = [_narrow(arg, node) for arg in get_args(annotation) if arg is not type(None)]
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    tag = node.get("type") if isinstance(node, dict) else None
    for model in models:
        if tag in tag_values(model):
            return model
    return members[0] if members else annotation


def tag_values(model: type[BaseModel]) -> tuple[Any, ...]:
    """The values a model's `type` field accepts (its `Literal`), or none."""
    field = model.model_fields.get("type")
    if field is None or get_origin(field.annotation) is not Literal:
        return ()
    return get_args(field.annotation)

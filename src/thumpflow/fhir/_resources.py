"""Small resource helpers for mapping: stable ids and literal references."""

from __future__ import annotations

import hashlib
import importlib
import re
import uuid
from collections.abc import Callable
from functools import partial
from json.encoder import encode_basestring
from typing import Any

import orjson

from thumpflow.fhir._definitions import REGISTRY

# Frozen forever: changing it changes every id thumpflow has ever written.
# (It is uuid5(NAMESPACE_URL, "https://thumpflow.org/ns/fhir-resource-id").)
_NAMESPACE = uuid.UUID("4d6519af-2965-5e19-9560-6e39db2d04eb")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}", re.ASCII)


_RESOURCE_NAMES = REGISTRY.resource_names


_NAMESPACE_BYTES = _NAMESPACE.bytes

# CPython's built-in SHA-1 costs less per call on short input than OpenSSL's
# (measured: about 1,500 fewer instructions an id); `hashlib`'s where it is
# not built in. The digest is the same; it is not used for security.
_sha1: Callable[[bytes], Any]
try:
    _sha1 = importlib.import_module("_sha1").sha1
except ImportError:  # pragma: no cover - CPython built without its own hashes
    _sha1 = partial(hashlib.sha1, usedforsecurity=False)

# The RFC 4122 variant bits `10` set in the first hex digit of the fourth group.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _require_resource_type(resource_type: str) -> None:
    if resource_type not in _RESOURCE_NAMES:
        raise ValueError(f"{resource_type!r} is not an R4 resource type")


def deterministic_id(resource_type: str, *parts: str) -> str:
    """A FHIR id derived only from the resource type and business identifiers.

    The same arguments give the same id in every process and release (UUID
    version 5 over a fixed namespace), so converting one message twice yields
    the same resource ids, and a retried write targets the same resource.
    Different arguments give different ids: the parts are encoded
    unambiguously (`("a|b",)` and `("a", "b")` differ), and order matters.
    The result is a lowercase 36-character UUID string, a valid R4 `id`.

    Raises ValueError when `resource_type` is not an R4 resource type, or when
    no part is a non-empty string (an id derived from nothing would collide);
    TypeError when a part is not a string.
    """
    if resource_type not in _RESOURCE_NAMES:
        raise ValueError(f"{resource_type!r} is not an R4 resource type")
    try:
        valued = "".join(parts)
    except TypeError:
        raise TypeError("deterministic_id parts must be strings") from None
    if not valued:
        raise ValueError("deterministic_id needs at least one non-empty business identifier")
    # The compact JSON array of the type and parts in UTF-8, as
    # `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes it:
    # orjson escapes exactly as it does (every code point checked), and
    # refuses a lone surrogate, which UTF-8 cannot encode either.
    try:
        name = orjson.dumps((resource_type, *parts))
    except orjson.JSONEncodeError:
        text = "[" + ",".join(map(encode_basestring, (resource_type, *parts))) + "]"
        name = text.encode()  # raises UnicodeEncodeError, as `uuid.uuid5` would
    # `str(uuid.uuid5(_NAMESPACE, name))` without the intermediate UUID object, by
    # the same steps: SHA-1 of the namespace bytes and the UTF-8 name, first 16
    # bytes, version nibble 5, RFC 4122 variant bits `10`; then the canonical
    # 8-4-4-4-12 lowercase hex form (done on the hex digest: the version is hex
    # digit 12, the variant bits the top of digit 16).
    h = _sha1(_NAMESPACE_BYTES + name).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def reference(resource_type: str, id: str, *, display: str | None = None) -> dict[str, str]:
    """A literal relative Reference `{"reference": "Type/id"}`, with `display` if given.

    Raises ValueError when `resource_type` is not an R4 resource type or `id`
    is not a valid FHIR id, so a bad reference fails where it is made rather
    than at the destination.
    """
    _require_resource_type(resource_type)
    if type(id) is not str or _ID.fullmatch(id) is None:
        raise ValueError("not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)")
    result = {"reference": f"{resource_type}/{id}"}
    if display:
        result["display"] = display
    return result

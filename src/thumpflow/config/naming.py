"""Naming-system tables for FHIR conversion: the engine's (`naming_systems`) and a channel's.

An entry whose system is not an absolute URI, or a `base` that does not
start one, is a configuration error located at the entry (file, line,
column); a namespace listed twice in one mapping is reported by the loader
(`key ... appears twice`), and in a `file:` table when it is read.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from thumpflow.config._base import _Model
from thumpflow.connectors.fields import LocalPath

_ABSOLUTE_URI = re.compile(r"(?:https?://[^\s]+|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[^\s]+)")


def _absolute(uri: str) -> str:
    if _ABSOLUTE_URI.fullmatch(uri) is None:
        raise ValueError("the system is not an absolute URI (`http(s)://...` or `urn:...`)")
    return uri


def _base(base: str | None) -> str | None:
    if base is not None and _ABSOLUTE_URI.fullmatch(base + "x") is None:
        raise ValueError("base is not the start of an absolute URI")
    return base


class NamingSystems(_Model):
    """Identifier systems for HL7 v2 assigning authorities in FHIR conversion.

    A namespace id (CX-4.1, HD-1, EI-2) that is an ISO OID becomes
    `urn:oid:<oid>`; one listed here (or in `file`) becomes its URI; any
    other becomes `base` followed by the namespace, percent-encoded.
    At the top level (`naming_systems:`) the entries are added to the
    built-in table for every conversion the engine makes and `thumpflow
    try` shows; a change needs a restart. In a channel (`channels: -
    naming_systems:`) they apply to that channel's transforms only (its own
    and its destinations', e.g. `thumpflow.mapping:to_fhir`), before the
    engine's: a namespace listed in both takes the channel's system, and
    the channel's `base`, when given, replaces the engine's. A channel's
    table is read when the channel starts: a reload that changes the
    channel restarts it with the new table; a change to its `file` alone
    needs a restart.
    """

    systems: dict[str, Annotated[str, AfterValidator(_absolute)]] = Field(
        default_factory=dict,
        description="Namespace id -> identifier system URI (absolute: `http(s)://...` or "
        '`urn:...`), e.g. `{GHH LAB: "urn:oid:2.16.840.1.113883.19.4.6"}`; these come '
        "before the entries of `file`.",
    )
    file: LocalPath | None = Field(
        default=None,
        description="YAML file with more such entries (namespace: URI), read at start; "
        "relative to this file's folder.",
    )
    base: Annotated[str | None, AfterValidator(_base)] = Field(
        default=None,
        description="Base for namespaces not listed (default "
        "`http://thumpflow.invalid/naming-system/`, which says the system is not published).",
    )

"""A channel's delivery ledger projection: one HL7 v2 message -> (business key, content hash). Pure.

The projection builds the record the partner job would load for the same
fact and keys and hashes it with `thumpflow.core.records`, exactly as the job
does, so equal content gives an equal hash on both sides:

- a field the partner job's `schema` declares is typed with that job's
  converter for its type; an empty value is null (as the job types a blank
  cell); HL7 v2 dates and date-times (`YYYYMMDD[hhmm[ss[.ssss]]][±zzzz]`) are
  first rewritten as ISO 8601 text, so `20261120` is the date a CSV writes as
  `2026-11-20`; a `date` field takes the day of a date-time; a `datetime`
  keeps the offset the message gives, and none when it gives none;
- a field the schema does not declare is kept as the text read (as the job
  keeps an undeclared column, under `unknown_fields: keep`).

With a partner job's `version_field`, the projection also gives the record's
version (`version_number` of that typed field; None when it is empty), which
the ledger keeps beside the hash.

A message whose key field is empty, or whose value does not fit its type, has
no projection: it is left out of the ledger, so the job writes that record
(the safe side of the skip). Nothing here logs, so no value is ever logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from thumpflow.config.model import Ledger
from thumpflow.core.records import (
    CONVERTERS,
    InvalidValueError,
    business_key,
    content_hash,
    version_number,
)
from thumpflow.hl7v2 import Message

_HL7_TIME = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?(?:([+-]\d{2})(\d{2}))?$"
)


def _iso_date(text: str) -> str:
    match = _HL7_TIME.match(text.strip())
    if match is None:
        return text
    return f"{match[1]}-{match[2]}-{match[3]}"


def _iso_datetime(text: str) -> str:
    match = _HL7_TIME.match(text.strip())
    if match is None or match[4] is None:
        return text
    iso = f"{match[1]}-{match[2]}-{match[3]}T{match[4]}:{match[5]}"
    if match[6] is not None:
        iso += f":{match[6]}"
        if match[7] is not None:
            iso += f".{match[7]}"
    if match[8] is not None:
        iso += f"{match[8]}:{match[9]}"
    return iso


_HL7_SYNTAX: dict[str, Callable[[str], str]] = {"date": _iso_date, "datetime": _iso_datetime}


def _typed(kind: str) -> Callable[[str], Any]:
    convert = CONVERTERS[kind]
    reformat = _HL7_SYNTAX.get(kind)
    if reformat is None:
        return convert
    return lambda text: convert(reformat(text))


class LedgerProjection:
    """A channel's `ledger` block compiled against its partner job's field types.

    `types` maps the partner job's declared field names to their schema types
    (empty without a partner job: every field is then kept as text);
    `version_field` is the partner job's, if it has one.
    """

    def __init__(
        self, ledger: Ledger, types: Mapping[str, str], version_field: str | None = None
    ) -> None:
        self._version = version_field
        self._fields = tuple(
            (name, path, _typed(types[name]) if name in types else None)
            for name, path in ledger.record.items()
        )
        self._key = tuple(ledger.business_key)

    def project(self, message: Message) -> tuple[str, str, int | None] | None:
        """(business key, content hash, version) of its record, or None (see the module)."""
        record: dict[str, Any] = {}
        for name, path, convert in self._fields:
            text = message.get(path)
            if convert is None:
                record[name] = text
            elif not text.strip():
                record[name] = None
            else:
                try:
                    record[name] = convert(text)
                except InvalidValueError:
                    return None
        for name in self._key:
            value = record[name]
            if value is None or value == "":
                return None
        version = None if self._version is None else version_number(record.get(self._version))
        return business_key(record, self._key), content_hash(record), version

"""Rewrite a field: the receiving system wants HL7 sex codes and no SSN.

PID-8 (administrative sex) arrives from the registration system as words
(`Female`, `Male`, ...) and is rewritten to table 0001 codes; PID-19 (SSN)
is cleared. The message the transform receives is shared with the engine
and never changed: the edit is made on `editable(event)`, a copy.
"""

from __future__ import annotations

from thumpflow.transform import Event, Message, TransformError, derive, editable

SEX_CODES = {"female": "F", "male": "M", "other": "O", "unknown": "U", "f": "F", "m": "M"}


def hl7_sex_no_ssn(event: Event, message: Message) -> list[Event]:
    sex = message.get("PID-8")
    code = SEX_CODES.get(sex.strip().lower()) if sex else "U"
    if code is None:
        raise TransformError("PID-8 (administrative sex) is not a known word or code", code="103")
    copy = editable(event)
    copy.set("PID-8", code)
    if copy.get("PID-19"):
        copy.set("PID-19", "")
    return [derive(event, copy.to_bytes(), purpose="rewritten")]

"""What a caller may see of patient data.

Patient data (names, identifiers, ordering keys derived from them, payloads)
is shown only to principals holding `read_patient_data`; everyone else gets a
fixed mask, so a viewer can tell a value exists without learning it.
"""

from __future__ import annotations

from thumpflow.core.access import Permission, Principal

MASK = "•••"


def shown(principal: Principal, value: str) -> str:
    """`value` for callers allowed patient data, the mask for the rest."""
    return value if principal.may(Permission.READ_PATIENT_DATA) else MASK

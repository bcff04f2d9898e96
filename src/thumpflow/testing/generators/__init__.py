"""Deterministic generators of realistic HL7 v2 messages, for tests and benchmarks.

Same arguments, same bytes: every generator is seeded. Demographics depend
only on `(patient_id, seed)`, so an A01, A08 and A03 for one patient describe
the same person. All names, numbers and addresses are invented.
Messages are HL7 v2.5.1, `|^~\\&` delimiters, CR segment separators, properly
escaped (employer and insurer names carry `\\T\\`, notes carry `\\F\\` and
`\\.br\\`), with a Z-segment; an ADT^A01 is about 1.8 KB.
"""

from thumpflow.testing.generators._adt import adt_a01, adt_a03, adt_a08
from thumpflow.testing.generators._oru import oru_r01

__all__ = ["adt_a01", "adt_a03", "adt_a08", "oru_r01"]

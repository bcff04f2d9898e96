"""Generated ORU^R01 messages: final laboratory results with reference ranges and flags.

Same arguments, same bytes; the patient is the one the ADT generators
describe for the same `(patient_id, seed)`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from thumpflow.hl7v2 import DEFAULT_DELIMITERS, escape
from thumpflow.testing.generators._common import (
    _DOCTORS,
    _EPOCH,
    _LABS,
    _c,
    _ids,
    _msh,
    _patient,
    _pid,
    _segment,
    _ts,
)


def oru_r01(
    patient_id: str | None = None,
    control_id: str | None = None,
    *,
    n_obx: int = 10,
    seed: int = 0,
    timestamp: datetime | None = None,
) -> bytes:
    """An ORU^R01 (final basic metabolic panel and blood count results) with
    `n_obx` numeric OBX segments (cycling through 12 analytes), reference
    ranges and abnormal flags, plus a trailing NTE comment."""
    pid, cid = _ids(patient_id, control_id, seed, "ORU_R01")
    p = _patient(pid, seed)
    rng = random.Random(f"oru:{p.rng_seed}:{cid}:{n_obx}")
    collected = _EPOCH + timedelta(minutes=rng.randrange(60 * 24 * 365))
    when = timestamp or collected + timedelta(minutes=rng.randrange(30, 240))
    order = f"ORD{rng.randrange(10**7):07d}"
    segments = [
        _msh(rng, "ORU^R01^ORU_R01", cid, when),
        _pid(p),
        _segment("ORC", "RE", _c(order, "EPIC"), _c(f"F{order[3:]}", "LAB"), "", "CM"),
        _segment(
            "OBR",
            "1",
            _c(order, "EPIC"),
            _c(f"F{order[3:]}", "LAB"),
            _c("80048", "Basic metabolic panel & CBC", "C4"),
            "",
            "",
            _ts(collected),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            _c(*rng.choice(_DOCTORS)),
            *([""] * 5),
            _ts(when),
            "",
            "",
            "F",
        ),
    ]
    for i in range(n_obx):
        code, name, unit, lo, hi, places = _LABS[i % len(_LABS)]
        span = hi - lo
        value = round(rng.uniform(lo - span * 0.3, hi + span * 0.3), places)
        flag = "H" if value > hi else "L" if value < lo else "N"
        segments.append(
            _segment(
                "OBX",
                str(i + 1),
                "NM",
                _c(code, name, "LN"),
                "",
                str(value),
                _c(unit, unit, "UCUM"),
                f"{lo}-{hi}",
                flag,
                "",
                "",
                "F",
                "",
                "",
                _ts(collected),
                "",
                "",
                "",
                _ts(when),
            )
        )
    segments.append(
        _segment(
            "NTE",
            "1",
            "L",
            escape("Specimen slightly hemolyzed; K+ may be elevated", DEFAULT_DELIMITERS),
        )
    )
    return ("\r".join(segments) + "\r").encode("utf-8")

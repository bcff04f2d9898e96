"""Generated ADT messages: A01 (admit), A08 (update) and A03 (discharge).

Same arguments, same bytes; an A01, A08 and A03 for one patient describe
the same person and the same stay (A08 three hours, A03 four days after
the admission unless `timestamp` is given).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from thumpflow.hl7v2 import DEFAULT_DELIMITERS, escape
from thumpflow.testing.generators._common import (
    _ALLERGIES,
    _ALLERGY_TYPES,
    _DIAGNOSES,
    _DOCTORS,
    _EPOCH,
    _FAMILY,
    _INSURERS,
    _SEVERITIES,
    _VITALS,
    _c,
    _ids,
    _msh,
    _patient,
    _pid,
    _pv1,
    _segment,
    _ts,
)


def _obx_vitals(rng: random.Random, n: int, when: datetime) -> list[str]:
    out = []
    for i, (code, name, unit, lo, hi, places) in enumerate(rng.sample(_VITALS, n), start=1):
        reading = round(rng.uniform(lo, hi), places)
        value = str(reading if places else int(reading))
        out.append(
            _segment(
                "OBX",
                str(i),
                "NM",
                _c(code, name, "LN"),
                "",
                value,
                _c(unit, unit, "UCUM"),
                "",
                "",
                "",
                "",
                "F",
                "",
                "",
                _ts(when),
            )
        )
    return out


def _adt(
    trigger: str,
    patient_id: str | None,
    control_id: str | None,
    seed: int,
    timestamp: datetime | None,
) -> bytes:
    pid, cid = _ids(patient_id, control_id, seed, f"ADT_{trigger}")
    p = _patient(pid, seed)
    rng = random.Random(f"adt:{trigger}:{p.rng_seed}:{cid}")
    admitted = _EPOCH + timedelta(minutes=random.Random(p.rng_seed).randrange(60 * 24 * 365))
    when = timestamp or admitted + timedelta(
        minutes={"A01": 0, "A08": 180, "A03": 60 * 24 * 4}[trigger]
    )
    discharged = when if trigger == "A03" else None
    city, state, zip_code = p.city
    kin_family = rng.choice(_FAMILY)
    dx_code, dx_text = rng.choice(_DIAGNOSES)
    allergies = rng.sample(_ALLERGIES, 2)
    ins_id, ins_name = rng.choice(_INSURERS)
    segments = [
        _msh(rng, f"ADT^{trigger}^{'ADT_A03' if trigger == 'A03' else 'ADT_A01'}", cid, when),
        _segment(
            "EVN",
            trigger,
            _ts(when),
            "",
            "",
            _c("MJONES", "Jones", "Mary", "", "", "", "RN"),
            _ts(when),
        ),
        _pid(p),
        _segment(
            "PD1",
            "",
            "",
            _c("Lakeshore Family Practice & Clinic", "", "LFP01"),
            _c(*rng.choice(_DOCTORS)),
        ),
        _segment(
            "NK1",
            "1",
            _c(kin_family, "Robin"),
            _c("SPO", "Spouse", "HL70063"),
            _c(p.street, "", city, state, zip_code, "USA"),
            _c("", "PRN", "PH", "", "1", "555", "0199"),
            "",
            _c("EC", "Emergency Contact", "HL70131"),
        ),
        _segment(
            "NK1",
            "2",
            _c(p.family, "Jamie"),
            _c("CHD", "Child", "HL70063"),
            _c("88 Ferry Rd", "", "Riverton", "WY", "82501", "USA"),
            _c("", "PRN", "CP", "", "1", "307", "5550123"),
        ),
        _pv1(rng, p, admitted, discharged),
        _segment(
            "PV2",
            "",
            _c("1", "Semi-private room"),
            _c(dx_code, dx_text, "I10"),
            "",
            "",
            "",
            "",
            "",
            "",
            "4",
        ),
        *_obx_vitals(rng, 2, when),
        *(
            _segment(
                "AL1",
                str(i),
                _c(t, _ALLERGY_TYPES[t], "HL70127"),
                _c(code, name, "RXNORM"),
                _c(sev, _SEVERITIES[sev], "HL70128"),
                reaction,
            )
            for i, (t, code, name, sev, reaction) in enumerate(allergies, start=1)
        ),
        _segment("DG1", "1", "", _c(dx_code, dx_text, "I10"), "", _ts(admitted), "A"),
        _segment(
            "GT1",
            "1",
            _c(p.account[3:], "", "", "HOSP"),
            _c(p.family, p.given),
            "",
            _c(p.street, "", city, state, zip_code, "USA"),
            _c("", "PRN", "PH", "", "1", p.phone[:3], p.phone[3:]),
            "",
            "",
            "",
            "",
            "SE",
            "",
            "",
            "",
            "",
            _c(p.employer),
        ),
        _segment(
            "IN1",
            "1",
            _c("PPO", "Preferred provider"),
            _c(ins_id, "", "", "", "NIIP"),
            _c(ins_name),
            _c("PO Box 4400", "", "Chicago", "IL", "60680", "USA"),
            "",
            _c("", "WPN", "PH", "", "1", "800", "5550100"),
            f"GRP{rng.randrange(10**6):06d}",
            "",
            "",
            _c(p.employer),
            "",
            "",
            "",
            "",
            _c(p.family, p.given),
            "SEL",
        ),
        _segment(
            "ZPV",
            "1",
            _c("Note", "Patient prefers morning calls | evenings ok", "Interpreter not needed")
            + "\\.br\\"
            + escape("Family visits after 5pm", DEFAULT_DELIMITERS),
            _c("VIP", "N"),
        ),
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


def adt_a01(
    patient_id: str | None = None,
    control_id: str | None = None,
    *,
    seed: int = 0,
    timestamp: datetime | None = None,
) -> bytes:
    """An ADT^A01 (admit) of about 1.8 KB: MSH, EVN, PID, PD1, NK1 x2, PV1,
    PV2, OBX x2, AL1 x2, DG1, GT1, IN1 and a ZPV Z-segment. Defaults for
    `patient_id`, `control_id` and `timestamp` derive from `seed`."""
    return _adt("A01", patient_id, control_id, seed, timestamp)


def adt_a08(
    patient_id: str | None = None,
    control_id: str | None = None,
    *,
    seed: int = 0,
    timestamp: datetime | None = None,
) -> bytes:
    """An ADT^A08 (update patient information), same layout as `adt_a01`."""
    return _adt("A08", patient_id, control_id, seed, timestamp)


def adt_a03(
    patient_id: str | None = None,
    control_id: str | None = None,
    *,
    seed: int = 0,
    timestamp: datetime | None = None,
) -> bytes:
    """An ADT^A03 (discharge), same layout as `adt_a01`, with PV1-36 and PV1-45 valued."""
    return _adt("A03", patient_id, control_id, seed, timestamp)

"""Deterministic generators of realistic HL7 v2 messages, for tests and benchmarks.

Same arguments, same bytes: every generator is seeded. Demographics depend
only on `(patient_id, seed)`, so an A01, A08 and A03 for one patient describe
the same person. All names, numbers and addresses are invented.
Messages are HL7 v2.5.1, `|^~\\&` delimiters, CR segment separators, properly
escaped (employer and insurer names carry `\\T\\`, notes carry `\\F\\` and
`\\.br\\`), with a Z-segment; an ADT^A01 is about 1.8 KB.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from thumpflow.hl7v2 import DEFAULT_DELIMITERS, escape

_SENDERS = [
    ("EPIC", "STMARYS"),
    ("CERNER", "GENERAL_HOSP"),
    ("MEDITECH", "NORTHVALLEY"),
    ("ALLSCRIPTS", "RIVERSIDE_CLINIC"),
    ("ATHENA", "LAKESHORE_MED"),
]
_RECEIVERS = [("THUMPFLOW", "HUB"), ("BEDBOARD", "OPS"), ("LIS", "CENTRAL_LAB")]
_FAMILY = [
    "Smith",
    "Johnson",
    "Garcia",
    "O'Brien",
    "Nguyen",
    "Okafor",
    "Müller",
    "Kowalski",
    "Rossi",
    "Haddad",
    "Lindqvist",
    "Tanaka",
    "Smith-Jones",
    "Fernández",
    "Patel",
    "Dubois",
]
_GIVEN = {
    "F": ["Mary", "Aisha", "Sofia", "Ingrid", "Mei", "Chloé", "Fatima", "Emma", "Olivia"],
    "M": ["James", "Omar", "Lucas", "Björn", "Kenji", "Mateo", "Noah", "Liam", "Ravi"],
}
_STREETS = ["Maple Ave", "Oak St", "Elm Rd", "Harbor Blvd", "Cedar Ln", "Main St", "Pine Ct"]
_CITIES = [
    ("Springfield", "IL", "62701"),
    ("Riverton", "WY", "82501"),
    ("Fairview", "OR", "97024"),
    ("Madison", "WI", "53703"),
    ("Salem", "MA", "01970"),
]
_EMPLOYERS = ["Johnson & Johnson", "Barnes & Noble", "Procter & Gamble", "City of Springfield"]
_INSURERS = [
    ("BCBS01", "Blue Cross & Blue Shield"),
    ("AETNA", "Aetna Health Inc"),
    ("UHC", "UnitedHealthcare"),
    ("MCR", "Medicare Part A & B"),
]
_DIAGNOSES = [
    ("I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"),
    ("J18.9", "Pneumonia, unspecified organism"),
    ("E11.65", "Type 2 diabetes mellitus with hyperglycemia"),
    ("N39.0", "Urinary tract infection, site not specified"),
    ("K35.80", "Unspecified acute appendicitis"),
]
_ALLERGIES = [
    ("DA", "70618", "Penicillin", "SV", "Hives"),
    ("DA", "2670", "Codeine", "MO", "Nausea"),
    ("FA", "227493005", "Cashew nuts", "SV", "Anaphylaxis"),
    ("EA", "111088007", "Latex", "MI", "Rash"),
]
_ALLERGY_TYPES = {"DA": "Drug allergy", "FA": "Food allergy", "EA": "Environmental allergy"}
_SEVERITIES = {"SV": "Severe", "MO": "Moderate", "MI": "Mild"}
_VITALS = [
    ("8867-4", "Heart rate", "/min", 55, 110, 0),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 95, 165, 0),
    ("8310-5", "Body temperature", "Cel", 36.1, 39.2, 1),
    ("59408-5", "Oxygen saturation", "%", 88, 100, 0),
    ("29463-7", "Body weight", "kg", 48, 130, 1),
]
_LABS = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 110, 0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0),
    ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29, 0),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 0),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 1),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 1),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood", "%", 36, 50, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood", "10*3/uL", 4.5, 11.0, 1),
    ("777-3", "Platelets [#/volume] in Blood", "10*3/uL", 150, 400, 0),
]
_DOCTORS = [
    ("1234567890", "Chen", "Linda", "M", "MD"),
    ("2345678901", "Okonkwo", "Daniel", "A", "MD"),
    ("3456789012", "Svensson", "Karin", "", "DO"),
    ("4567890123", "Ramirez", "Jorge", "L", "MD"),
]
_EPOCH = datetime(2024, 3, 1, 6, 0, 0)


def _c(*components: object) -> str:
    """Components escaped and joined with `^`."""
    return "^".join(escape(str(c), DEFAULT_DELIMITERS) for c in components)


def _ts(t: datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S")


def _segment(sid: str, *fields: str) -> str:
    return "|".join((sid, *fields)).rstrip("|")


@dataclass(frozen=True, slots=True)
class _Patient:
    mrn: str
    family: str
    given: str
    middle: str
    sex: str
    birth: str
    street: str
    city: tuple[str, str, str]
    phone: str
    ssn: str
    employer: str
    account: str
    rng_seed: str


def _patient(patient_id: str, seed: int) -> _Patient:
    rng = random.Random(f"patient:{patient_id}:{seed}")
    sex = rng.choice("FM")
    born = datetime(1930, 1, 1) + timedelta(days=rng.randrange(33000))
    return _Patient(
        mrn=patient_id,
        family=rng.choice(_FAMILY),
        given=rng.choice(_GIVEN[sex]),
        middle=rng.choice("ABCDEJKLMR"),
        sex=sex,
        birth=born.strftime("%Y%m%d"),
        street=f"{rng.randrange(10, 9999)} {rng.choice(_STREETS)}",
        city=rng.choice(_CITIES),
        phone=f"{rng.randrange(200, 999)}{rng.randrange(200, 999)}{rng.randrange(10**4):04d}",
        ssn=f"{rng.randrange(100, 899)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}",
        employer=rng.choice(_EMPLOYERS),
        account=f"ACC{rng.randrange(10**8):08d}",
        rng_seed=f"{patient_id}:{seed}",
    )


def _ids(patient_id: str | None, control_id: str | None, seed: int, kind: str) -> tuple[str, str]:
    rng = random.Random(f"ids:{kind}:{seed}")
    pid = patient_id if patient_id is not None else f"MRN{rng.randrange(10**7):07d}"
    cid = control_id if control_id is not None else f"{kind[:3]}{rng.randrange(10**9):09d}"
    return pid, cid


def _msh(rng: random.Random, msg_type: str, control_id: str, when: datetime) -> str:
    """MSH for `msg_type` given as `TYPE^TRIGGER^STRUCTURE`."""
    app, fac = rng.choice(_SENDERS)
    rapp, rfac = rng.choice(_RECEIVERS)
    return _segment(
        "MSH",
        "^~\\&",
        app,
        _c(fac, f"2.16.840.1.113883.3.{rng.randrange(1000, 9999)}", "ISO"),
        rapp,
        rfac,
        _ts(when),
        "",
        _c(*msg_type.split("^")),
        escape(control_id, DEFAULT_DELIMITERS),
        "P",
        "2.5.1",
        "",
        "",
        "AL",
        "NE",
        "USA",
        "UNICODE UTF-8",
    )


def _pid(p: _Patient) -> str:
    city, state, zip_code = p.city
    return _segment(
        "PID",
        "1",
        "",
        "~".join(
            (
                _c(p.mrn, "", "", "HOSP", "MR"),
                _c(p.ssn.replace("-", ""), "", "", "SSA", "SS"),
                _c(p.account, "", "", "HOSP", "AN"),
            )
        ),
        "",
        _c(p.family, p.given, p.middle, "", "", "", "L"),
        _c("Walker", "Ann", "", "", "", "", "M"),
        p.birth,
        p.sex,
        "",
        _c("2106-3", "White", "CDCREC"),
        _c(p.street, "Apt 4B", city, state, zip_code, "USA", "H"),
        "",
        _c("", "PRN", "PH", "", "1", p.phone[:3], p.phone[3:]),
        _c("", "WPN", "PH", "", "1", "555", "0142"),
        _c("eng", "English", "ISO6392"),
        _c("M", "Married", "HL70002"),
        "",
        _c(p.account, "", "", "HOSP", "AN"),
        p.ssn,
    )


def _pv1(rng: random.Random, p: _Patient, admitted: datetime, discharged: datetime | None) -> str:
    doc = rng.choice(_DOCTORS)
    ref = rng.choice(_DOCTORS)
    bed = _c(
        f"{rng.choice('NSEW')}{rng.randrange(1, 6)}", f"{rng.randrange(100, 499)}", "A", "MAIN"
    )
    return _segment(
        "PV1",
        "1",
        "I",
        bed,
        "E",
        "",
        "",
        _c(*doc),
        _c(*ref),
        "",
        "MED",
        "",
        "",
        "",
        "7",
        "",
        "",
        _c(*doc),
        "IP",
        _c(f"V{p.account[3:]}", "", "", "HOSP", "VN"),
        *([""] * 16),
        "01" if discharged else "",
        *([""] * 7),
        _ts(admitted),
        _ts(discharged) if discharged else "",
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

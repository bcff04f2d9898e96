"""What every generated message shares: the invented people, places and codes, and the
MSH, PID and PV1 segments built from them.

Everything is a pure function of its arguments: demographics depend only on
`(patient_id, seed)` (so messages for one patient describe the same
person), and default ids derive from the seed. All names, numbers and
addresses are invented; no real patient data is used or produced.
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

"""Encounter.class codes and the setting each says for a pain score (clinical rules I4: hospitalized or not).

Two vocabularies arrive in real feeds: HL7 v3 ActCode (the FHIR R4 binding; input profile,
"hospitalized") and the HL7 v2 table 0004 "Patient Class" that interfaces built on v2 ADT messages
carry over (PV1-2; code system http://terminology.hl7.org/CodeSystem/v2-0004; issue 9).
"""

from __future__ import annotations

HOSPITALIZED = "hospitalized"
AMBULATORY = "ambulatory"
OBSERVATION = "observation"

# v3 ActCode → setting (input profile, "hospitalized": IMP / ACUTE / NONAC hospitalized; AMB / EMER /
# VR / HH not; OBSENC observation stay → needs review).
ACT_CODE = {
    "IMP": HOSPITALIZED,  # inpatient encounter
    "ACUTE": HOSPITALIZED,  # inpatient acute
    "NONAC": HOSPITALIZED,  # inpatient non-acute
    "AMB": AMBULATORY,  # ambulatory
    "EMER": AMBULATORY,  # emergency
    "VR": AMBULATORY,  # virtual
    "HH": AMBULATORY,  # home health
    "OBSENC": OBSERVATION,  # observation encounter
}

# HL7 v2 table 0004 → setting. Read like their v3 counterparts: I (inpatient) as IMP; E (emergency)
# as EMER; O (outpatient), P (preadmit: a visit before an admission, not yet admitted) and R
# (recurring patient: a series of outpatient visits) as AMB. B (obstetrics), C (commercial account),
# N (not applicable) and U (unknown) say nothing about admission: no setting (the score's setting
# stays unknown and the answer asks for it, never a guess).
PATIENT_CLASS = {
    "I": HOSPITALIZED,  # Inpatient
    "E": AMBULATORY,  # Emergency
    "O": AMBULATORY,  # Outpatient
    "P": AMBULATORY,  # Preadmit
    "R": AMBULATORY,  # Recurring patient
}
# In words, for evidence lines ("inpatient stay").
PATIENT_CLASS_WORDS = {
    "I": "inpatient stay",
    "E": "emergency visit",
    "O": "clinic visit",
    "P": "pre-admission visit",
    "R": "recurring visit",
    "B": "obstetrics",
}

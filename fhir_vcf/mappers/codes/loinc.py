"""LOINC codes the mappers recognise, each with its source (see /work/shared/docs/input-profile.md)."""

from __future__ import annotations

# Pain intensity (input profile, "pain score"). The scale decides how a value is read.
PAIN_NRS = "72514-3"  # Pain severity - 0-10 verbal numeric rating [Score] - Reported
PAIN_VAS = "38214-3"  # Pain severity [Score] Visual analog score (0-100 mm, sometimes 0-10 cm)
PAIN_SEVERITY = "38208-5"  # Pain severity - Reported; read only when the value is on a 0-10 scale
PAIN_SCORES = {PAIN_NRS: "NRS", PAIN_SEVERITY: "NRS", PAIN_VAS: "VAS"}
# The answers of LOINC answer list LL2335-9 "Numeric rating scale from 0-10" (the answer list of
# 72514-3), as a `valueCodeableConcept` (input profile, "pain score"). Source: LOINC LL2335-9
# (https://loinc.org/LL2335-9/). The input profile writes "LA6111-4 "0" … LA6114-8 "10"", but in
# the list LA6114-8 is "3" and "10" is LA13942-0; the profile's own instruction ("use the code's
# numeric display") decides a code not listed here, and a listed code whose display disagrees is
# not read at all.
PAIN_ANSWERS = {
    "LA6111-4": 0.0,
    "LA6112-2": 1.0,
    "LA6113-0": 2.0,
    "LA6114-8": 3.0,
    "LA6115-5": 4.0,
    "LA10137-0": 5.0,
    "LA10138-8": 6.0,
    "LA10139-6": 7.0,
    "LA10140-4": 8.0,
    "LA10141-2": 9.0,
    "LA13942-0": 10.0,
}
# The ordinal value of a coded answer (FHIR R4 core extension "ordinalValue" on a Coding; input profile,
# "pain score": "or an ordinal-value extension").
ORDINAL_VALUE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

# Bone density (input profile, "continuum of care" (a)).
DXA_REPORT = "83311-1"  # DXA Skeletal system Study report
T_SCORES = {
    "38267-1": "T-score, femoral neck (DXA)",
    "38264-8": "T-score, hip (DXA)",
    "38263-0": "T-score, lumbar spine (DXA)",
    "80946-7": "T-score, hip (DXA)",
    "80948-3": "T-score, femoral neck (DXA)",
    "38265-5": "T-score, radius (DXA)",
}

# International normalized ratio (input profile, "coagulopathy"; clinical rules X6).
INR = {
    "6301-6": "INR in Platelet poor plasma by Coagulation assay",
    "34714-6": "INR in Blood by Coagulation assay",
    "38875-1": "INR in Platelet poor plasma or blood by Coagulation assay",
}

# Pregnancy status (LOINC 82810-3, US Core pregnancy status): a coded answer beside Conditions (X3).
PREGNANCY_STATUS = "82810-3"

"""Local finding codes, system `urn:fhir-vcf:finding` (input profile, "Local codes")."""

from __future__ import annotations

# Imaging findings (input profile, "Local codes"): a finding Observation carries bodySite = the
# vertebra and derivedFrom / partOf = the ImagingStudy.
MARROW_EDEMA = "marrow-edema"  # boolean
INCREASED_UPTAKE = "increased-uptake"  # boolean
HEIGHT_LOSS_PERCENT = "height-loss-percent"  # Quantity, UCUM %
HEIGHT_LOSS_PROGRESSION = "height-loss-progression"  # boolean
RETROPULSION = "retropulsion"  # boolean
CANAL_COMPROMISE = "canal-compromise"  # boolean
VERTEBRA_PLANA = "vertebra-plana"  # boolean
INTRAVERTEBRAL_CLEFT = "intravertebral-cleft"  # boolean
IMAGING_FINDINGS = frozenset({
    MARROW_EDEMA, INCREASED_UPTAKE, HEIGHT_LOSS_PERCENT, HEIGHT_LOSS_PROGRESSION, RETROPULSION,
    CANAL_COMPROMISE, VERTEBRA_PLANA, INTRAVERTEBRAL_CLEFT,
})


RDQ_SCORE = "rdq-score"  # integer 0-24, Roland-Morris Disability Questionnaire total
PAIN_AT_FRACTURE_LEVEL = "pain-at-fracture-level"  # boolean; false = pain attributed elsewhere (X1)
NEUROLOGIC_DEFICIT = "neurologic-deficit"  # boolean (X9)
SPINAL_INSTABILITY = "spinal-instability"  # boolean (X7)


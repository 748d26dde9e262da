"""Code system URIs and the short names the facts use (input profile, "System URIs")."""

from __future__ import annotations

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "urn:oid:2.16.840.1.113883.6.285"
HCPCS_CMS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_CODE_OLD = "http://hl7.org/fhir/v3/ActCode"
# HL7 v2 table 0004 Patient Class, as some interfaces fill Encounter.class (issue 9); the old URI too.
PATIENT_CLASS = "http://terminology.hl7.org/CodeSystem/v2-0004"
PATIENT_CLASS_OLD = "http://hl7.org/fhir/v2/0004"
FINDING = "urn:fhir-vcf:finding"

_ALIASES = {
    ICD10CM: "icd-10-cm",
    SNOMED: "snomed",
    LOINC: "loinc",
    RXNORM: "rxnorm",
    CPT: "cpt",
    HCPCS: "hcpcs",
    HCPCS_CMS: "hcpcs",
    DICOM: "dicom",
    ACT_CODE: "act-code",
    ACT_CODE_OLD: "act-code",
    PATIENT_CLASS: "v2-0004",
    PATIENT_CLASS_OLD: "v2-0004",
    FINDING: "finding",
}

# The names used in evidence lines ("ICD-10-CM M80.08XA").
VOCABULARY_NAMES = {
    "icd-10-cm": "ICD-10-CM",
    "snomed": "SNOMED CT",
    "loinc": "LOINC",
    "rxnorm": "RxNorm",
    "cpt": "CPT",
    "hcpcs": "HCPCS",
    "dicom": "DICOM",
    "act-code": "ActCode",
    "v2-0004": "HL7 v2 Patient Class",
    "finding": "finding",
}


def system_alias(system: str | None) -> str:
    """Short name of a code system; an unknown system keeps its URI (never silently matched)."""
    if not system:
        return ""
    return _ALIASES.get(system.rstrip("/"), system)

"""Tiny builders for FHIR R4 test records (plain dicts), shared by the mapper tests.

Every builder returns a resource dict; `record(...)` wraps them (with a Patient when none is given)
in a collection Bundle and loads it with `load_document`, so tests exercise the real validation.
Keep builders small and explicit: a test should read like the record it describes.
"""

from __future__ import annotations

import base64
from typing import Any

from fhir_vcf.mappers.codes.systems import CPT, DICOM, FINDING, ICD10CM, LOINC, RXNORM, SNOMED
from fhir_vcf.record import PatientRecord, load_document

PATIENT_ID = "p1"
SUBJECT = {"reference": f"Patient/{PATIENT_ID}"}

SYSTEMS = {
    "icd": ICD10CM,
    "icd-10-cm": ICD10CM,
    "snomed": SNOMED,
    "loinc": LOINC,
    "rxnorm": RXNORM,
    "cpt": CPT,
    "dicom": DICOM,
    "finding": FINDING,
}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A Coding; `system` may be a short name ("icd", "snomed", "loinc", "cpt", "finding", ...)."""
    out: dict[str, Any] = {"system": SYSTEMS.get(system, system), "code": code}
    if display:
        out["display"] = display
    return out


def concept(*codings: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


def patient(id: str = PATIENT_ID, *, gender: str | None = "female", birth_date: str | None = "1945-03-01") -> dict:
    out: dict[str, Any] = {"resourceType": "Patient", "id": id}
    if gender:
        out["gender"] = gender
    if birth_date:
        out["birthDate"] = birth_date
    return out


def condition(
    id: str,
    *codings: dict[str, Any],
    text: str | None = None,
    onset: str | None = None,
    onset_period: str | None = None,
    onset_string: str | None = None,
    recorded: str | None = None,
    body_sites: list[dict[str, Any]] | tuple = (),
    clinical: str | None = "active",
    verification: str | None = None,
    notes: list[str] | tuple = (),
) -> dict[str, Any]:
    """A Condition; `body_sites` are CodeableConcepts (use `vertebra("T12")` or `concept(text=...)`)."""
    out: dict[str, Any] = {
        "resourceType": "Condition", "id": id, "subject": SUBJECT, "code": concept(*codings, text=text)
    }
    if clinical:
        out["clinicalStatus"] = concept(
            coding("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)
        )
    if verification:
        out["verificationStatus"] = concept(
            coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)
        )
    if onset:
        out["onsetDateTime"] = onset
    if onset_period:
        out["onsetPeriod"] = {"start": onset_period}
    if onset_string:
        out["onsetString"] = onset_string
    if recorded:
        out["recordedDate"] = recorded
    if body_sites:
        out["bodySite"] = list(body_sites)
    if notes:
        out["note"] = [{"text": n} for n in notes]
    return out


# SNOMED CT vertebra codes (input profile, "level(s)").
VERTEBRA_SNOMED = {
    "T1": "64864005", "T2": "53733008", "T3": "1626008", "T4": "73071006", "T5": "56401006",
    "T6": "45296009", "T7": "62487009", "T8": "11068009", "T9": "82687006", "T10": "7610001",
    "T11": "12989004", "T12": "23215003", "L1": "66794005", "L2": "14293000", "L3": "36470004",
    "L4": "11994002", "L5": "49668003",
}


def vertebra(level: str, *, display: str | None = None) -> dict[str, Any]:
    """A bodySite CodeableConcept with the SNOMED vertebra code for `level`."""
    return concept(coding("snomed", VERTEBRA_SNOMED[level], display))


def vertebra_coding(level: str, *, display: str | None = None) -> dict[str, Any]:
    return coding("snomed", VERTEBRA_SNOMED[level], display)


def imaging_study(
    id: str,
    modality: str,
    started: str,
    *,
    series: list[dict[str, Any]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """An ImagingStudy; `series` items are from `series_(...)` (defaults to one series of `modality`)."""
    out: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": id,
        "status": "available",
        "subject": SUBJECT,
        "modality": [coding("dicom", modality)],
        "started": started,
        "series": series if series is not None else [series_(modality)],
    }
    if description:
        out["description"] = description
    return out


_series_counter = iter(range(1, 1_000_000))


def series_(modality: str, *, body_site: dict[str, Any] | None = None, description: str | None = None) -> dict:
    out: dict[str, Any] = {"uid": f"1.2.3.{next(_series_counter)}", "modality": coding("dicom", modality)}
    if body_site:
        out["bodySite"] = body_site
    if description:
        out["description"] = description
    return out


def diagnostic_report(
    id: str,
    *codings: dict[str, Any],
    text: str | None = None,
    effective: str | None = None,
    issued: str | None = None,
    conclusion: str | None = None,
    studies: list[str] | tuple = (),
    results: list[str] | tuple = (),
    category: str | None = None,
    presented_text: str | None = None,
    status: str = "final",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": id,
        "status": status,
        "subject": SUBJECT,
        "code": concept(*codings, text=text) if (codings or text) else concept(text="report"),
    }
    if category:
        out["category"] = [concept(text=category)]
    if effective:
        out["effectiveDateTime"] = effective
    if issued:
        out["issued"] = issued
    if conclusion:
        out["conclusion"] = conclusion
    if studies:
        out["imagingStudy"] = [ref(s) for s in studies]
    if results:
        out["result"] = [ref(r) for r in results]
    if presented_text:
        data = base64.b64encode(presented_text.encode()).decode()
        out["presentedForm"] = [{"contentType": "text/plain", "data": data}]
    return out


def observation(
    id: str,
    *codings: dict[str, Any],
    text: str | None = None,
    effective: str | None = None,
    value: Any = None,
    unit: str | None = None,
    body_site: dict[str, Any] | None = None,
    derived_from: list[str] | tuple = (),
    part_of: list[str] | tuple = (),
    encounter: str | None = None,
    notes: list[str] | tuple = (),
    category: str | None = None,
    status: str = "final",
) -> dict[str, Any]:
    """An Observation; `value` picks valueBoolean / valueInteger / valueQuantity (with `unit`) / valueString."""
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id,
        "status": status,
        "subject": SUBJECT,
        "code": concept(*codings, text=text),
    }
    if effective:
        out["effectiveDateTime"] = effective
    if isinstance(value, bool):
        out["valueBoolean"] = value
    elif isinstance(value, int) and unit is None:
        out["valueInteger"] = value
    elif isinstance(value, int | float):
        out["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    elif isinstance(value, str):
        out["valueString"] = value
    if body_site:
        out["bodySite"] = body_site
    if derived_from:
        out["derivedFrom"] = [ref(r) for r in derived_from]
    if part_of:
        out["partOf"] = [ref(r) for r in part_of]
    if encounter:
        out["encounter"] = ref(encounter)
    if notes:
        out["note"] = [{"text": n} for n in notes]
    if category:
        out["category"] = [
            concept(coding("http://terminology.hl7.org/CodeSystem/observation-category", category))
        ]
    return out


def finding(id: str, code: str, value: Any, *, level: str | None = None, study: str | None = None,
            effective: str | None = None, unit: str | None = None) -> dict[str, Any]:
    """A `urn:fhir-vcf:finding` Observation at a vertebra, derived from an ImagingStudy."""
    if code == "height-loss-percent" and unit is None:
        unit = "%"
    return observation(
        id,
        coding("finding", code),
        effective=effective,
        value=value,
        unit=unit,
        body_site=vertebra(level) if level else None,
        derived_from=[study] if study else (),
    )


def service_request(
    id: str,
    *codings: dict[str, Any],
    text: str | None = None,
    status: str = "active",
    intent: str = "order",
    authored: str | None = None,
    body_sites: list[dict[str, Any]] | tuple = (),
    reasons: list[str] | tuple = (),
    quantity: float | None = None,
    notes: list[str] | tuple = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": id,
        "status": status,
        "intent": intent,
        "subject": SUBJECT,
        "code": concept(*codings, text=text),
    }
    if authored:
        out["authoredOn"] = authored
    if body_sites:
        out["bodySite"] = list(body_sites)
    if reasons:
        out["reasonReference"] = [ref(r) for r in reasons]
    if quantity is not None:
        out["quantityQuantity"] = {"value": quantity}
    if notes:
        out["note"] = [{"text": n} for n in notes]
    return out


def encounter(id: str, class_code: str, *, start: str | None = None, end: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": id,
        "status": "finished",
        "subject": SUBJECT,
        "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", class_code),
    }
    if start or end:
        out["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    return out


def medication_request(id: str, *codings: dict[str, Any], text: str | None = None, authored: str | None = None,
                       status: str = "active") -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": id,
        "status": status,
        "intent": "order",
        "subject": SUBJECT,
        "medicationCodeableConcept": concept(*codings, text=text),
    }
    if authored:
        out["authoredOn"] = authored
    return out


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def record(*resources: dict[str, Any], with_patient: bool = True) -> PatientRecord:
    """The PatientRecord of these resources (a default female Patient is added unless one is given)."""
    items = list(resources)
    if with_patient and not any(r["resourceType"] == "Patient" for r in items):
        items.insert(0, patient())
    (only,) = load_document(bundle(*items), source="test")
    return only

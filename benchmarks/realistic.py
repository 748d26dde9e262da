"""Realistic records for the benchmarks: the samples, re-identified and grown with years of ordinary care.

A real EHR export of a patient with a vertebral fracture is mostly history the rules read past:
visits, vital signs, lab panels and their reports, prescriptions, the odd radiology report and
problem-list entry. The records here are built that way, from the sample bundles (each patient
re-identified: new ids for the Patient and every resource, references rewritten), grown with
resources of the types the mappers do read, not padded with types the loader skips. Dates of the
history run back from a week before the as-of date over `years` years; nothing is dated after it.

    from benchmarks.realistic import record_bundle, population
    bundle = record_bundle(1000)             # one patient, 1,000 resources, as a collection Bundle
    for patient, lines in population(1000, 100): ...   # NDJSON lines (bytes) per patient

Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
AS_OF = date(2025, 6, 30)

_LOINC = "http://loinc.org"
_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_SNOMED = "http://snomed.info/sct"
_ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
_UCUM = "http://unitsofmeasure.org"

# (LOINC, display, unit, low, high) of the vital signs and labs a primary-care history is made of.
_VITALS = [
    ("8867-4", "Heart rate", "/min", 55, 95),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 105, 160),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 60, 95),
    ("29463-7", "Body weight", "kg", 48, 95),
    ("8310-5", "Body temperature", "Cel", 36, 38),
    ("9279-1", "Respiratory rate", "/min", 12, 20),
]
_LABS = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 160),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.4),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11, 16),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 134, 146),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.4, 10.4),
]
_PANELS = [
    ("58410-2", "CBC panel - Blood by Automated count", "Complete blood count within normal limits."),
    ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma",
     "Metabolic panel unremarkable apart from a mildly raised glucose."),
    ("57698-3", "Lipid panel with direct LDL - Serum or Plasma", "LDL above goal; statin continued."),
]
_RADIOLOGY = [
    ("36643-5", "XR Chest 2 Views", "Chest radiograph, two views. Lungs are clear. Heart size is normal. "
     "No pleural effusion or pneumothorax. IMPRESSION: No acute cardiopulmonary process."),
    ("37362-1", "XR Knee Views", "Right knee, three views. Moderate medial compartment joint space narrowing "
     "with marginal osteophytes. No fracture or effusion. IMPRESSION: Moderate osteoarthritis."),
    ("24558-9", "CT Abdomen and Pelvis W contrast", "CT abdomen and pelvis with contrast. The liver, spleen, "
     "pancreas and kidneys are unremarkable. Sigmoid diverticulosis without diverticulitis. "
     "IMPRESSION: No acute abdominal or pelvic abnormality."),
]
_DRUGS = [
    ("314076", "lisinopril 10 MG Oral Tablet", "10 mg by mouth once daily"),
    ("617312", "atorvastatin 20 MG Oral Tablet", "20 mg by mouth at bedtime"),
    ("860975", "metformin hydrochloride 500 MG Oral Tablet", "500 mg by mouth twice daily with meals"),
    ("197361", "amlodipine 5 MG Oral Tablet", "5 mg by mouth once daily"),
    ("198211", "simvastatin 40 MG Oral Tablet", "40 mg by mouth once daily"),
]
_PROBLEMS = [
    ("I10", "Essential (primary) hypertension", "38341003"),
    ("E11.9", "Type 2 diabetes mellitus without complications", "44054006"),
    ("E78.5", "Hyperlipidemia, unspecified", "55822004"),
    ("M17.11", "Unilateral primary osteoarthritis, right knee", "239873007"),
]
_VISITS = [("AMB", "Primary care follow-up"), ("AMB", "Annual wellness visit"), ("AMB", "Nurse visit"),
           ("EMER", "Emergency department visit"), ("AMB", "Telephone consultation")]

# The share of each kind in the grown history (out of 20).
_MIX = ["vital"] * 7 + ["lab"] * 4 + ["encounter"] * 3 + ["rx"] * 3 + ["panel"] * 1 + ["radiology", "problem"]


def sample_bundles() -> list[dict[str, Any]]:
    """The single-patient sample Bundles, in name order."""
    bundles = []
    for path in sorted(SAMPLES.glob("*.json")):
        if path.name == "expected.json":
            continue
        bundle = json.loads(path.read_text())
        if sum(e.get("resource", {}).get("resourceType") == "Patient" for e in bundle.get("entry", [])) == 1:
            bundles.append(bundle)
    return bundles


def reidentify(bundle: dict[str, Any], suffix: str) -> dict[str, Any]:
    """A copy with every resource id (and every reference and fullUrl to it) made unique by `suffix`,
    and the patient's name and identifiers changed."""
    bundle = copy.deepcopy(bundle)
    renamed: dict[str, str] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if isinstance(resource.get("id"), str):
            old = f"{resource['resourceType']}/{resource['id']}"
            resource["id"] = f"{resource['id']}-{suffix}"
            renamed[old] = f"{resource['resourceType']}/{resource['id']}"
        if resource["resourceType"] == "Patient":
            resource["name"] = [{"family": f"Doe{suffix}", "given": ["Alex"]}]
            resource["identifier"] = [{"system": "urn:example:mrn", "value": f"MRN-{suffix}"}]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"reference", "fullUrl"} and isinstance(value, str):
                    for old, new in renamed.items():
                        if value.endswith(old):
                            node[key] = value[: len(value) - len(old)] + new
                            break
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(bundle)
    return bundle


def history(patient_ref: str, count: int, *, seed: int, years: int = 5, as_of: date = AS_OF) -> list[dict[str, Any]]:
    """`count` resources of ordinary care over `years` years before `as_of` (a week before, at the latest)."""
    rng = random.Random(seed)
    subject = {"reference": patient_ref}
    tag = patient_ref.rsplit("/", 1)[-1]
    made: list[dict[str, Any]] = []
    span = years * 365
    encounter_ref: str | None = None
    for i in range(count):
        when = as_of - timedelta(days=7 + (i * span) // max(count, 1) + rng.randint(0, 3))
        day = when.isoformat()
        stamp = f"{day}T{9 + rng.randint(0, 7):02d}:{rng.randint(0, 59):02d}:00Z"
        kind = _MIX[rng.randrange(len(_MIX))]
        rid = f"h{i}-{tag}"
        if kind == "vital" or kind == "lab":
            code, display, unit, low, high = rng.choice(_VITALS if kind == "vital" else _LABS)
            value = round(rng.uniform(low, high), 1)
            obs: dict[str, Any] = {
                "resourceType": "Observation", "id": rid, "status": "final",
                "category": [{"coding": [{"system": _OBS_CAT,
                                          "code": "vital-signs" if kind == "vital" else "laboratory"}]}],
                "code": {"coding": [{"system": _LOINC, "code": code, "display": display}], "text": display},
                "subject": subject, "effectiveDateTime": stamp, "issued": stamp.replace("Z", ".000Z"),
                "valueQuantity": {"value": value, "unit": unit, "system": _UCUM, "code": unit},
            }
            if encounter_ref:
                obs["encounter"] = {"reference": encounter_ref}
            made.append(obs)
        elif kind == "encounter":
            cls, text = rng.choice(_VISITS)
            made.append({"resourceType": "Encounter", "id": rid, "status": "finished",
                         "class": {"system": _ACT, "code": cls}, "type": [{"text": text}], "subject": subject,
                         "period": {"start": stamp, "end": stamp.replace(":00Z", ":30Z")},
                         "reasonCode": [{"text": "Routine follow-up"}]})
            encounter_ref = f"Encounter/{rid}"
        elif kind == "rx":
            code, display, sig = rng.choice(_DRUGS)
            made.append({"resourceType": "MedicationRequest", "id": rid,
                         "status": "completed" if rng.random() < 0.6 else "active", "intent": "order",
                         "medicationCodeableConcept": {
                             "coding": [{"system": _RXNORM, "code": code, "display": display}], "text": display},
                         "subject": subject, "authoredOn": day, "dosageInstruction": [{"text": sig}]})
        elif kind == "panel":
            code, display, conclusion = rng.choice(_PANELS)
            made.append({"resourceType": "DiagnosticReport", "id": rid, "status": "final",
                         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                                   "code": "LAB"}]}],
                         "code": {"coding": [{"system": _LOINC, "code": code, "display": display}]},
                         "subject": subject, "effectiveDateTime": stamp, "issued": stamp,
                         "conclusion": conclusion})
        elif kind == "radiology":
            code, display, text = rng.choice(_RADIOLOGY)
            made.append({"resourceType": "DiagnosticReport", "id": rid, "status": "final",
                         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                                   "code": "RAD"}]}],
                         "code": {"coding": [{"system": _LOINC, "code": code, "display": display}], "text": display},
                         "subject": subject, "effectiveDateTime": stamp, "issued": stamp, "conclusion": text})
        else:
            icd, display, sct = rng.choice(_PROBLEMS)
            made.append({"resourceType": "Condition", "id": rid,
                         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                        "code": "active"}]},
                         "verificationStatus": {"coding": [{
                             "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                             "code": "confirmed"}]},
                         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                                   "code": "problem-list-item"}]}],
                         "code": {"coding": [{"system": _ICD10, "code": icd, "display": display},
                                             {"system": _SNOMED, "code": sct}], "text": display},
                         "subject": subject, "onsetDateTime": day, "recordedDate": day})
    return made


def patient_resources(index: int, total: int, *, as_of: date = AS_OF) -> list[dict[str, Any]]:
    """The resources of realistic patient `index`: sample `index mod n`, re-identified, grown to `total`
    resources of used types (the sample's Practitioner and Organization count towards the total)."""
    samples = sample_bundles()
    bundle = reidentify(samples[index % len(samples)], f"{index:05d}")
    own = [e["resource"] for e in bundle["entry"]]
    patient = next(r for r in own if r["resourceType"] == "Patient")
    grown = history(f"Patient/{patient['id']}", max(0, total - len(own)), seed=index, as_of=as_of)
    return own + grown


def record_bundle(total: int, *, index: int = 0) -> dict[str, Any]:
    """One realistic patient of `total` resources as a collection Bundle."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in patient_resources(index, total)]}


def population(patients: int, per_patient: int) -> Iterator[tuple[str, list[bytes]]]:
    """(Patient reference, NDJSON lines) for each of `patients` realistic patients of `per_patient` resources."""
    for i in range(patients):
        resources = patient_resources(i, per_patient)
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        yield f"Patient/{patient['id']}", [json.dumps(r, separators=(",", ":")).encode() for r in resources]

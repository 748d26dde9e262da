"""Readable names for the resources of a record: the patient's name and ids, and what each resource is.

An explanation that cites `DiagnosticReport/rpt-12` convinces nobody; one that cites "MRI lumbar
spine, 2025-06-09" does. This module gives every visible resource the words its own record uses
(a code's text or display, a medication's name, the kind of visit an Encounter was) and its
clinical date, for the outputs to print beside the reference. It reads no clinical meaning into
them and no rule ever sees them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fhir_vcf.facts import ResourceLabel
from fhir_vcf.mappers import _context as ctx
from fhir_vcf.mappers import common
from fhir_vcf.mappers.codes.encounter_class import PATIENT_CLASS_WORDS

LABEL_MAX = 80  # characters of a label: a code text can be a paragraph

# Encounter.class (v3 ActCode) in words (input profile, "hospitalized"; HL7 v3 ActEncounterCode).
ENCOUNTER_CLASS_WORDS = {
    "IMP": "inpatient stay",
    "ACUTE": "inpatient stay",
    "NONAC": "inpatient stay",
    "AMB": "clinic visit",
    "EMER": "emergency visit",
    "VR": "virtual visit",
    "HH": "home visit",
    "OBSENC": "observation stay",
    "SS": "day-surgery stay",
}
# What to call a resource whose record gives no words for it.
_FALLBACK = {
    "Condition": "condition",
    "Observation": "observation",
    "DiagnosticReport": "report",
    "ImagingStudy": "imaging study",
    "Encounter": "encounter",
    "MedicationRequest": "medication order",
    "MedicationStatement": "medication statement",
    "MedicationAdministration": "medication given",
    "Medication": "medication",
    "Procedure": "procedure",
    "ServiceRequest": "order",
    "AllergyIntolerance": "allergy",
    "DocumentReference": "document",
    "CarePlan": "care plan",
    "Patient": "patient",
}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1].rstrip() + "…"


def _first_text(concept: Any, element: str = "code") -> str:
    return next((value for value, _ in common.texts(concept, element) if value.strip()), "")


def patient_name(patient: Any) -> str:
    """The official (else the first) HumanName as written: its `text`, else given names and family."""
    names = list(common.field(patient, "name") or []) if patient is not None else []
    if not names:
        return ""
    name = next((n for n in names if getattr(n, "use", None) == "official"), names[0])
    if getattr(name, "text", None):
        return _short(name.text)
    parts = [*(getattr(name, "prefix", None) or []), *(getattr(name, "given", None) or []),
             getattr(name, "family", None) or "", *(getattr(name, "suffix", None) or [])]
    return _short(" ".join(p for p in parts if p))


def patient_identifiers(patient: Any, limit: int = 3) -> tuple[str, ...]:
    """Up to `limit` identifiers as a person reads them: "MR MRN-123" (type, then value), else the value."""
    out = []
    for identifier in (common.field(patient, "identifier") or []) if patient is not None else []:
        value = getattr(identifier, "value", None)
        if not value:
            continue
        kind = getattr(identifier, "type", None)
        words = getattr(kind, "text", None) or next(
            (c.code for c in getattr(kind, "coding", None) or [] if getattr(c, "code", None)), ""
        )
        out.append(_short(f"{words} {value}" if words else value))
    return tuple(out[:limit])


def _encounter_label(encounter: Any) -> str:
    klass = getattr(encounter, "class_fhir", None)  # R4B's name for `class`
    code = getattr(klass, "code", None) if klass is not None else None
    v2 = common.system_alias(getattr(klass, "system", None)) == "v2-0004" if klass is not None else False
    words = (PATIENT_CLASS_WORDS if v2 else ENCOUNTER_CLASS_WORDS).get(code or "", "")
    kind = _first_text(common.field(encounter, "type"), "type")
    if words and kind and kind.lower() != words:
        return f"{words} ({kind})"
    return words or kind


def label_of(resource: Any, record: Any) -> str:
    """The words a person would use for this resource (see the module docstring)."""
    rtype = resource.get_resource_type()
    if rtype == "Encounter":
        words = _encounter_label(resource)
    elif rtype.startswith("Medication") and rtype != "Medication":
        words = next((v for v, _ in ctx.medication_texts(resource, record) if v.strip()), "")
    elif rtype == "ImagingStudy":
        words = common.field(resource, "description") or ""
        if not words:
            modalities = [c.code for c in common.field(resource, "modality") or [] if getattr(c, "code", None)]
            words = f"{'/'.join(modalities)} study" if modalities else ""
    elif rtype == "DocumentReference":
        words = common.field(resource, "description") or _first_text(common.field(resource, "type"), "type")
    elif rtype == "CarePlan":
        words = common.field(resource, "title") or common.field(resource, "description") or ""
    elif rtype == "Patient":
        words = "patient"
    else:
        words = _first_text(common.field(resource, "code"))
        if rtype == "AllergyIntolerance" and words and "allerg" not in words.lower():
            words = f"allergy: {words}"
    return _short(words) if words else _FALLBACK.get(rtype, rtype)


class ResourceLabels(Mapping[str, ResourceLabel]):
    """reference → ResourceLabel for every resource the (date-filtered) record shows, each label worked
    out when it is first asked for. The outputs ask only for the resources the evaluation cites (its
    evidence, its onsets), a few dozen of a record's thousands, and a label (the resource's words and
    its clinical day) was most of what describing every resource cost. Which references are described,
    and which resource a reference names when two share it (the first of `_FALLBACK`'s types, in record
    order), are exactly what describing them all gave."""

    def __init__(self, record: Any) -> None:
        self._record = record
        self._targets: dict[str, Any] | None = None
        self._labels: dict[str, ResourceLabel] = {}

    def _resources(self) -> dict[str, Any]:
        if self._targets is None:
            targets: dict[str, Any] = {}
            for rtype in _FALLBACK:
                for resource in self._record.of_type(rtype):
                    targets.setdefault(self._record.ref(resource), resource)
            self._targets = targets
        return self._targets

    def __getitem__(self, reference: str) -> ResourceLabel:
        label = self._labels.get(reference)
        if label is None:
            resource = self._resources()[reference]
            label = self._labels[reference] = ResourceLabel(label_of(resource, self._record),
                                                            common.clinical_day(resource))
        return label

    def get(self, reference: str, default: Any = None) -> Any:  # type: ignore[override]
        """Mapping.get answers a miss by raising and catching KeyError; the outputs ask ~46 times an
        evaluation, many for references the record does not show."""
        if reference in self._labels:
            return self._labels[reference]
        return self[reference] if reference in self._resources() else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._resources())

    def __len__(self) -> int:
        return len(self._resources())


def describe_resources(record: Any) -> Mapping[str, ResourceLabel]:
    """reference → ResourceLabel for every resource the (date-filtered) record shows (`ResourceLabels`)."""
    return ResourceLabels(record)

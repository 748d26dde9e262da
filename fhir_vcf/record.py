"""PatientRecord: one patient's validated resources, with reference resolution.

Whatever the source (a Bundle file, CDS Hooks prefetch, a FHIR server), the resources end up in
`load_resources`, which validates the types the mappers read with the R4B models, indexes every
form a reference can take (`Type/id`, an absolute URL, a `urn:uuid:` fullUrl) and groups the
resources by the patient they belong to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from fhir_vcf.errors import InputError

# The resource types the mappers read. Anything else is skipped unvalidated: a feed full of
# Practitioners and Medications costs nothing and cannot fail the evaluation.
USED_TYPES: frozenset[str] = frozenset(
    {
        "Patient",
        "Condition",
        "ImagingStudy",
        "Observation",
        "DiagnosticReport",
        "Encounter",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "Procedure",
        "ServiceRequest",
        "DeviceRequest",
        "AllergyIntolerance",
        "CarePlan",
    }
)

# Where each used type points at its patient.
_PATIENT_ELEMENTS = ("subject", "patient")


@dataclass
class PatientRecord:
    """The validated resources of one patient.

    `patient` is the canonical reference ("Patient/123"; the fullUrl when the Patient has no id).
    `resources` keeps bundle order within each type. `index` is shared by every record loaded from
    the same input, so a reference to a resource filed under no patient (an Encounter without a
    subject, say) still resolves.
    """

    patient: str
    source: str = ""
    resources: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))
    index: dict[str, Resource] = field(default_factory=dict)
    refs: dict[int, str] = field(default_factory=dict)

    def of_type(self, *types: str) -> list[Resource]:
        found: list[Resource] = []
        for t in types:
            found.extend(self.resources.get(t, ()))
        return found

    @property
    def patient_resource(self) -> Resource | None:
        return self.index.get(self.patient)

    def ref(self, resource: Resource) -> str:
        """The canonical reference of a resource of this record: "Type/id", else its fullUrl."""
        return self.refs[id(resource)]

    def resolve(self, reference: Any) -> Resource | None:
        """The resource a Reference (or a reference string) points at, if it is in the record."""
        value = getattr(reference, "reference", reference)
        if not isinstance(value, str) or not value:
            return None
        return self.index.get(value) or self.index.get(_relative(value))

    def add(self, resource: Resource, ref: str) -> None:
        self.resources[resource.get_resource_type()].append(resource)
        self.refs[id(resource)] = ref
        self.index.setdefault(ref, resource)


def _relative(reference: str) -> str:
    """"http://x/fhir/Patient/1" or "Patient/1/_history/2" → "Patient/1"; other forms unchanged."""
    if reference.startswith("urn:"):
        return reference
    parts = [p for p in reference.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


def _element_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def validate_resource(data: Mapping[str, Any], *, source: str, label: str) -> Resource:
    """Validate one resource with its R4B model, or raise an InputError naming the element."""
    rtype = data.get("resourceType")
    try:
        model = get_fhir_model_class(rtype)
    except (ValueError, KeyError, TypeError):
        raise InputError(f"unknown FHIR resource type {rtype!r}", source=source, resource=label) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        element = _element_path(first["loc"]) or None
        detail = first["msg"]
        if first["type"] == "extra_forbidden":
            detail = "is not an element of " + str(rtype)
        extra = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InputError(f"invalid {rtype}: {detail}{extra}", source=source, resource=label, element=element) from None


def entries_of(document: Any, *, source: str) -> list[tuple[str | None, Mapping[str, Any], str]]:
    """(fullUrl, resource, label) for each resource in a Bundle of any type, or the single resource."""
    if not isinstance(document, Mapping):
        raise InputError("not a FHIR resource: expected a JSON object", source=source)
    rtype = document.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InputError("not a FHIR resource: no resourceType", source=source)
    if rtype != "Bundle":
        return [(None, document, _label(document, None))]
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        raise InputError("invalid Bundle: entry must be an array", source=source, element="entry")
    found = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InputError("invalid Bundle: entry must be an object", source=source, element=f"entry[{i}]")
        resource = entry.get("resource")
        if resource is None:  # e.g. a DELETE in a transaction: nothing to read
            continue
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            raise InputError(
                "not a FHIR resource: no resourceType", source=source, element=f"entry[{i}].resource"
            )
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        found.append((full_url, resource, _label(resource, i)))
    return found


def _label(resource: Mapping[str, Any], position: int | None) -> str:
    rtype = resource.get("resourceType")
    if isinstance(resource.get("id"), str):
        return f"{rtype}/{resource['id']}"
    return f"entry[{position}] ({rtype})" if position is not None else str(rtype)


def load_document(document: Any, *, source: str) -> list[PatientRecord]:
    """Records, one per patient, from a parsed Bundle or single resource."""
    return load_resources(entries_of(document, source=source), source=source)


def load_resources(
    entries: Iterable[tuple[str | None, Mapping[str, Any], str]], *, source: str
) -> list[PatientRecord]:
    """Validate the used types, index every reference form, and group resources by patient."""
    index: dict[str, Resource] = {}
    validated: list[tuple[Resource, str]] = []
    for full_url, data, label in entries:
        if data.get("resourceType") not in USED_TYPES:
            continue
        resource = validate_resource(data, source=source, label=label)
        if _is_noise(resource):
            continue
        ref = f"{resource.get_resource_type()}/{resource.id}" if resource.id else (full_url or label)
        for key in filter(None, (ref, full_url, full_url and _relative(full_url))):
            index.setdefault(key, resource)
        validated.append((resource, ref))

    def patient_key(reference: str) -> str:
        target = index.get(reference) or index.get(_relative(reference))
        if target is not None and target.get_resource_type() == "Patient":
            return next(r for res, r in validated if res is target)
        return _relative(reference)

    records: dict[str, PatientRecord] = {}
    unfiled: list[tuple[Resource, str]] = []
    for resource, ref in validated:
        if resource.get_resource_type() == "Patient":
            key = ref
        else:
            pointer = next(
                (getattr(resource, e, None) for e in _PATIENT_ELEMENTS if getattr(resource, e, None)), None
            )
            value = getattr(pointer, "reference", None)
            if not value:
                unfiled.append((resource, ref))
                continue
            key = patient_key(value)
        record = records.setdefault(key, PatientRecord(patient=key, source=source, index=index))
        record.add(resource, ref)
    if len(records) == 1:
        (only,) = records.values()
        for resource, ref in unfiled:
            only.add(resource, ref)
    return list(records.values())


def _is_noise(resource: Resource) -> bool:
    """Resources recorded in error, cancelled or refuted carry no clinical meaning (input profile, rule 3)."""
    status = getattr(resource, "status", None)
    if status in {"entered-in-error", "cancelled"}:
        return True
    verification = getattr(resource, "verificationStatus", None)
    codes = {c.code for c in (getattr(verification, "coding", None) or [])}
    return bool(codes & {"entered-in-error", "refuted"})

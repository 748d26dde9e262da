"""Patient binding: only resources proven to belong to the context patient reach the record.

A CDS Hooks call is about one patient (`context.patientId`); its prefetch, what is fetched from
`fhirServer`, and its draft orders must not let another patient's data decide the card (a wrong
"eligible" can send a patient to an unnecessary procedure). So, on the raw entries (parsed JSON,
before any validation or mapping), every resource is checked:

- a **Patient** must be the context patient: its `id` is `context.patientId`, or, without an id,
  its `fullUrl` is `.../Patient/<context.patientId>`. Any other Patient (another id, or an id-less
  Patient keyed only by a `urn:uuid`) refuses the whole request (`PatientMismatch`): the caller
  sent, or the server answered with, another patient's record;
- any other resource of a type that points at its patient (`subject` or `patient`) is kept only
  when that element is a literal reference to the context patient: `Patient/<id>` (a version
  suffix `/_history/n` allowed), the context Patient's own `fullUrl` (`urn:uuid:...` included), or
  `<fhirServer>/Patient/<id>` on the server the call names. Everything else is dropped and
  counted by reason (`SKIP_REASONS`): an identifier-only subject (`{"identifier": ...}` proves
  nothing: identifiers are reused across systems), a reference to another patient, to a Patient
  on another server, to something the request does not hold, or no patient element at all;
- resources that point at no patient by definition (`Medication`) and types the record does not
  read pass through untouched.

Nothing here fixes a reference or guesses: a dropped resource is reported, not repaired. The
counts go back to the caller with the entries (`Binding.skipped`) so the evaluation can say what
it set aside.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from fhir_vcf.errors import InputError
from fhir_vcf.record import USED_TYPES, relative_reference
from fhir_vcf.sources.fhir_server import FhirBase, UnsafeUrl, normalise_url

Entry = tuple[str | None, Mapping[str, Any], str, str]  # (fullUrl, resource, label, source)

# Why a resource was set aside (the keys of `Binding.skipped`).
IDENTIFIER_ONLY = "identifier-only"
OTHER_PATIENT = "other-patient"
OTHER_SERVER = "patient-on-another-server"
UNRESOLVED = "unresolved-patient-reference"
NO_PATIENT = "no-patient-reference"
SKIP_REASONS = (IDENTIFIER_ONLY, OTHER_PATIENT, OTHER_SERVER, UNRESOLVED, NO_PATIENT)

# Resource types that carry no patient (FHIR R4: Medication has no subject/patient element): kept as
# reference data; a mapper reaches one only through a bound order's `medicationReference`.
PATIENTLESS_TYPES = frozenset({"Medication"})
# The types the record reads that must point at their patient (subject or patient, as record.py reads).
BOUND_TYPES = frozenset(USED_TYPES - {"Patient"} - PATIENTLESS_TYPES)


class PatientMismatch(InputError):
    """A Patient in the request (or the server's answer) is not the context patient."""


@dataclass
class Binding:
    """The entries proven to belong to the context patient, and what was set aside (by reason)."""

    entries: list[Entry] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    dropped: list[tuple[str, str, str]] = field(default_factory=list)  # (label, source, reason)


def _is_context_patient(resource: Mapping[str, Any], full_url: str | None, patient_id: str) -> bool:
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return rid == patient_id
    return bool(full_url) and relative_reference(str(full_url)) == f"Patient/{patient_id}"


def _without_history(reference: str) -> str:
    head, marker, _ = reference.partition("/_history/")
    return head if marker else reference


def _aliases(entries: Iterable[Entry], patient_id: str, server: FhirBase | None) -> set[str]:
    """Every literal form of the context patient's reference in this request."""
    wanted = f"Patient/{patient_id}"
    forms = {wanted}
    if server is not None:
        forms.add(f"{server.url}/{wanted}")
    for full_url, resource, _label, _source in entries:
        if resource.get("resourceType") == "Patient" and full_url and _is_context_patient(resource, full_url,
                                                                                         patient_id):
            forms.add(full_url)
            with suppress(UnsafeUrl):
                forms.add(normalise_url(full_url))
    return forms


def _reason(reference: Any, aliases: set[str], patient_id: str) -> str | None:
    """None when `reference` (a Reference object) names the context patient, else why not."""
    if type(reference) is not dict and not isinstance(reference, Mapping):
        return NO_PATIENT
    literal = reference.get("reference")
    if not isinstance(literal, str) or not literal.strip():
        return IDENTIFIER_ONLY if reference.get("identifier") else NO_PATIENT
    literal = _without_history(literal.strip())
    if literal in aliases:
        return None
    if literal.startswith(("urn:", "#")):
        return UNRESOLVED
    same_id = relative_reference(literal) == f"Patient/{patient_id}"
    if "://" in literal:
        try:
            if normalise_url(literal) in aliases:
                return None
        except UnsafeUrl:
            return UNRESOLVED
        return OTHER_SERVER if same_id else OTHER_PATIENT
    return UNRESOLVED if same_id else OTHER_PATIENT


_UNKNOWN: Any = object()  # a reason not worked out yet


def bind_to_patient(entries: Iterable[Entry], patient_id: str, *, fhir_server: str | None = None) -> Binding:
    """The entries that provably belong to `Patient/<patient_id>`; PatientMismatch for another Patient."""
    entries = list(entries)
    server = None
    if fhir_server:
        try:
            server = FhirBase.parse(fhir_server)
        except UnsafeUrl:
            server = None
    patients = [entry for entry in entries if entry[1].get("resourceType") == "Patient"]  # one, in most calls
    for full_url, resource, label, source in patients:
        if not _is_context_patient(resource, full_url, patient_id):
            raise PatientMismatch(
                "this Patient is not context.patientId (a Patient without an id must have a fullUrl ending "
                "in Patient/<context.patientId>); another patient's record is never used",
                source=source, resource=label if isinstance(resource.get("id"), str) else "Patient",
            )
    aliases = _aliases(patients, patient_id, server)
    binding = Binding()
    reasons: dict[str, str | None] = {}  # a literal reference -> its reason (most entries name the same patient)
    for entry in entries:
        resource = entry[1]
        rtype = resource.get("resourceType")
        pointer = resource.get("subject")  # `subject`, else `patient`: where record.py reads the patient
        if pointer is None:
            pointer = resource.get("patient")
        if rtype == "Patient" or rtype in PATIENTLESS_TYPES or (pointer is None and rtype not in BOUND_TYPES):
            binding.entries.append(entry)
            continue
        literal = pointer.get("reference") if type(pointer) is dict else None
        if type(literal) is str and literal.strip():  # the reason then depends on the literal alone
            reason = reasons.get(literal, _UNKNOWN)
            if reason is _UNKNOWN:
                reason = reasons[literal] = _reason(pointer, aliases, patient_id)
        else:
            reason = _reason(pointer, aliases, patient_id)
        if reason is None:
            binding.entries.append(entry)
        else:
            binding.skipped[reason] += 1
            binding.dropped.append((entry[2], entry[3], reason))
    return binding


__all__ = [
    "BOUND_TYPES",
    "IDENTIFIER_ONLY",
    "NO_PATIENT",
    "OTHER_PATIENT",
    "OTHER_SERVER",
    "PATIENTLESS_TYPES",
    "SKIP_REASONS",
    "UNRESOLVED",
    "Binding",
    "Entry",
    "PatientMismatch",
    "bind_to_patient",
]

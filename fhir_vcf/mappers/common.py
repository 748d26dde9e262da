"""Small readers every mapper needs: codings with short system names, clinical dates, current-ness."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

from fhir_vcf.facts import Coding, Evidence, Method
from fhir_vcf.mappers.codes.systems import system_alias

# Condition.clinicalStatus values that mean "no longer current" (input profile, rule 3).
HISTORICAL_STATUSES = frozenset({"inactive", "resolved", "remission"})


def codings(concept: Any, element: str = "code") -> Iterator[tuple[Coding, str]]:
    """Each coding of a CodeableConcept (or a list of them) as (Coding, element path)."""
    concepts = concept if isinstance(concept, list) else [concept]
    for i, cc in enumerate(concepts):
        if cc is None:
            continue
        prefix = f"{element}[{i}]" if isinstance(concept, list) else element
        for j, c in enumerate(getattr(cc, "coding", None) or []):
            if c.code:
                yield Coding(system_alias(c.system), c.code, c.display or ""), f"{prefix}.coding[{j}]"


def texts(concept: Any, element: str = "code") -> Iterator[tuple[str, str]]:
    """The human text of a CodeableConcept (or list): `text`, then each coding's display."""
    concepts = concept if isinstance(concept, list) else [concept]
    for i, cc in enumerate(concepts):
        if cc is None:
            continue
        prefix = f"{element}[{i}]" if isinstance(concept, list) else element
        if getattr(cc, "text", None):
            yield cc.text, f"{prefix}.text"
        for j, c in enumerate(getattr(cc, "coding", None) or []):
            if c.display:
                yield c.display, f"{prefix}.coding[{j}].display"


def notes(resource: Any) -> Iterator[tuple[str, str]]:
    for i, annotation in enumerate(getattr(resource, "note", None) or []):
        if annotation.text:
            yield annotation.text, f"note[{i}].text"


def evidence(ref: str, element: str, method: Method, found: str) -> Evidence:
    return Evidence(reference=ref, element=element, method=method, found=found)


def code_evidence(ref: str, element: str, coding: Coding, vocabulary: str) -> Evidence:
    label = f"{vocabulary} {coding.code}" + (f" ({coding.display})" if coding.display else "")
    return Evidence(ref, element, Method.CODE, label)


def as_date(value: Any) -> date | None:
    """A FHIR date/dateTime (already parsed by the R4B models) as a calendar date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


def clinical_date(resource: Any) -> tuple[date | None, str]:
    """The clinical date of a resource and the element it came from (input profile, rule 4).

    Never meta.lastUpdated: a record re-saved today is not a fracture seen today.
    """
    candidates: Iterable[tuple[str, Any]] = (
        ("onsetDateTime", getattr(resource, "onsetDateTime", None)),
        ("onsetPeriod.start", getattr(getattr(resource, "onsetPeriod", None), "start", None)),
        ("effectiveDateTime", getattr(resource, "effectiveDateTime", None)),
        ("effectivePeriod.start", getattr(getattr(resource, "effectivePeriod", None), "start", None)),
        ("effectiveInstant", getattr(resource, "effectiveInstant", None)),
        ("performedDateTime", getattr(resource, "performedDateTime", None)),
        ("performedPeriod.start", getattr(getattr(resource, "performedPeriod", None), "start", None)),
        ("authoredOn", getattr(resource, "authoredOn", None)),
        ("started", getattr(resource, "started", None)),
        ("occurrenceDateTime", getattr(resource, "occurrenceDateTime", None)),
        ("period.start", getattr(getattr(resource, "period", None), "start", None)),
        ("recordedDate", getattr(resource, "recordedDate", None)),
        ("dateAsserted", getattr(resource, "dateAsserted", None)),
        ("issued", getattr(resource, "issued", None)),
        ("created", getattr(resource, "created", None)),
    )
    for element, value in candidates:
        day = as_date(value)
        if day is not None:
            return day, element
    return None, ""


def is_historical(condition: Any) -> bool:
    """A Condition whose clinicalStatus says it is over (inactive / resolved / remission)."""
    status = getattr(condition, "clinicalStatus", None)
    return any(c.code in HISTORICAL_STATUSES for c in (getattr(status, "coding", None) or []))


def after(resource: Any, as_of: date) -> bool:
    """Dated after the as-of date: invisible to an evaluation "as of" that day."""
    day, _ = clinical_date(resource)
    return day is not None and day > as_of


def free_texts(record: Any, *types: str) -> Iterator[tuple[Any, str, str, str]]:
    """(resource, reference, element, text) for the narrative-bearing elements of the record.

    Where feeds put findings in words: report conclusions, condition and order text, notes,
    observation strings, series descriptions. Codings' displays are not included (they repeat codes).
    """
    wanted = types or (
        "Condition",
        "DiagnosticReport",
        "Observation",
        "ImagingStudy",
        "Procedure",
        "ServiceRequest",
        "AllergyIntolerance",
        "CarePlan",
    )
    for resource in record.of_type(*wanted):
        ref = record.ref(resource)
        code = getattr(resource, "code", None)
        if getattr(code, "text", None):
            yield resource, ref, "code.text", code.text
        for text, element in notes(resource):
            yield resource, ref, element, text
        if getattr(resource, "conclusion", None):
            yield resource, ref, "conclusion", resource.conclusion
        if getattr(resource, "valueString", None):
            yield resource, ref, "valueString", resource.valueString
        if getattr(resource, "description", None):
            yield resource, ref, "description", resource.description
        for i, series in enumerate(getattr(resource, "series", None) or []):
            if series.description:
                yield resource, ref, f"series[{i}].description", series.description
        for i, reason in enumerate(getattr(resource, "reasonCode", None) or []):
            if reason.text:
                yield resource, ref, f"reasonCode[{i}].text", reason.text

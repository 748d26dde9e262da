"""From records to evaluation objects: the one path every transport calls.

mappers (facts) → rules (criteria, decision, technique) → outputs (the evaluation object with its
CarePlan). The transports (CLI, CDS Hooks, REST API) call only this module for clinical answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from fhir_vcf import collector
from fhir_vcf.clinical_time import check_as_of
from fhir_vcf.errors import InputError
from fhir_vcf.mappers import map_record
from fhir_vcf.mappers.common import clinical_day
from fhir_vcf.mappers.report_text import read_report_text
from fhir_vcf.mappers.requests import requested_technique
from fhir_vcf.outputs.evaluation import render_evaluation
from fhir_vcf.record import PatientRecord, read_validated
from fhir_vcf.rules import judge
from fhir_vcf.rules.policy import Policy


def evaluate_record(
    record: PatientRecord, *, as_of: date, policy: Policy, request: str | None = None
) -> dict[str, Any]:
    """The evaluation object (the public contract) for one patient.

    `request` names the ServiceRequest to judge ("ServiceRequest/abc"), as when a CDS Hooks
    order-select names its selection; by default the latest draft or active augmentation request.
    An as-of date no decision can hold on (`fhir_vcf.clinical_time.check_as_of`) is an InputError.
    """
    try:
        check_as_of(as_of)
    except ValueError as exc:
        raise InputError(str(exc), element="asOf") from None
    with collector.paused():
        facts = map_record(record, as_of=as_of, request=request)
        return render_evaluation(judge(facts, policy), facts, policy)


def read_text(value: str, *, modality: str | None = "MR") -> list[dict[str, Any]]:
    """What the mappers take from one report text, each finding with its level, assertion, trigger
    and scope (`fhir-vcf read-text`; `fhir_vcf.mappers.report_text`)."""
    return [finding.as_dict() for finding in read_report_text(value, modality=modality)]


def evaluate_records(
    records: Iterable[PatientRecord], *, as_of: date, policy: Policy
) -> list[dict[str, Any]]:
    return [evaluate_record(record, as_of=as_of, policy=policy) for record in records]


def ordered_technique(resource: Mapping[str, Any]) -> str | None:
    """kyphoplasty | vertebroplasty | unspecified for a vertebral-augmentation ServiceRequest, else None.

    The mapper's own rule (CPT 22510-22515 and the deleted codes, or the words, negation-aware), so
    that a transport recognises an order exactly as the evaluation will judge it. An order that is
    not valid FHIR is not recognised here; loading it into the record reports why.
    """
    if resource.get("resourceType") != "ServiceRequest":
        return None
    label = f"ServiceRequest/{resource.get('id', 'draft')}"
    try:
        model = read_validated(resource, source="draft order", label=label)
    except InputError:
        return None
    return requested_technique(model)


def performed_augmentations(record: PatientRecord) -> list[tuple[str, date | None]]:
    """(reference, day performed) of each completed vertebral-augmentation Procedure of a record.

    Recognised by the mapper's own rule for orders (CPT 22510-22515, a deleted code, or the words,
    negation-aware), so that an audit picks exactly the procedures the evaluation can judge as its
    request. The day is the clinical date (`performed[x]`, input profile rule 4); None when the
    Procedure has none, which the caller reports rather than guesses.
    """
    found = []
    for procedure in record.of_type("Procedure"):
        if procedure.status != "completed" or requested_technique(procedure) is None:
            continue
        found.append((record.ref(procedure), clinical_day(procedure)))
    return found

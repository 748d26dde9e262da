"""From records to evaluation objects: the one path every transport calls.

mappers (facts) → rules (criteria, decision, technique) → outputs (the evaluation object with its
CarePlan). The transports (CLI, CDS Hooks, REST API) call only this module for clinical answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from fhir_vcf.mappers import map_record
from fhir_vcf.outputs.evaluation import render_evaluation
from fhir_vcf.record import PatientRecord
from fhir_vcf.rules import judge
from fhir_vcf.rules.policy import Policy


def evaluate_record(
    record: PatientRecord, *, as_of: date, policy: Policy, request: str | None = None
) -> dict[str, Any]:
    """The evaluation object (the public contract) for one patient.

    `request` names the ServiceRequest to judge ("ServiceRequest/abc"), as when a CDS Hooks
    order-select names its selection; by default the latest draft or active augmentation request.
    """
    facts = map_record(record, as_of=as_of, request=request)
    judgement = judge(facts, policy)
    return render_evaluation(judgement, facts, policy)


def evaluate_records(
    records: Iterable[PatientRecord], *, as_of: date, policy: Policy
) -> list[dict[str, Any]]:
    return [evaluate_record(record, as_of=as_of, policy=policy) for record in records]

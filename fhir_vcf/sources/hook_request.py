"""The CDS Hooks 2.0 request an EHR would send, built from a FHIR store and a discovery entry.

Two transports need such a request without having an EHR: `fhir-vcf replay` plays Bundle files
through the service, and demo mode answers `GET /demo/fhir/$cds-hooks-request` with a ready
request for a sample patient. Both build it here, so that a request means the same in both, and
neither transport imports the other.

The request: `context` with a fixed `userId` and the patient; for the order hooks the patient's
draft vertebral augmentation ServiceRequests in `draftOrders` (and all of them in `selections`
for `order-select`); every `prefetch` template of the service's discovery entry run against the
store (`fhir_vcf.sources.memory`: a search with no match is an empty searchset Bundle, a read of a
missing resource `null`); no `fhirServer`, since everything is prefetched. An as-of date goes in
the request extension `{"fhir-vcf": {"asOf": ...}}`.

Which ServiceRequests are vertebral augmentation orders is the evaluation's own rule
(`fhir_vcf.evaluation.ordered_technique`). This module is on the sources side of the flow
and imports no transport, so each caller passes that rule in as `is_order`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from fhir_vcf.sources.memory import MemoryFhir, QueryError

# `fhir_vcf.sources.prefetch` is imported when a request is built: it brings the FHIR client and
# prometheus_client, which `fhir-vcf --help` does not need and which `fhir-vcf serve` must import
# only after it has chosen prometheus_client's multiprocess mode (see `fhir_vcf.server`).

HOOKS = ("patient-view", "order-select", "order-sign")
ORDER_HOOKS = frozenset({"order-select", "order-sign"})
USER_ID = "Practitioner/fhir-vcf-replay"
EXTENSION = "fhir-vcf"  # the request (and card) extension member of this service

OrderRule = Callable[[Mapping[str, Any]], bool]


def draft_orders(store: MemoryFhir, patient_id: str, is_order: OrderRule) -> list[dict[str, Any]]:
    """The patient's draft ServiceRequests that `is_order` accepts (what an EHR puts in draftOrders)."""
    result = store.search("ServiceRequest", [("patient", patient_id), ("status", "draft")])
    return [r for r in result.matches if is_order(r)]


def build_request(
    store: MemoryFhir,
    patient_id: str,
    service: Mapping[str, Any],
    *,
    is_order: OrderRule,
    as_of: date | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """A CDS Hooks 2.0 request for `service` (a discovery entry) about one patient of `store`.

    Every prefetch key is filled; a template this cannot answer (a context value not sent, a
    query outside the store's subset, parameters it ignores) is reported in `warnings`.
    """
    from fhir_vcf.sources.prefetch import resolve_template

    warnings = [] if warnings is None else warnings
    hook = service["hook"]
    context: dict[str, Any] = {"userId": USER_ID, "patientId": patient_id}
    if hook in ORDER_HOOKS:
        orders = draft_orders(store, patient_id, is_order)
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": order} for order in orders],
        }
        if hook == "order-select":
            context["selections"] = [f"ServiceRequest/{order['id']}" for order in orders]
    prefetch: dict[str, Any] = {}
    for key, template in (service.get("prefetch") or {}).items():
        query = resolve_template(template, context)
        if query is None:
            warnings.append(f"prefetch.{key}: template {template!r} needs a context value replay does not send")
            continue
        ignored: list[str] = []
        try:
            prefetch[key] = store.query(query, ignored=ignored)  # a read of nothing: null (no such data)
        except QueryError as exc:
            warnings.append(f"prefetch.{key}: {exc.message}")
        if ignored:
            warnings.append(f"prefetch.{key}: replay does not support {', '.join(ignored)}; answered without")
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()),
        "hook": hook,
        "context": context,
        "prefetch": prefetch,
    }
    if as_of is not None:
        body["extension"] = {EXTENSION: {"asOf": as_of.isoformat()}}
    return body


__all__ = ["EXTENSION", "HOOKS", "ORDER_HOOKS", "USER_ID", "OrderRule", "build_request", "draft_orders"]

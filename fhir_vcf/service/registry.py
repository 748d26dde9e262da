"""What the blueprints share: the `Services` registry built once per app, and `services()` to reach it.

Its own module so that the blueprints never import the app factory that registers them (`app.py`
imports the blueprints; the blueprints import this). Nothing here holds request state: a peer CDS
service once answered every request with the first one's cards through such a singleton.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from fhir_vcf.config import Settings
from fhir_vcf.rules.policy import Policy
from fhir_vcf.service.slot import EvaluationSlot
from fhir_vcf.sources.fhir_server import FetchSlots, FhirClient
from fhir_vcf.sources.prefetch import ClientFactory

EXTENSION_KEY = "fhir_vcf"


@dataclass
class Services:
    """What the blueprints share, built once per app (never per process: tests build many apps).

    settings: the validated Settings.
    policies / default_policy: every loaded policy by id, and the service default (FHIR_VCF_POLICY).
    fhir_client: `fhir_client(base_url, token) -> FhirClient` with the service's timeouts and page cap
      (Settings.fhir_connect_timeout / fhir_read_timeout / fhir_max_pages); tests may swap it.
    fetch_slots: how many calls of this process may fetch from FHIR servers at once
      (Settings.fhir_max_concurrent_fetches; one app per gunicorn worker, so per worker).
    evaluation_slot: one call of this process builds its record or evaluates at a time, the calls
      taking it in the order they asked (`EvaluationSlot`); never held while fetching or writing.
      The worker's threads exist to wait (a FHIR server, a slow client); judging is CPU work, and
      under the GIL several threads judging at once interleave every 5 ms: measured with
      `benchmarks/bench_serving.py` (8 threads a worker, concurrency 8), 35 ms CPU a call instead of
      23 ms with one thread, p95 279 ms instead of 189 ms. Waiting threads do not hold it.
    store: the audit + feedback store (`fhir_vcf.store.Store`), opened and migrated at start-up.
    kept / links: the kept evaluations (`fhir_vcf.kept.KeptEvaluations`) and the page-link signer
      (`fhir_vcf.kept.LinkSigner`); both None when no evaluation key is configured (pages off).
    extras: a place for other blueprints' shared objects (JWKS cache, SMART token provider, ...),
      keyed by the owning module's name.
    """

    settings: Settings
    policies: dict[str, Policy]
    default_policy: Policy
    fhir_client: ClientFactory
    fetch_slots: FetchSlots | None = None
    evaluation_slot: Any = field(default_factory=EvaluationSlot)
    store: Any = None
    kept: Any = None
    links: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]


def fhir_client_factory(settings: Settings) -> ClientFactory:
    """FhirClients for caller-named servers (CDS Hooks `fhirServer`), one per call: the token is
    per request and must never outlive it. Each has the service's timeouts, page cap and size caps."""

    def make(base_url: str, token: Any) -> FhirClient:
        return FhirClient(
            base_url,
            token=token,
            timeout=(settings.fhir_connect_timeout, settings.fhir_read_timeout),
            max_pages=settings.fhir_max_pages,
            max_response_bytes=settings.fhir_max_response_bytes,
            max_decoded_bytes=settings.fhir_max_decoded_bytes,
        )

    return make

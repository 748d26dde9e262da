"""Prometheus metrics shared by every transport and the FHIR client.

Defined once at import so that several app instances (tests create many) share one registry
without "duplicated timeseries" errors.

Several worker processes (`fhir-vcf serve`: gunicorn). Each worker counts in its own memory, so
`/metrics` would show whichever worker answered. prometheus_client's multiprocess mode fixes that:
with `PROMETHEUS_MULTIPROC_DIR` set *before prometheus_client is first imported* (it picks its
value class at import time), every process writes its values to memory-mapped files in that
folder, and `exposition()` sums the files of every worker, living or dead (a counter must not go
down when gunicorn replaces a worker). `fhir_vcf.server.serve` sets the variable before anything
imports this module; outside `serve` (tests, `flask run`) the variable is unset and `exposition()`
is the plain registry of this process.

Counters and histograms need nothing more. A Gauge in multiprocess mode needs a
`multiprocess_mode` (`livesum`, `max`, ...) saying how the workers' values combine; there is none
today: add the mode with the gauge.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("fhir_vcf_http_requests_total", "HTTP requests handled", ["endpoint", "method", "status"])
LATENCY = Histogram("fhir_vcf_http_request_seconds", "HTTP request latency", ["endpoint"])
DECISIONS = Counter("fhir_vcf_decisions_total", "Evaluation decisions", ["decision", "policy"])
FHIR_LATENCY = Histogram("fhir_vcf_fhir_call_seconds", "Latency of calls to FHIR servers", ["upstream"])
FHIR_ERRORS = Counter("fhir_vcf_fhir_call_errors_total", "Failed calls to FHIR servers", ["upstream", "status"])


def multiprocess_dir() -> str | None:
    """The multiprocess folder when multiprocess mode is on (`PROMETHEUS_MULTIPROC_DIR`), else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> bytes:
    """The Prometheus text exposition: every worker's values summed in multiprocess mode, else
    this process's registry.

    In multiprocess mode a fresh registry with only the `MultiProcessCollector` is built per
    scrape (prometheus_client's documented recipe): the default registry would add this worker's
    own values a second time.
    """
    path = multiprocess_dir()
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


__all__ = [
    "DECISIONS",
    "FHIR_ERRORS",
    "FHIR_LATENCY",
    "LATENCY",
    "MULTIPROC_ENV",
    "REQUESTS",
    "exposition",
    "multiprocess_dir",
]

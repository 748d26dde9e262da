"""Prometheus metrics shared by every transport and the FHIR client.

Defined once at import so that several app instances (tests create many) share one registry
without "duplicated timeseries" errors.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("fhir_vcf_http_requests_total", "HTTP requests handled", ["endpoint", "method", "status"])
LATENCY = Histogram("fhir_vcf_http_request_seconds", "HTTP request latency", ["endpoint"])
DECISIONS = Counter("fhir_vcf_decisions_total", "Evaluation decisions", ["decision", "policy"])
FHIR_LATENCY = Histogram("fhir_vcf_fhir_call_seconds", "Latency of calls to FHIR servers", ["upstream"])
FHIR_ERRORS = Counter("fhir_vcf_fhir_call_errors_total", "Failed calls to FHIR servers", ["upstream", "status"])

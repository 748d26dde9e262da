"""Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document.

`/healthz` answers as long as the process serves requests; `/readyz` says whether this instance
should get traffic (database reachable, policies loaded); `/metrics` is the Prometheus text
exposition of `fhir_vcf.metrics` (summed over every gunicorn worker when `fhir-vcf serve` runs
prometheus_client's multiprocess mode: see `fhir_vcf.metrics.exposition`); `/openapi.yaml` serves
the API description.

Request metrics are recorded for every endpoint of the app (not only this blueprint's) by
`init_metrics`, installed when this blueprint is registered. The `endpoint` label is the matched
URL rule (`/api/v1/patients/<path:patient_id>/evaluation`), never the raw path, so a scanner
cannot create one time series per URL it tries.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from fhir_vcf.metrics import DECISIONS, LATENCY, REQUESTS, exposition
from fhir_vcf.version import __version__

bp = Blueprint("ops", __name__)

# The single source is `openapi.yaml` at the repository root. A non-editable install has no
# repository root, so the package carries `fhir_vcf/openapi.yaml` (package data in
# pyproject.toml), a symlink to the root file in the repository that the wheel build copies as a
# regular file. At serve time the repository file wins when it exists. (Paths are derived from
# this module's file rather than `fhir_vcf.__file__`, which is None when the package is imported
# as a namespace package, as a stale editable install does.)
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPOSITORY_DOCUMENT = _PACKAGE_DIR.parent / "openapi.yaml"
PACKAGE_DOCUMENT = _PACKAGE_DIR / "openapi.yaml"
OPENAPI_MEDIA_TYPE = "application/yaml"
UNMATCHED = "<unmatched>"
READY_RETRY_AFTER_SECONDS = 5


def openapi_document() -> bytes:
    """The OpenAPI document's bytes: the repository's root file, else the installed package copy."""
    for path in (REPOSITORY_DOCUMENT, PACKAGE_DOCUMENT):
        if path.is_file():
            return path.read_bytes()
    raise FileNotFoundError("openapi.yaml is neither at the repository root nor in the package")


@functools.lru_cache(maxsize=1024)
def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: prometheus_client returns the same child for the same
    labels every time (it takes a lock and builds a key to find it; two to three lookups a call).
    Bounded, and the label values are endpoints, methods, status codes, decisions and policy ids."""
    return metric.labels(*labels)


def record_decisions(evaluations: Iterable[Mapping[str, Any]], policy_id: str | None = None) -> None:
    """Count each evaluation's decision (label values are enums: bounded cardinality).

    Call it wherever evaluations are produced for a caller (REST API, CDS Hooks).
    """
    for evaluation in evaluations:
        decision = evaluation.get("decision")
        policy = policy_id or evaluation.get("policy")
        _child(DECISIONS, str(decision or "unknown"), str(policy or "unknown")).inc()


# --- request metrics ------------------------------------------------------------------------------


def _endpoint_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _start_timer() -> None:
    g.fhir_vcf_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("fhir_vcf_started", None)
    endpoint = _endpoint_label()
    _child(REQUESTS, endpoint, request.method, str(response.status_code)).inc()
    if started is not None:
        _child(LATENCY, endpoint).observe(time.perf_counter() - started)
    return response


def init_metrics(app: Flask) -> None:
    """Record REQUESTS and LATENCY for every request of `app`. Idempotent."""
    if app.extensions.get("fhir_vcf.metrics"):
        return
    app.extensions["fhir_vcf.metrics"] = True
    app.before_request(_start_timer)
    app.after_request(_observe)


@bp.record_once
def _install(state: Any) -> None:
    init_metrics(state.app)


# --- endpoints ------------------------------------------------------------------------------------


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: the process answers. Checks nothing else, so a slow database never restarts it.
    The release is named, so that a rolling upgrade can be watched from outside."""
    return jsonify({"status": "ok", "version": __version__})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready for traffic: the database answers (when there is a store) and policies are loaded."""
    from fhir_vcf.service.registry import services

    svc = services()
    checks: dict[str, str] = {}
    store = getattr(svc, "store", None)
    if store is None:
        checks["database"] = "not-configured"
    else:
        try:
            ok = store.ping()
        except Exception:  # a ping that raises is a failed check, whatever the driver raised
            current_app.logger.warning("readiness: database ping failed", exc_info=True)
            ok = False
        checks["database"] = "ok" if ok else "failed"
    checks["policies"] = "ok" if svc.policies and svc.default_policy is not None else "failed"
    ready = all(value != "failed" for value in checks.values())
    failed = sorted(name for name, value in checks.items() if value == "failed")
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks}
    if failed:
        body["failed"] = failed
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    if not ready:
        response.headers["Retry-After"] = str(READY_RETRY_AFTER_SECONDS)
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Every worker's metrics in multiprocess mode (`fhir-vcf serve`), else this process's."""
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST)


@bp.get("/openapi.yaml")
def openapi() -> Response:
    return Response(openapi_document(), mimetype=OPENAPI_MEDIA_TYPE)

"""RFC 9457 problem details for the REST API and the operations endpoints.

Every error the REST API returns is `application/problem+json` with `type`, `title`, `status`,
`detail`, plus `resource` / `element` when an input error names them, so an integration engineer
can see which element of which resource to fix without reading our logs. The `type` URIs are
relative references resolved against the service's base URL, and they resolve: `GET
/problems/{name}` is a page describing that problem type (what happened, what to do, which
members it carries), and `GET /problems` lists them all (`fhir_vcf.service.docs`). Each one is
also named in openapi.yaml (`components.schemas.Problem`); `PROBLEM_TYPES` below is their
one description.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

from fhir_vcf.errors import InputError, NotFoundError, UpstreamError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"



@dataclass(frozen=True)
class ProblemType:
    """One kind of failure: its page at `/problems/{name}` says this to whoever follows the `type`."""

    name: str
    title: str
    statuses: tuple[int, ...]
    happens: str  # when the service answers with it
    remedy: str  # what the caller does about it
    members: tuple[str, ...] = ()  # extension members beside type, title, status, detail

    @property
    def uri(self) -> str:
        return f"{PROBLEMS_PATH}/{self.name}"


PROBLEMS_PATH = "/problems"

PROBLEM_TYPES: dict[str, ProblemType] = {
    t.name: t
    for t in (
        ProblemType(
            "invalid-input", "Invalid input", (400,),
            "The request body is not a FHIR R4 resource or Bundle the service can read: malformed JSON, "
            "an unknown resource type, or a resource that breaks the FHIR R4 model.",
            "Fix the element named by `resource` and `element` (the `detail` says what is wrong with it) "
            "and send the request again.",
            ("resource", "element"),
        ),
        ProblemType(
            "invalid-parameter", "Invalid query parameter", (400,),
            "A query parameter is malformed (for example `asOf` not written YYYY-MM-DD) or unknown.",
            "Correct the parameters listed in `invalidParams`; openapi.yaml lists each operation's parameters.",
            ("invalidParams",),
        ),
        ProblemType(
            "unknown-policy", "Unknown policy", (400,),
            "The `policy` parameter names no policy this service has loaded.",
            "Use one of the ids listed by `GET /api/v1/policies` (the `detail` names them too), or leave "
            "`policy` out to use the service's default.",
            ("invalidParams",),
        ),
        ProblemType(
            "unsupported-media-type", "Unsupported media type", (415,),
            "The request body's `Content-Type` is not one the operation reads.",
            "Send `application/fhir+json` or `application/json`.",
        ),
        ProblemType(
            "body-too-large", "Request body too large", (413,),
            "The request body is larger than the service accepts (`FHIR_VCF_MAX_BODY_BYTES`, 5 MiB by default).",
            "Send fewer resources per request (for example one patient's record per call).",
        ),
        ProblemType(
            "not-found", "Not found", (404,),
            "No such URL, policy or patient; for a patient, the EHR's FHIR server answered 404.",
            "Check the id or the URL; `upstreamStatus` is present when the FHIR server answered.",
            ("upstreamStatus",),
        ),
        ProblemType(
            "upstream-error", "FHIR server error", (502,),
            "The EHR's FHIR server (or its token endpoint) failed or answered something unusable.",
            "Retry later; if it persists, the FHIR server's operators can match `upstreamStatus` in their logs.",
            ("upstreamStatus",),
        ),
        ProblemType(
            "upstream-timeout", "FHIR server timed out", (504,),
            "The EHR's FHIR server did not answer within the service's timeouts "
            "(`FHIR_VCF_FHIR_CONNECT_TIMEOUT`, `FHIR_VCF_FHIR_READ_TIMEOUT`).",
            "Retry later; nothing was written.",
        ),
        ProblemType(
            "fhir-server-not-configured", "No FHIR server configured", (503,),
            "A patient endpoint was called but the service has no FHIR server to read from "
            "(`FHIR_VCF_FHIR_BASE_URL` is not set, or its credentials are incomplete).",
            "The operator sets `FHIR_VCF_FHIR_BASE_URL` (docs/configuration.md); until then post the "
            "record to `POST /api/v1/evaluations` instead.",
        ),
        ProblemType(
            "no-careplan", "No CarePlan proposed", (409,),
            "The write-back was asked for, but the evaluation proposes no CarePlan for this patient "
            "(for example when no fracture is on record).",
            "Read the `decision` member and the evaluation (`GET /api/v1/patients/{id}/evaluation`); "
            "there is nothing to write.",
            ("decision",),
        ),
        ProblemType(
            "too-many-patients", "Too many patients", (413,),
            "A posted document holds more patients than one request may (`FHIR_VCF_MAX_PATIENTS_PER_REQUEST`); "
            "nothing was evaluated.",
            "Send at most `limit` patients per request, or use the population tools for a whole population.",
            ("limit",),
        ),
        ProblemType(
            "temporarily-unavailable", "Temporarily unavailable", (503,),
            "The service cannot answer right now: its database failed, is locked or did not answer in time, or "
            "this worker is already fetching for as many calls as it may (`FHIR_VCF_FHIR_MAX_CONCURRENT_FETCHES`).",
            "Retry after the number of seconds in the `Retry-After` header; nothing was changed.",
        ),
        ProblemType(
            "internal-error", "Internal error", (500,),
            "The service failed. The error is logged with the request id (`X-Request-ID`); no detail "
            "leaves the service.",
            "Retry; if it persists, give the operator the response's `X-Request-ID`.",
        ),
    )
}

# `about:blank` is RFC 9457's "nothing more than the status".
TYPE_BLANK = "about:blank"
TYPE_INVALID_INPUT = PROBLEM_TYPES["invalid-input"].uri
TYPE_INVALID_PARAMETER = PROBLEM_TYPES["invalid-parameter"].uri
TYPE_UNKNOWN_POLICY = PROBLEM_TYPES["unknown-policy"].uri
TYPE_UNSUPPORTED_MEDIA_TYPE = PROBLEM_TYPES["unsupported-media-type"].uri
TYPE_BODY_TOO_LARGE = PROBLEM_TYPES["body-too-large"].uri
TYPE_NOT_FOUND = PROBLEM_TYPES["not-found"].uri
TYPE_UPSTREAM = PROBLEM_TYPES["upstream-error"].uri
TYPE_UPSTREAM_TIMEOUT = PROBLEM_TYPES["upstream-timeout"].uri
TYPE_NOT_CONFIGURED = PROBLEM_TYPES["fhir-server-not-configured"].uri
TYPE_NO_CAREPLAN = PROBLEM_TYPES["no-careplan"].uri
TYPE_INTERNAL = PROBLEM_TYPES["internal-error"].uri
TYPE_UNAVAILABLE = PROBLEM_TYPES["temporarily-unavailable"].uri
TYPE_TOO_MANY_PATIENTS = PROBLEM_TYPES["too-many-patients"].uri


def problem(
    status: int,
    detail: str,
    *,
    type_: str = TYPE_BLANK,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem+json response. Extension members whose value is None are left out."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_input_error(exc: InputError, *, status: int = 400, title: str = "Invalid input") -> Response:
    """400 naming the resource and element, from an InputError (the message without the source prefix)."""
    return problem(
        status,
        exc.message,
        type_=TYPE_INVALID_INPUT,
        title=title,
        resource=exc.resource,
        element=exc.element,
    )


def from_upstream_error(exc: UpstreamError) -> Response:
    """404 for a missing resource, 504 for a timeout, else 502; the upstream status is named."""
    if isinstance(exc, NotFoundError):
        return problem(
            404, str(exc), type_=TYPE_NOT_FOUND, title="Not found on the FHIR server",
            upstreamStatus=exc.upstream_status,
        )
    if exc.timeout:
        return problem(504, str(exc), type_=TYPE_UPSTREAM_TIMEOUT, title="FHIR server timed out")
    return problem(
        502, str(exc), type_=TYPE_UPSTREAM, title="FHIR server error", upstreamStatus=exc.upstream_status
    )


_HTTP_TYPES = {
    413: TYPE_BODY_TOO_LARGE,
    415: TYPE_UNSUPPORTED_MEDIA_TYPE,
    404: TYPE_NOT_FOUND,
}


def from_http_exception(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors (413 from MAX_CONTENT_LENGTH, 405, ...) as problem bodies."""
    status = exc.code or 500
    headers = {}
    if status == 405 and exc.get_headers():
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    detail = exc.description or HTTPStatus(status).description
    return problem(status, detail, type_=_HTTP_TYPES.get(status, TYPE_BLANK), headers=headers)


def internal_error(exc: BaseException) -> Response:
    """500 with no traceback and no exception text (it could carry patient data); logged here."""
    log.error("unhandled error answering %s %s", request.method, request.path, exc_info=exc)
    return problem(500, "The service failed to answer; the error has been logged.", type_=TYPE_INTERNAL)

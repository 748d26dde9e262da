"""RFC 9457 problem details for the REST API and the operations endpoints.

Every error the REST API returns is `application/problem+json` with `type`, `title`, `status`,
`detail`, plus `resource` / `element` when an input error names them, so an integration engineer
can see which element of which resource to fix without reading our logs. The `type` URIs are
relative references resolved against the service's base URL; each one is documented in
openapi.yaml (`components.schemas.Problem`).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

from fhir_vcf.errors import InputError, NotFoundError, UpstreamError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# One problem type per kind of failure; `about:blank` is RFC 9457's "nothing more than the status".
TYPE_BLANK = "about:blank"
TYPE_INVALID_INPUT = "/problems/invalid-input"
TYPE_INVALID_PARAMETER = "/problems/invalid-parameter"
TYPE_UNKNOWN_POLICY = "/problems/unknown-policy"
TYPE_UNSUPPORTED_MEDIA_TYPE = "/problems/unsupported-media-type"
TYPE_BODY_TOO_LARGE = "/problems/body-too-large"
TYPE_NOT_FOUND = "/problems/not-found"
TYPE_UPSTREAM = "/problems/upstream-error"
TYPE_UPSTREAM_TIMEOUT = "/problems/upstream-timeout"
TYPE_NOT_CONFIGURED = "/problems/fhir-server-not-configured"
TYPE_NO_CAREPLAN = "/problems/no-careplan"
TYPE_INTERNAL = "/problems/internal-error"
TYPE_UNAVAILABLE = "/problems/temporarily-unavailable"
TYPE_TOO_MANY_PATIENTS = "/problems/too-many-patients"


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

"""FHIR OperationOutcome error bodies: the CDS Hooks endpoints, feedback, the demo FHIR endpoint.

CDS Hooks 2.0 leaves error bodies open; CDS Hooks 3.0 recommends an OperationOutcome, and EHR
integration engineers read FHIR, so every CDS Hooks error names what failed (`issue.code`) and
where (`issue.expression`, e.g. `feedback[0].outcome`) in the shape they already know. The REST
API uses RFC 9457 problem details instead (`fhir_vcf.service.problems`).

Never put request values (patient ids, comments, tokens) into `diagnostics`: an error body is
copied into EHR logs and tickets. Name the element, not its content.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
JSON = "application/json"

# FHIR R4 IssueType codes this service uses (http://hl7.org/fhir/issue-type).
INVALID = "invalid"  # content invalid against the specification
STRUCTURE = "structure"  # not parseable (malformed JSON)
REQUIRED = "required"  # a required element is missing
CODE_INVALID = "code-invalid"  # a code not in the set it must come from
NOT_FOUND = "not-found"
NOT_SUPPORTED = "not-supported"
FORBIDDEN = "forbidden"
INCOMPLETE = "incomplete"
PROCESSING = "processing"
TOO_COSTLY = "too-costly"
TRANSIENT = "transient"
EXCEPTION = "exception"

# The IssueType of an HTTP error status with no more specific cause (Werkzeug's errors, app-wide).
_STATUS_CODES = {400: INVALID, 403: FORBIDDEN, 404: NOT_FOUND, 405: NOT_SUPPORTED, 412: INCOMPLETE,
                 413: TOO_COSTLY, 415: NOT_SUPPORTED}

Issue = tuple[str, str, "str | Sequence[str] | None"]


def _issue(code: str, diagnostics: str, expression: str | Sequence[str] | None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression] if isinstance(expression, str) else list(expression)
    return issue


def error_paths(errors: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """marshmallow's nested error dict as (element path, message) pairs: `feedback[0].outcome`,
    the FHIRPath-like form `issue.expression` takes; a schema-level error names its parent."""
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            if key == "_schema":
                path = prefix
            elif isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            yield from error_paths(value, path)
    elif isinstance(errors, list | tuple):
        for value in errors:
            yield from error_paths(value, prefix)
    else:
        yield prefix, str(errors)


def operation_outcome_body(
    code: str,
    diagnostics: str,
    expression: str | Sequence[str] | None = None,
    *,
    more: Iterable[Issue] = (),
) -> dict[str, Any]:
    """The OperationOutcome dict: one error issue, plus one per `(code, diagnostics, expression)` in `more`."""
    issues = [_issue(code, diagnostics, expression)]
    issues.extend(_issue(c, d, e) for c, d, e in more)
    return {"resourceType": "OperationOutcome", "issue": issues}


def operation_outcome(
    status: int,
    code: str,
    diagnostics: str,
    expression: str | Sequence[str] | None = None,
    *,
    more: Iterable[Issue] = (),
    headers: Mapping[str, str] | None = None,
    media_type: str = FHIR_JSON,
) -> Response:
    """An error response whose body is a FHIR OperationOutcome (severity `error`).

    `code` is a FHIR IssueType (`invalid`, `structure`, `required`, `not-found`, `too-costly`,
    ...); `expression` names the offending element (`feedback[0].outcome`). `application/fhir+json`
    by default, which JSON clients accept (`+json`); the hook endpoints answer `application/json`,
    the media type of their successful answers (openapi.yaml documents both).
    """
    body = operation_outcome_body(code, diagnostics, expression, more=more)
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=media_type)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def status_code(status: int) -> str:
    """The IssueType for an HTTP error status raised without a more specific cause."""
    return _STATUS_CODES.get(status, EXCEPTION if status >= 500 else PROCESSING)


def from_http_exception(exc: HTTPException, *, media_type: str = FHIR_JSON) -> Response:
    """Werkzeug's HTTP errors (405 with its `Allow`, 413 from MAX_CONTENT_LENGTH, ...) as OperationOutcomes."""
    status = exc.code or 500
    allow = {name: value for name, value in exc.get_headers() if name.lower() == "allow"}
    if status == 413:
        diagnostics = "the request body is larger than this service accepts"
    else:
        diagnostics = exc.description or HTTPStatus(status).phrase
    return operation_outcome(status, status_code(status), diagnostics, headers=allow, media_type=media_type)


def internal_error(exc: BaseException, *, media_type: str = FHIR_JSON) -> Response:
    """500 with no traceback and no exception text (either could carry request data); logged here."""
    log.error("unhandled error answering %s %s", request.method, request.path, exc_info=exc)
    return operation_outcome(500, EXCEPTION, "the service failed to answer; the error has been logged",
                             media_type=media_type)

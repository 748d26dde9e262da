"""FHIR OperationOutcome error bodies for the CDS Hooks endpoints (discovery, hooks, feedback).

CDS Hooks 2.0 leaves error bodies open; CDS Hooks 3.0 recommends an OperationOutcome, and EHR
integration engineers read FHIR, so every CDS Hooks error names what failed (`issue.code`) and
where (`issue.expression`, e.g. `feedback[0].outcome`) in the shape they already know. The REST
API uses RFC 9457 problem details instead (`fhir_vcf.service.problems`).

Never put request values (patient ids, comments, tokens) into `diagnostics`: an error body is
copied into EHR logs and tickets. Name the element, not its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask import Response, json

FHIR_JSON = "application/fhir+json"

# FHIR R4 IssueType codes this service uses (http://hl7.org/fhir/issue-type).
INVALID = "invalid"  # content invalid against the specification
STRUCTURE = "structure"  # not parseable (malformed JSON)
REQUIRED = "required"  # a required element is missing
VALUE = "value"  # an element has an incorrect value
NOT_FOUND = "not-found"
SECURITY = "security"
TOO_COSTLY = "too-costly"
TRANSIENT = "transient"
EXCEPTION = "exception"

Issue = tuple[str, str, "str | Sequence[str] | None"]


def _issue(code: str, diagnostics: str, expression: str | Sequence[str] | None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression] if isinstance(expression, str) else list(expression)
    return issue


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
    headers: dict[str, str] | None = None,
) -> Response:
    """An error response whose body is a FHIR OperationOutcome (severity `error`).

    `code` is a FHIR IssueType (`invalid`, `structure`, `required`, `not-found`, `security`,
    `too-costly`, ...); `expression` names the offending element (`feedback[0].outcome`).
    Returned as `application/fhir+json`, which JSON clients accept (`+json`).
    """
    body = operation_outcome_body(code, diagnostics, expression, more=more)
    response = Response(json.dumps(body), status=status, mimetype=FHIR_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response

"""CDS Hooks 2.0 feedback: `POST /cds-services/{id}/feedback`.

The EHR reports what the clinician did with a card: `accepted` (with the suggestion uuids) or
`overridden` (optionally with a coded reason and a free-text comment). Body:
`{"feedback": [{card, outcome, acceptedSuggestions, overrideReason {reason, userComment},
outcomeTimestamp}]}`.

Answers:
- `200` with `{}` once every item is stored or recognised as already stored. The spec only says
  success is 200 and defines no body; `{}` is the smallest body a JSON client can parse, and
  the same answer for a first delivery and a retransmission (idempotent, see `fhir_vcf.store`).
- `400` with an OperationOutcome naming each offending element (`feedback[0].outcome`) for
  malformed JSON or a body that breaks the 2.0 rules: `card` must be a UUID (we always send
  UUIDs); `outcome` is `accepted|overridden`; `acceptedSuggestions` (one or more `{id}`) is
  required with `accepted` and refused with `overridden`; `outcomeTimestamp` is an RFC 3339
  date-time with a time zone; `overrideReason.reason`, when sent, is a Coding with a `code`.
  Members we do not know (`extension` anywhere, future fields) are accepted and ignored, and
  optional members may be `null`. Request values are never echoed into the error.
- `404` (OperationOutcome) for a service id we do not serve.
- `503` (OperationOutcome, `transient`, `Retry-After`) when the database fails, is locked or
  hung past its timeouts: the EHR may retry safely. Never a 401.
- `401` before any of this when JWT trust is configured and the token fails (`service.auth`).

The free-text `userComment` is never logged and not stored (see `fhir_vcf.store`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from werkzeug.exceptions import HTTPException

from fhir_vcf.errors import InputError
from fhir_vcf.service.cds_hooks import SERVICES
from fhir_vcf.service.outcomes import (
    INVALID,
    NOT_FOUND,
    REQUIRED,
    STRUCTURE,
    TRANSIENT,
    error_paths,
    from_http_exception,
    internal_error,
    operation_outcome,
)
from fhir_vcf.sources.files import parse_json
from fhir_vcf.store import StoreError, current_store

log = logging.getLogger(__name__)

bp = Blueprint("feedback", __name__, url_prefix="/cds-services")

MAX_ITEMS = 1000  # one request reports the cards of a few hook calls, not thousands
RETRY_AFTER_SECONDS = 5  # a database that failed: long enough for a restart or failover to finish

# RFC 3339 section 5.6 date-time: full date, "T", full time with a mandatory offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class Rfc3339DateTime(fields.Field):
    """An RFC 3339 date-time with a time zone (the spec: "ISO timestamp in UTC"), as an aware datetime."""

    default_error_messages = {"invalid": "Not an RFC 3339 date-time with a time zone (e.g. 2020-12-11T00:00:00Z)."}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise self.make_error("invalid")
        text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
        try:
            return datetime.fromisoformat(text.replace("t", "T"))
        except ValueError:  # e.g. month 13
            raise self.make_error("invalid") from None


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # CDS Hooks: unknown `extension` members must be accepted and ignored


class CodingSchema(_Lenient):
    system = fields.String(allow_none=True, validate=validate.Length(max=512))
    code = fields.String(required=True, validate=validate.Length(min=1, max=256))
    display = fields.String(allow_none=True, validate=validate.Length(max=512))


class OverrideReasonSchema(_Lenient):
    reason = fields.Nested(CodingSchema, allow_none=True)
    userComment = fields.String(allow_none=True)  # the spec's member names (camelCase)


class AcceptedSuggestionSchema(_Lenient):
    id = fields.String(required=True, validate=validate.Length(min=1, max=128))


class FeedbackItemSchema(_Lenient):
    card = fields.UUID(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(
        fields.Nested(AcceptedSuggestionSchema), allow_none=True, validate=validate.Length(max=100)
    )
    overrideReason = fields.Nested(OverrideReasonSchema, allow_none=True)
    outcomeTimestamp = Rfc3339DateTime(required=True)

    @validates_schema
    def _accepted_needs_suggestions(self, data: Mapping[str, Any], **_: Any) -> None:
        suggestions = data.get("acceptedSuggestions")
        if data.get("outcome") == "accepted" and not suggestions:
            raise ValidationError(
                "Required (one or more suggestion ids) when outcome is accepted.", "acceptedSuggestions"
            )
        if data.get("outcome") == "overridden" and suggestions:
            raise ValidationError("Only allowed when outcome is accepted.", "acceptedSuggestions")


class FeedbackRequestSchema(_Lenient):
    feedback = fields.List(
        fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(max=MAX_ITEMS)
    )


_SCHEMA = FeedbackRequestSchema()


def _invalid(errors: Any) -> Response:
    issues = sorted(set(error_paths(errors)))
    specs = [
        (REQUIRED if message.startswith("Missing data") else INVALID, f"{path or 'body'}: {message}", path or None)
        for path, message in issues
    ]
    code, diagnostics, expression = specs[0]
    return operation_outcome(400, code, diagnostics, expression, more=specs[1:])


# ---------------------------------------------------------------------------------------------
# The endpoint


@bp.post("/<service_id>/feedback")
def receive_feedback(service_id: str) -> Response | tuple[Response, int]:
    if service_id not in SERVICES:
        return operation_outcome(404, NOT_FOUND, f"No CDS service with id {service_id[:80]!r}.")
    try:  # one parse; lone surrogates, NUL and unholdable numbers are a 400, never a database error
        body = parse_json(request.get_data(cache=False) or b" ", source="request body")
    except InputError as exc:
        return operation_outcome(400, STRUCTURE, f"The request body is not valid JSON or not text: {exc.message}")
    try:
        data = _SCHEMA.load(body)
    except ValidationError as exc:
        return _invalid(exc.messages)
    items = data["feedback"]
    try:
        stored, duplicates = current_store().store_feedback(service_id, items)
    except StoreError as exc:
        log.error("feedback: %s", exc)
        return operation_outcome(503, TRANSIENT, "Feedback could not be stored; retry later.",
                                 headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.info("feedback: service %s: %d stored, %d duplicate(s)", service_id, stored, duplicates)
    return jsonify({}), 200


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    """Werkzeug errors inside the view (413 from MAX_CONTENT_LENGTH, ...) as OperationOutcomes."""
    return from_http_exception(exc)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    return internal_error(exc)

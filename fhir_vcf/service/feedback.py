"""CDS Hooks 2.0 feedback: `POST /cds-services/{id}/feedback`, and reading it back per card.

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
  optional members may be `null`. No string may hold a NUL character (PostgreSQL cannot store
  one; refused here for every database alike). Request values are never echoed into the error.
- `400` too when the body is well formed but names what the service never issued: a card uuid
  this service did not answer with (`not-found`, `feedback[0].card`), a suggestion id that card
  did not carry (`invalid`, `feedback[0].acceptedSuggestions[0].id`), or an override reason the
  card did not offer in its `overrideReasons` (`code-invalid`, `feedback[0].overrideReason.reason`;
  the spec: the reason is one "from the list of reasons provided in the Card"). What each card
  offered is remembered with the audit of the call that issued it (`fhir_vcf.store.IssuedCard`);
  cards audited before that was remembered are checked for existence only. One bad item stores
  nothing.
- `404` (OperationOutcome) for a service id we do not serve.
- `503` (OperationOutcome, `transient`, `Retry-After`) when the database fails, is locked or
  hung past its timeouts: the EHR may retry safely. Never a 401. A value the database refuses as
  such is not a 503 (a retry would fail again) but a 400.

`GET /cds-services/{id}/feedback/{card}` reads back what was stored for one card of that service:
`{"card", "service", "feedback": [{outcome, outcomeTimestamp, acceptedSuggestions?,
overrideReason? {reason?, userCommentGiven}, received}]}` (oldest first; `feedback` is empty for an
issued card without feedback yet); `404` when the service never issued that card and holds no
feedback for it. Same JWT trust as every `/cds-services` call.
- `401` before any of this when JWT trust is configured and the token fails (`service.auth`).

The free-text `userComment` is never logged and not stored (see `fhir_vcf.store`).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from werkzeug.exceptions import HTTPException

from fhir_vcf.errors import InputError
from fhir_vcf.service.cds_hooks import SERVICES
from fhir_vcf.service.outcomes import (
    CODE_INVALID,
    INVALID,
    NOT_FOUND,
    REQUIRED,
    STRUCTURE,
    TRANSIENT,
    Issue,
    error_paths,
    from_http_exception,
    internal_error,
    operation_outcome,
)
from fhir_vcf.sources.files import parse_json
from fhir_vcf.store import Store, StoreError, StoreValueError, current_store

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


class Text(fields.String):
    """A string without NUL characters: PostgreSQL text cannot hold one, and no code, system or id
    needs one, so it is refused as invalid input on every database (never a "retry later")."""

    default_error_messages = {"nul": "Must not contain NUL characters."}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("nul")
        return text


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # CDS Hooks: unknown `extension` members must be accepted and ignored


class CodingSchema(_Lenient):
    system = Text(allow_none=True, validate=validate.Length(max=512))
    code = Text(required=True, validate=validate.Length(min=1, max=256))
    display = Text(allow_none=True, validate=validate.Length(max=512))


class OverrideReasonSchema(_Lenient):
    reason = fields.Nested(CodingSchema, allow_none=True)
    userComment = Text(allow_none=True)  # the spec's member names (camelCase)


class AcceptedSuggestionSchema(_Lenient):
    id = Text(required=True, validate=validate.Length(min=1, max=128))


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


def _not_issued(store: Store, service_id: str, items: Sequence[Mapping[str, Any]]) -> list[Issue]:
    """What the items name that `service_id` never issued: unknown cards, suggestions, reasons."""
    issues: list[Issue] = []
    for i, item in enumerate(items):
        where = f"feedback[{i}]"
        card = store.issued_card(str(item["card"]), service_id)
        if card is None:
            issues.append((NOT_FOUND, f"{where}.card: service {service_id} issued no card with this uuid",
                           f"{where}.card"))
            continue
        for j, suggestion in enumerate(item.get("acceptedSuggestions") or ()):
            if not card.offers_suggestion(suggestion["id"]):
                path = f"{where}.acceptedSuggestions[{j}].id"
                issues.append((INVALID, f"{path}: the card carried no suggestion with this id", path))
        reason = (item.get("overrideReason") or {}).get("reason")
        if reason and not card.offers_reason(reason.get("system"), reason["code"]):
            path = f"{where}.overrideReason.reason"
            issues.append((CODE_INVALID, f"{path}: not one of the card's overrideReasons", path))
    return issues


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
        store = current_store()
        issues = _not_issued(store, service_id, items)
        if issues:
            (code, diagnostics, expression), *more = issues
            return operation_outcome(400, code, diagnostics, expression, more=more)
        stored, duplicates = store.store_feedback(service_id, items)
    except StoreValueError as exc:
        log.warning("feedback: %s", exc)
        return operation_outcome(400, INVALID, "The feedback holds a value the database cannot store.")
    except StoreError as exc:
        log.error("feedback: %s", exc)
        return operation_outcome(503, TRANSIENT, "Feedback could not be stored; retry later.",
                                 headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.info("feedback: service %s: %d stored, %d duplicate(s)", service_id, stored, duplicates)
    return jsonify({}), 200


def _rfc3339(value: datetime) -> str:
    """A stored naive-UTC timestamp as RFC 3339 with `Z`."""
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def feedback_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """One stored row in the 2.0 item's shape (the free-text comment is never stored: only whether
    there was one, as `userCommentGiven`); empty members are left out."""
    item: dict[str, Any] = {"outcome": row["outcome"], "outcomeTimestamp": _rfc3339(row["outcome_timestamp"])}
    if row["accepted_suggestions"]:
        item["acceptedSuggestions"] = [{"id": s} for s in row["accepted_suggestions"]]
    reason = {k: row[f"override_{k}"] for k in ("system", "code", "display") if row[f"override_{k}"]}
    if reason or row["user_comment_present"]:
        override: dict[str, Any] = {"userCommentGiven": bool(row["user_comment_present"])}
        if reason:
            override["reason"] = reason
        item["overrideReason"] = override
    item["received"] = _rfc3339(row["received"])
    return item


@bp.get("/<service_id>/feedback/<card>")
def read_feedback(service_id: str, card: str) -> Response:
    if service_id not in SERVICES:
        return operation_outcome(404, NOT_FOUND, f"No CDS service with id {service_id[:80]!r}.")
    try:
        card_uuid = str(uuid.UUID(card))
    except ValueError:
        return operation_outcome(400, INVALID, "The card must be a UUID.", "card")
    try:
        store = current_store()
        rows = store.feedback_for(card_uuid, service_id)
        if not rows and store.issued_card(card_uuid, service_id) is None:
            return operation_outcome(404, NOT_FOUND, f"Service {service_id} issued no card with this uuid.")
    except StoreError as exc:
        log.error("feedback: %s", exc)
        return operation_outcome(503, TRANSIENT, "Feedback could not be read; retry later.",
                                 headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return jsonify({"card": card_uuid, "service": service_id, "feedback": [feedback_item(r) for r in rows]})


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    """Werkzeug errors inside the view (413 from MAX_CONTENT_LENGTH, ...) as OperationOutcomes."""
    return from_http_exception(exc)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    return internal_error(exc)

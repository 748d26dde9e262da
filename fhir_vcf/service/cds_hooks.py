"""CDS Hooks 2.0: discovery and the three services (patient-view, order-select, order-sign).

The flow of a call: JWT (app-wide, `fhir_vcf.service.auth`) → request body checks (marshmallow;
unknown members such as `extension` accepted and ignored) → `fhirServer` allowlist → the record
(prefetch, fetched gaps, draft orders; `fhir_vcf.sources.prefetch`) → `fhir_vcf.evaluation` →
cards (`fhir_vcf.outputs.cards`). No clinical logic here beyond recognising which draft orders
are vertebral augmentation, so that unrelated orders get `{"cards": []}` without a fetch.

As-of date: today (UTC) in production. In demo mode only, the request extension
`{"fhir-vcf": {"asOf": "YYYY-MM-DD"}}` sets it (the sample bundles are dated 2025; `fhir-vcf replay`
and `/demo/fhir/$cds-hooks-request` send it); each card states the date in its own `fhir-vcf`
extension.

`fhirServer`: a malformed value (userinfo, a query or fragment, not http(s)) is a 400; one that is
not on the allowlist is never contacted and its token never used, but a call whose prefetch is
complete is still answered (a warning is logged); when data must be fetched from it, 412.

Every resource that reaches the evaluation is proven to be the context patient's
(`fhir_vcf.sources.binding`); a prefetch holding another Patient is a 400.

Every call to a service writes one audit row, whatever its outcome (200, 4xx, 412, 503), before the
answer leaves: when the row cannot be written the answer is a 503 with Retry-After, never a card
without its audit row. Every error is a 4xx/5xx with an OperationOutcome body naming what is wrong;
no stack trace ever leaves the service. The access token from `fhirAuthorization` is passed to the
FHIR client and nowhere else: not logged, not stored, not echoed.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import orjson
from flask import Blueprint, Response, request
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema
from werkzeug.exceptions import RequestEntityTooLarge

from fhir_vcf.clinical_time import parse_as_of, today_utc
from fhir_vcf.errors import InputError, Unavailable
from fhir_vcf.evaluation import ordered_technique
from fhir_vcf.outputs.cards import CardSource, OrderContext, render_cards
from fhir_vcf.service.ops import record_decisions
from fhir_vcf.service.outcomes import JSON, error_paths, operation_outcome
from fhir_vcf.service.pages import keep_for_pages
from fhir_vcf.sources.files import parse_json
from fhir_vcf.sources.prefetch import (
    PREFETCH_TEMPLATES,
    ForbiddenServer,
    InvalidServer,
    PrefetchUnavailable,
    check_fhir_server,
    request_record,
)
from fhir_vcf.store import IssuedCard

log = logging.getLogger(__name__)

bp = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")


@dataclass(frozen=True)
class HookService:
    id: str
    hook: str
    title: str
    description: str


SERVICES: dict[str, HookService] = {
    s.id: s
    for s in (
        HookService(
            "vcf-patient-view",
            "patient-view",
            "Vertebral augmentation eligibility at a glance",
            "For a patient with a vertebral compression fracture on record: whether vertebral augmentation "
            "(vertebroplasty / kyphoplasty) meets the coverage criteria today, criterion by criterion, with "
            "what is missing and a proposed care plan. Silent when the patient has no vertebral fracture.",
        ),
        HookService(
            "vcf-order-select",
            "order-select",
            "Vertebral augmentation order check",
            "When a vertebral augmentation order (CPT 22510-22515, vertebroplasty, kyphoplasty) is selected: "
            "judges it with its own levels and technique; warns and proposes conservative care when not "
            "eligible, says when the ordered technique differs from the advice, asks for missing data. "
            "Silent for unrelated orders.",
        ),
        HookService(
            "vcf-order-sign",
            "order-sign",
            "Vertebral augmentation order sign-off check",
            "Before a vertebral augmentation order (CPT 22510-22515, vertebroplasty, kyphoplasty) is signed: "
            "judges every draft augmentation order; critical when an absolute exclusion is present, warns "
            "and proposes conservative care when not eligible. Silent for unrelated orders.",
        ),
    )
}

ORDER_HOOKS = frozenset({"order-select", "order-sign"})

def evaluate_record(record: Any, **options: Any) -> dict[str, Any]:
    """`fhir_vcf.evaluation.evaluate_record`, imported at call time (the only clinical entry point;
    tests replace this name with contract-shaped stubs)."""
    from fhir_vcf.evaluation import evaluate_record as core

    return core(record, **options)


def augmentation_orders(draft_orders: Mapping[str, Any] | None) -> dict[str, tuple[str, list[str]]]:
    """reference → (ordered technique, every form the order can be referred to by) for each draft
    vertebral augmentation ServiceRequest in `draftOrders`."""
    found: dict[str, tuple[str, list[str]]] = {}
    if not isinstance(draft_orders, Mapping):
        return found
    if draft_orders.get("resourceType") == "Bundle":
        listed = draft_orders.get("entry")
        entries = [e for e in listed if isinstance(e, Mapping)] if isinstance(listed, list) else []
    else:
        entries = [{"resource": draft_orders}]
    for position, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            continue
        technique = ordered_technique(resource)
        if technique is None:
            continue
        rid = resource.get("id")
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        ref = f"ServiceRequest/{rid}" if isinstance(rid, str) and rid else full_url
        if not ref:
            # the reference build_record gives an entry with neither id nor fullUrl
            ref = f"entry[{position}] (ServiceRequest) in context.draftOrders"
        aliases = [a for a in (ref, full_url) if a]
        found[ref] = (technique, aliases)
    return found


# --- request schema --------------------------------------------------------------------------------


class FhirAuthorizationSchema(Schema):
    class Meta:
        unknown = INCLUDE

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(required=True)
    expires_in = fields.Integer()
    scope = fields.String()
    subject = fields.String()
    patient = fields.String()

    @validates_schema
    def _bearer(self, data: dict[str, Any], **_: Any) -> None:
        if str(data.get("token_type", "")).lower() != "bearer":
            raise ValidationError("must be 'Bearer'", "token_type")


class HookRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE  # `extension` and future members are accepted and ignored

    hook = fields.String(required=True, validate=validate.Length(min=1))
    hookInstance = fields.UUID(required=True)  # the spec's member names, hence camelCase
    fhirServer = fields.Url(require_tld=False, schemes={"http", "https"})
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema, allow_none=True)
    context = fields.Dict(required=True)
    prefetch = fields.Dict(allow_none=True)

    @validates_schema
    def _server_with_token(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("fhirAuthorization") and not data.get("fhirServer"):
            raise ValidationError("fhirServer is required when fhirAuthorization is present", "fhirServer")


# FHIR R4 `id` datatype (https://hl7.org/fhir/R4/datatypes.html#id): what `context.patientId` is
# ("The FHIR Patient.id of the current patient in context", hooks library STU1). It goes into
# fetch URLs, references and logs, so nothing else is accepted.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class PatientViewContext(Schema):
    class Meta:
        unknown = INCLUDE

    # hooks library STU1 1.0.1: userId and patientId are required in all three contexts.
    patientId = fields.String(
        required=True,
        validate=validate.Regexp(FHIR_ID, error="must be a FHIR id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'"),
    )
    userId = fields.String(required=True, validate=validate.Length(min=1))
    encounterId = fields.String(allow_none=True)


class OrderSignContext(PatientViewContext):
    draftOrders = fields.Dict(required=True)

    @validates_schema
    def _bundle(self, data: dict[str, Any], **_: Any) -> None:
        orders = data.get("draftOrders")
        if isinstance(orders, Mapping) and orders.get("resourceType") != "Bundle":
            raise ValidationError("must be a FHIR Bundle", "draftOrders")
        entries = orders.get("entry") if isinstance(orders, Mapping) else None
        if entries is not None and not (isinstance(entries, list) and all(isinstance(e, Mapping) for e in entries)):
            raise ValidationError({"entry": ["must be an array of Bundle entry objects"]}, "draftOrders")


class OrderSelectContext(OrderSignContext):
    selections = fields.List(fields.String(validate=validate.Length(min=1)), required=True)


# One instance of each, shared by every call and thread: building a Schema deep-copies its declared
# fields (0.4 ms a call, two schemas), and `load` keeps no state on the instance (marshmallow 4).
HOOK_REQUEST = HookRequestSchema()
CONTEXT_SCHEMAS: dict[str, Schema] = {
    "patient-view": PatientViewContext(),
    "order-select": OrderSelectContext(),
    "order-sign": OrderSignContext(),
}


# --- responses -----------------------------------------------------------------------------------


def _json(body: Any) -> Response:
    """The answer as compact UTF-8 JSON. orjson writes it as bytes, with no second pass to encode the
    text: the benchmark's 5 KB card answer, response included, in 0.07 M instructions against 0.5 M
    with the standard encoder (callgrind). What orjson refuses (an integer past 64 bits, a key that
    is not a string, a lone surrogate) the standard library writes as ASCII with escapes, so that no
    answer becomes a 500."""
    try:
        data = orjson.dumps(body)
    except orjson.JSONEncodeError:
        data = json.dumps(body).encode("ascii")
    return Response(data, mimetype=JSON)


class Refused(Exception):
    """A request refused with a ready OperationOutcome response."""

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(response.status)


def outcome(status: int, code: str, diagnostics: str, expression: list[str] | None = None) -> Response:
    """An OperationOutcome error response, `application/json` like the hooks' answers."""
    return operation_outcome(status, code, diagnostics, expression, media_type=JSON)


def _refuse(status: int, code: str, diagnostics: str, expression: list[str] | None = None) -> Refused:
    return Refused(outcome(status, code, diagnostics, expression))


def _schema_refusal(error: ValidationError, prefix: str = "") -> Refused:
    by_path: dict[str, list[str]] = {}
    for path, message in error_paths(error.messages, prefix):
        by_path.setdefault(path or "$", []).append(message)
    pairs = [(path, " ".join(messages)) for path, messages in by_path.items()]
    missing = [p for p, m in pairs if "Missing data for required field" in m]
    text = "; ".join(f"{p}: {m}" for p, m in pairs)
    code = "required" if missing and len(missing) == len(pairs) else "invalid"
    return _refuse(400, code, f"invalid CDS Hooks request: {text}", [p for p, _ in pairs])


@bp.errorhandler(Refused)
def _refused(exc: Refused) -> Response:
    """Everything else (Werkzeug errors, a failure of ours) is app.py's: the same OperationOutcomes."""
    return exc.response


# --- audit (JWT trust is app-wide: fhir_vcf.service.auth checks /cds-services* before any view) ------


@dataclass
class CallAudit:
    """What the audit row of one call will say, filled in as the call is understood.

    Written once, whatever the outcome (`write`): one row per call to a service, so a refused or
    failed call is as visible to an auditor as an answered one. The store keeps only a keyed hash
    of the patient (`fhir_vcf.store`).
    """

    service: HookService
    started: float
    hook_instance: str | None = None
    patient: str | None = None
    decisions: list[str] = field(default_factory=list)
    card_uuids: list[str] = field(default_factory=list)
    suggestion_uuids: list[str] = field(default_factory=list)
    card_decisions: dict[str, str] = field(default_factory=dict)
    cards: list[IssuedCard] = field(default_factory=list)  # with what each card offered

    def write(self, status: int) -> None:
        """Record the row; `Unavailable` (503, Retry-After) when the database cannot take it: the
        answer must not leave without its audit row."""
        from fhir_vcf.service.registry import services
        from fhir_vcf.store import StoreError

        try:
            services().store.record_call(
                hook=self.service.hook, service_id=self.service.id, hook_instance=self.hook_instance,
                patient=self.patient, decision=",".join(self.decisions) or None, card_uuids=self.card_uuids,
                suggestion_uuids=self.suggestion_uuids, duration_ms=_ms(self.started), status=status,
                card_decisions=self.card_decisions, cards=self.cards,
            )
        except StoreError as exc:
            log.error("could not record the CDS Hooks call in the audit store: %s", exc)
            raise Unavailable("the audit store is unavailable; the call was not answered, retry shortly",
                              retry_after=5) from None


# --- discovery -------------------------------------------------------------------------------------


def discovery_document() -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": s.hook,
                "id": s.id,
                "title": s.title,
                "description": s.description,
                "prefetch": dict(PREFETCH_TEMPLATES),
                "usageRequirements": (
                    "Send fhirServer with an access token allowing read of the prefetch resource types, "
                    "or fill every prefetch key; the fhirServer must be on this service's allowlist."
                ),
            }
            for s in SERVICES.values()
        ]
    }


@bp.get("")
@bp.get("/")
def discovery() -> Response:
    return _json(discovery_document())


# --- invocation ------------------------------------------------------------------------------------


def _parse_body() -> dict[str, Any]:
    """The request body, parsed once (`sources.files.parse_json`: no lone surrogate, NUL or number
    Python cannot hold gets past it)."""
    from fhir_vcf.service.registry import services

    limit = services().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _refuse(413, "too-costly", f"the request body is larger than {limit} bytes")
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise _refuse(413, "too-costly", f"the request body is larger than {limit} bytes") from None
    if len(raw) > limit:
        raise _refuse(413, "too-costly", f"the request body is larger than {limit} bytes")
    if not raw.strip():
        raise _refuse(400, "structure", "the request body is empty; expected a CDS Hooks request object")
    try:
        body = parse_json(raw, source="request body")
    except InputError as exc:
        raise _refuse(400, "structure", f"the request body is not valid JSON or not text: {exc.message}") from None
    if not isinstance(body, dict):
        raise _refuse(400, "structure", "the request body must be a JSON object")
    return body


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed_servers() -> list[str]:
    """The configured allowlist, plus in demo mode this app's own `/demo/fhir` endpoint.

    The demo base is taken from `public_base_url` when set; the request's own URL root (built
    from the caller's Host header) is accepted only when it is a loopback address, so that a
    forged Host header cannot turn demo mode into a way to send requests to other machines.
    """
    from fhir_vcf.service.registry import services

    settings = services().settings
    allowed = list(settings.allowed_fhir_servers)
    if settings.demo:  # the app's own read-only demo endpoint (fhir_vcf.service.demo_fhir)
        if settings.public_base_url:
            allowed.append(settings.public_base_url.rstrip("/") + "/demo/fhir")
        if _is_loopback(request.url_root):
            allowed.append(request.url_root.rstrip("/") + "/demo/fhir")
    return allowed


def _card_source() -> CardSource:
    """Who the card is from, and the policy's public text (its first cited source with a URL).

    No link to `/api/v1/policies/...` any more: it opened the private policies API as raw JSON. The
    criteria, explained for a person, are on the evaluation's page (`keep_for_pages`).
    """
    from fhir_vcf.service.registry import services

    policy = services().default_policy
    cited = [s for s in getattr(policy, "sources", ()) if getattr(s, "url", "")]
    url = cited[0].url if cited else None
    name = cited[0].citation.split(" (")[0][:80] if cited else policy.id
    return CardSource(
        label=f"fhir-vcf: {getattr(policy, 'title', policy.id)}"[:120],
        url=url,
        guideline_url=url,
        guideline_label=f"Policy text: {name}",
    )


def today() -> date:
    """The as-of date of every evaluation: the request date, UTC (a module function: tests pin it)."""
    return today_utc()


EXTENSION = "fhir-vcf"  # this service's request/card extension member (CDS Hooks: reverse-DNS-ish names)


def as_of_for(body: Mapping[str, Any], *, demo: bool) -> date:
    """The as-of date of this call: today, or in demo mode the request extension's `fhir-vcf.asOf`.

    Production always evaluates as of the request date. Demo mode (the sample bundles are dated
    2025, and `fhir-vcf replay` / `/demo/fhir/$cds-hooks-request` send the date they were written
    for) honours `extension: {"fhir-vcf": {"asOf": "YYYY-MM-DD"}}`; a malformed date is a 400.
    Outside demo mode the member is an unknown extension to us: accepted and ignored (CDS Hooks).
    """
    extension = body.get("extension")
    own = extension.get(EXTENSION) if isinstance(extension, Mapping) else None
    if not isinstance(own, Mapping) or "asOf" not in own:
        return today()
    if not demo:
        log.debug("CDS Hooks request extension %s.asOf ignored: only demo mode evaluates as of another date",
                  EXTENSION)
        return today()
    value = own["asOf"]
    try:
        return parse_as_of(value)
    except ValueError:
        raise _refuse(400, "value", f"extension.{EXTENSION}.asOf must be a date written YYYY-MM-DD",
                      [f"extension.{EXTENSION}.asOf"]) from None


def worth_a_card(evaluation: Mapping[str, Any]) -> bool:
    """Whether patient-view speaks: only for a patient with a vertebral fracture on record (the
    service's description says so); order hooks speak about their orders regardless.

    Read from what the rules state: the coding route is `none` exactly when no fracture is
    documented (`rules/scope.py`).
    """
    return evaluation.get("route", "none") != "none"


def _judged(evaluation: Mapping[str, Any], aliases: list[str]) -> bool:
    """Whether the core judged the order we asked about. When it does not recognise that order as
    vertebral augmentation it judges another one (its default: the latest draft/active request);
    a card about order A carrying order B's levels would mislead, so that order gets no card."""
    requested = evaluation.get("request")
    judged = requested.get("reference") if isinstance(requested, Mapping) else None
    if judged is None or judged in aliases:
        return True
    log.warning("the evaluation core judged another order than the draft order asked about; no card for it",
                extra={"asked": aliases[0], "judged": judged})
    return False


def _ordered(evaluation: Mapping[str, Any], fallback: str) -> str:
    requested = evaluation.get("request")
    if isinstance(requested, Mapping) and isinstance(requested.get("technique"), str):
        return requested["technique"]
    return fallback


@bp.post("/<service_id>")
def invoke(service_id: str) -> Response:
    started = time.perf_counter()
    service = SERVICES.get(service_id)
    if service is None:
        return outcome(404, "not-found", f"no CDS service {service_id!r} here; see GET /cds-services")
    audit = CallAudit(service, started)
    try:
        response = _answer(service, audit)
    except Refused as exc:
        response = exc.response
    except Unavailable as exc:
        response = unavailable(exc)
    except Exception:
        audit.write(500)  # the app's handler logs the failure and answers 500
        raise
    audit.write(response.status_code)
    return response


def unavailable(exc: Unavailable) -> Response:
    """503 with Retry-After: the EHR may retry the call (the database or the fetch slots are busy)."""
    return operation_outcome(503, "transient", str(exc), media_type=JSON,
                             headers={"Retry-After": str(exc.retry_after)})


def _answer(service: HookService, audit: CallAudit) -> Response:
    body = _parse_body()
    try:
        data = HOOK_REQUEST.load(body)
    except ValidationError as exc:
        raise _schema_refusal(exc) from None
    audit.hook_instance = str(data["hookInstance"])
    hook = data["hook"]
    if hook != service.hook:
        raise _refuse(400, "not-supported", f"service {service.id} serves the {service.hook} hook, not {hook!r}",
                      ["hook"])
    try:
        context = CONTEXT_SCHEMAS[hook].load(data["context"])
    except ValidationError as exc:
        raise _schema_refusal(exc, "context") from None
    audit.patient = f"Patient/{context['patientId']}"
    from fhir_vcf import logs

    logs.annotate(hook=service.hook, service=service.id, patient=audit.patient)

    from fhir_vcf.service.registry import services

    svc = services()
    as_of = as_of_for(body, demo=svc.settings.demo)  # a bad date is refused before anything is fetched
    fhir_server, not_allowed = _fhir_server(data.get("fhirServer"))
    token = (data.get("fhirAuthorization") or {}).get("access_token") if fhir_server else None

    orders: dict[str, tuple[str, list[str]]] = {}
    if hook in ORDER_HOOKS:
        orders = augmentation_orders(context["draftOrders"])
        if hook == "order-select":
            selected = set(context["selections"])
            orders = {ref: v for ref, v in orders.items() if selected & set(v[1])}
        if not orders:  # an unrelated order: nothing to say, nothing fetched
            return _finish(service, audit, [], [])

    try:
        record = request_record(
            context=context,
            prefetch=data.get("prefetch"),
            fhir_server=fhir_server,
            token=token,
            client_factory=svc.fhir_client,
            budget=svc.settings.fhir_fetch_budget_seconds,
            slots=svc.fetch_slots,
            not_allowed=not_allowed,
            building=svc.evaluation_slot,
        )
    except PrefetchUnavailable as exc:
        log.warning("CDS Hooks prefetch unavailable", extra={"keys": list(exc.keys), "hook": hook})
        raise _refuse(412, "incomplete", f"required data is unavailable: {exc}",
                      [f"prefetch.{k}" for k in exc.keys] or None) from None
    except InputError as exc:
        raise _refuse(400, "invalid", str(exc)) from None
    if record.skipped:
        logs.annotate(skipped=dict(record.skipped))

    policy = svc.default_policy
    with svc.evaluation_slot:
        evaluations = _judge(hook, record, orders, as_of, policy)
    record_decisions([ev for ev, _ in evaluations], policy.id)
    _annotate_log([ev for ev, _ in evaluations], policy.id)
    explanations = keep_for_pages([ev for ev, _ in evaluations], service.hook)
    response = render_cards(evaluations, source=_card_source(), explanations=explanations)
    return _finish(service, audit, response["cards"], [ev for ev, _ in evaluations])


def _judge(hook: str, record: Any, orders: Mapping[str, tuple[str, list[str]]], as_of: date,
           policy: Any) -> list[tuple[Mapping[str, Any], OrderContext | None]]:
    """(evaluation, order) for each card the call may show. CPU work only: the caller holds the
    process's evaluation slot (`Services.evaluation_slot`) and writes nothing while it does."""
    evaluations: list[tuple[Mapping[str, Any], OrderContext | None]] = []
    try:
        if hook == "patient-view":
            evaluation = evaluate_record(record, as_of=as_of, policy=policy)
            if worth_a_card(evaluation):
                evaluations.append((evaluation, None))
        else:
            for ref, (technique, aliases) in orders.items():
                evaluation = evaluate_record(record, as_of=as_of, policy=policy, request=ref)
                if not _judged(evaluation, aliases):
                    continue
                order = OrderContext(
                    reference=ref,
                    technique=_ordered(evaluation, technique),
                    signing=hook == "order-sign",
                    levels=tuple(evaluation.get("levels") or ()),
                )
                evaluations.append((evaluation, order))
    except InputError as exc:
        raise _refuse(400, "invalid", str(exc)) from None
    return evaluations


def _fhir_server(value: str | None) -> tuple[str | None, str | None]:
    """(the allowlisted fhirServer or None, why it may not be used or None). A malformed value is a
    400; one off the allowlist is not contacted and its token not used (CDS Hooks: "only contact
    servers on a configured allowlist"), but the call goes on with what the prefetch holds."""
    if not value:
        return None, None
    try:
        return check_fhir_server(value, _allowed_servers()), None
    except InvalidServer as exc:
        raise _refuse(400, "invalid", str(exc), ["fhirServer"]) from None
    except ForbiddenServer as exc:
        log.warning("fhirServer is not on the allowlist: answering from the prefetch alone; nothing is fetched "
                    "and the access token is not used", extra={"upstream": urlsplit(value).netloc})
        return None, str(exc)


def _annotate_log(evaluations: list[Mapping[str, Any]], policy_id: str) -> None:
    """The policy and decision for this request's log line; `_answer` annotated the hook, service and
    patient as soon as it knew them (hashing the patient again would give the same field)."""
    from fhir_vcf import logs

    decisions = list(dict.fromkeys(str(ev.get("decision")) for ev in evaluations))
    logs.annotate(policy=policy_id, decision=decisions[0] if len(decisions) == 1 else None)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _finish(
    service: HookService,
    audit: CallAudit,
    cards: list[dict[str, Any]],
    evaluations: list[Mapping[str, Any]],
) -> Response:
    audit.decisions = list(dict.fromkeys(str(ev.get("decision")) for ev in evaluations))
    audit.card_uuids = [card["uuid"] for card in cards]
    audit.cards = [IssuedCard.from_card(card) for card in cards]  # what feedback may name (service.feedback)
    audit.card_decisions = {card["uuid"]: str(ev.get("decision")) for card, ev in zip(cards, evaluations, strict=False)}
    audit.suggestion_uuids = [s["uuid"] for card in cards for s in card.get("suggestions", [])]
    from fhir_vcf import logs

    # On the call's one `request` log line (fhir_vcf.logs), not a line of its own.
    logs.annotate(hookInstance=logs.OwnId(audit.hook_instance) if audit.hook_instance else None, cards=len(cards))
    return _json({"cards": cards})

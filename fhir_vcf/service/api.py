"""The REST API (`/api/v1`): evaluate a posted Bundle, a patient on the EHR's FHIR server, write the
proposed CarePlan back, and list the loaded policies.

A transport only: parsing, validation, FHIR calls and HTTP mapping live here; every clinical answer
comes from `fhir_vcf.evaluation`. Every error is an RFC 9457 problem body (`service/problems.py`).
The document `openapi.yaml` at the repository root describes each route; `tests/test_openapi.py`
fails when a route and the document disagree.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import date
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request
from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, validate

from fhir_vcf import collector, logs
from fhir_vcf.clinical_time import parse_as_of, today_utc
from fhir_vcf.errors import ConfigError, InputError, NotFoundError, UpstreamError
from fhir_vcf.record import PatientRecord, entries_of, load_resources, relative_reference
from fhir_vcf.service import problems
from fhir_vcf.service.ops import record_decisions
from fhir_vcf.service.pages import with_page_links
from fhir_vcf.sources.fhir_server import ByteBudget, FhirClient, TokenSource
from fhir_vcf.sources.files import parse_json
from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES, bind_entries, build_record, resolve_template
from fhir_vcf.sources.smart_backend import SmartBackendAuth

bp = Blueprint("api", __name__, url_prefix="/api/v1")  # errors: app.py's handlers answer with problems

# FHIR R4 `id` datatype (https://hl7.org/fhir/R4/datatypes.html#id).
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
JSON_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json"})
# Used when the rules' CarePlan carries no identifier: the conditional create needs one.
CAREPLAN_IDENTIFIER_SYSTEM = "urn:fhir-vcf:careplan"  # the system the rules' CarePlan uses
# Concurrent searches per patient read: the searches are independent and each has its own timeout.
MAX_FETCH_WORKERS = 6
_EXTENSION_KEY = "fhir_vcf.service.api.smart"
_extension_lock = threading.Lock()


# --- request validation (marshmallow) -------------------------------------------------------------


class IsoDate(fields.Field):
    """A calendar date written exactly YYYY-MM-DD (no week dates, no times, no compact form)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        try:
            return parse_as_of(value)
        except ValueError:
            raise ValidationError("expected a calendar date written YYYY-MM-DD") from None


class EvaluationQuery(Schema):
    """`asOf` (default: today, UTC) and `policy` (default: the configured policy)."""

    class Meta:
        unknown = EXCLUDE  # tolerate cache-busters and tracing parameters

    asOf = IsoDate(load_default=None)  # the public parameter name (camelCase)
    policy = fields.String(load_default=None, validate=validate.Length(min=1, max=200))


class FhirDocument(Schema):
    """The shape every FHIR JSON document has; the R4B models validate the rest."""

    class Meta:
        unknown = INCLUDE

    resourceType = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z][A-Za-z]{0,63}$", error="not a FHIR resource type")
    )


def _invalid_params(errors: Mapping[str, Any]) -> Response:
    params = []
    for name, messages in errors.items():
        reason = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        params.append({"name": name, "reason": reason})
    names = ", ".join(p["name"] for p in params)
    return problems.problem(
        400, f"invalid query parameter(s): {names}", type_=problems.TYPE_INVALID_PARAMETER,
        title="Invalid query parameter", invalidParams=params,
    )


class _Rejected(Exception):
    """Carries a ready problem response out of a helper."""

    def __init__(self, response: Response) -> None:
        self.response = response


@bp.errorhandler(_Rejected)
def _rejected(exc: _Rejected) -> Response:
    return exc.response


def _query() -> tuple[date, str, Any]:
    """(as_of, policy id, Policy) from the query string, or a 400 problem."""
    try:
        args = EvaluationQuery().load(request.args.to_dict(flat=True))
    except ValidationError as exc:
        raise _Rejected(_invalid_params(exc.messages)) from None  # type: ignore[arg-type]
    from fhir_vcf.service.registry import services

    svc = services()
    as_of = args["asOf"] or today_utc()
    policy_id = args["policy"] or svc.settings.policy
    policy = svc.policies.get(policy_id)
    if policy is None:
        raise _Rejected(
            problems.problem(
                400,
                f"unknown policy {policy_id!r}; known: {', '.join(sorted(svc.policies))}",
                type_=problems.TYPE_UNKNOWN_POLICY,
                title="Unknown policy",
                invalidParams=[{"name": "policy", "reason": "not a loaded policy"}],
            )
        )
    return as_of, policy_id, policy


def _patient_id(value: str) -> str:
    if not FHIR_ID.fullmatch(value):
        raise _Rejected(
            problems.problem(
                400,
                "the patient id must be a FHIR id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
                type_=problems.TYPE_INVALID_PARAMETER,
                title="Invalid patient id",
                invalidParams=[{"name": "id", "reason": "not a FHIR id"}],
            )
        )
    return value


def _evaluate(record: PatientRecord, *, as_of: date, policy: Any) -> dict[str, Any]:
    # Imported here so that the API module (and the app) load before the clinical core does.
    from fhir_vcf.evaluation import evaluate_record
    from fhir_vcf.service.registry import services

    with services().evaluation_slot:  # one call of the process judges at a time (`Services`)
        return evaluate_record(record, as_of=as_of, policy=policy)


# --- POST /evaluations ----------------------------------------------------------------------------


@bp.post("/evaluations")
def post_evaluations() -> Response:
    """Evaluate every patient in a posted Bundle (any type) or single resource (at most
    `Settings.max_patients_per_request` of them)."""
    from fhir_vcf.service.registry import services

    if request.mimetype not in JSON_MEDIA_TYPES:
        return problems.problem(
            415,
            f"send the FHIR document as application/fhir+json or application/json, not {request.mimetype or 'nothing'}",
            type_=problems.TYPE_UNSUPPORTED_MEDIA_TYPE,
        )
    as_of, policy_id, policy = _query()
    body = request.get_data(cache=False)
    with collector.paused():  # parse to records in one pause: no collections while the document is read (`collector`)
        document = parse_json(body, source="request body")
        errors = (FhirDocument().validate(document) if isinstance(document, dict)
                  else {"_schema": ["expected an object"]})
        if errors:
            raise InputError("not a FHIR resource: expected a JSON object with a resourceType", source="request body",
                             element="resourceType" if isinstance(document, dict) else None)
        entries = entries_of(document, source="request body")
        limit = services().settings.max_patients_per_request
        if count_patients(entries) > limit:
            return problems.problem(
                413, f"the document holds more than {limit} patients; send at most {limit} per request "
                "(FHIR_VCF_MAX_PATIENTS_PER_REQUEST), or use the population tools for a whole population",
                type_=problems.TYPE_TOO_MANY_PATIENTS, title="Too many patients", limit=limit,
            )
        records = load_resources(entries, source="request body")
    evaluations = [_evaluate(record, as_of=as_of, policy=policy) for record in records]
    record_decisions(evaluations, policy_id)
    if len(evaluations) == 1:
        logs.annotate(decision=evaluations[0].get("decision"), patient=evaluations[0].get("patient"))
    return jsonify({"evaluations": with_page_links(evaluations, "api")})


def count_patients(entries: list[tuple[str | None, Mapping[str, Any], str]]) -> int:
    """How many patients a document's raw entries name (Patient resources and the distinct patient
    references of the others), counted before anything is validated or evaluated: the cost of a
    request grows with it, and one request must not hold a worker thread for minutes."""
    named: set[str] = set()
    for _full_url, resource, label in entries:
        if resource.get("resourceType") == "Patient":
            named.add(label)
            continue
        for element in ("subject", "patient"):
            pointer = resource.get(element)
            reference = pointer.get("reference") if isinstance(pointer, Mapping) else None
            if isinstance(reference, str):
                named.add(relative_reference(reference))
                break
    return len(named)


# --- the EHR's FHIR server ------------------------------------------------------------------------


def _token_source(svc: Any) -> TokenSource:
    """The static token, else the app's one SMART Backend Services provider (it caches the token
    across requests, so it lives in `Services.extras`, built on first use)."""
    settings = svc.settings
    if settings.fhir_token:
        return settings.fhir_token
    if not settings.smart_client_id:
        return None
    with _extension_lock:
        provider = svc.extras.get(_EXTENSION_KEY)
        if provider is None:
            provider = svc.extras[_EXTENSION_KEY] = SmartBackendAuth.from_settings(settings)
        return provider


class Upstream:
    """The configured EHR FHIR server for one request: new clients on demand (one per thread: a
    requests Session is not meant to be shared across threads) and the token source they use."""

    def __init__(self, factory: Callable[[str, Any], FhirClient], base_url: str, token: TokenSource) -> None:
        self._factory = factory
        self.base_url = base_url
        self.token = token

    def client(self) -> FhirClient:
        return self._factory(self.base_url, self.token)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run FHIR calls, mapping what the server sent into our errors.

        A 401 to a SMART token drops the cached token, so the next request fetches a fresh one. A
        resource that is not valid FHIR R4 is the server's fault: 502 naming the resource/element.
        """
        try:
            return function(*args)
        except UpstreamError as exc:
            if exc.upstream_status == 401 and isinstance(self.token, SmartBackendAuth):
                self.token.invalidate()
            raise
        except InputError as exc:
            raise _Rejected(
                problems.problem(
                    502,
                    f"the FHIR server sent invalid data: {exc.message}",
                    type_=problems.TYPE_UPSTREAM,
                    title="FHIR server error",
                    resource=exc.resource,
                    element=exc.element,
                )
            ) from None


def _upstream() -> Upstream:
    """The configured EHR server (the app's client factory: its timeouts and page cap), or a 503."""
    from fhir_vcf.service.registry import services

    svc = services()
    if not svc.settings.fhir_base_url:
        raise _Rejected(
            problems.problem(
                503,
                "this service has no EHR FHIR server configured (FHIR_VCF_FHIR_BASE_URL)",
                type_=problems.TYPE_NOT_CONFIGURED,
                title="FHIR server not configured",
            )
        )
    try:
        token = _token_source(svc)
    except ConfigError as exc:
        raise _Rejected(problems.problem(503, str(exc), type_=problems.TYPE_NOT_CONFIGURED,
                                         title="FHIR server access misconfigured")) from None
    return Upstream(svc.fhir_client, svc.settings.fhir_base_url, token)


def patient_queries(patient_id: str) -> dict[str, str]:
    """The reads and searches that make up a patient's record: the CDS Hooks prefetch templates
    (one list for both transports), resolved for this patient."""
    context = {"patientId": patient_id}
    resolved = {key: resolve_template(template, context) for key, template in PREFETCH_TEMPLATES.items()}
    return {key: query for key, query in resolved.items() if query}


def _search(upstream: Upstream, query: str, deadline: float, budget: ByteBudget) -> list[dict[str, Any]]:
    try:
        return upstream.client().budgeted(deadline=deadline, byte_budget=budget).search(query)
    except NotFoundError as exc:  # a search that 404s is a server failure, not a missing patient
        raise UpstreamError(str(exc), upstream_status=exc.upstream_status) from None


def fetch_record(upstream: Upstream, patient_id: str) -> PatientRecord:
    """Read the Patient (NotFoundError when the server has none), then search the rest concurrently.

    The same budgets as a CDS Hooks fetch: one deadline and one decompressed-bytes budget for the
    whole read, a fetch slot of this worker, and only resources proven to be this patient's kept
    (`fhir_vcf.sources.binding`; another Patient is the server's error, a 502).
    """
    from fhir_vcf.service.registry import services

    settings = services().settings
    slots = services().fetch_slots
    deadline = time.monotonic() + settings.fhir_fetch_budget_seconds
    budget = ByteBudget(settings.fhir_max_decoded_bytes)
    queries = patient_queries(patient_id)
    patient_query = queries.pop("patient", f"Patient/{patient_id}")
    with slots.slot() if slots is not None else nullcontext():
        client = upstream.client().budgeted(deadline=deadline, byte_budget=budget)
        patient = client.get(patient_query)
        if patient.get("resourceType") != "Patient":
            raise UpstreamError(
                f"FHIR server {client.upstream} answered a Patient read with a {patient.get('resourceType')}"
            )
        entries: list[tuple[str | None, Mapping[str, Any], str, str]] = [
            (None, patient, f"Patient/{patient_id}", "FHIR server")
        ]
        with ThreadPoolExecutor(max_workers=MAX_FETCH_WORKERS, thread_name_prefix="api-fetch") as pool:
            futures = {
                key: pool.submit(contextvars.copy_context().run, _search, upstream, query, deadline, budget)
                for key, query in queries.items()
            }
            for key, future in futures.items():  # in template order: the first failure wins, deterministically
                for resource in future.result():
                    rid = resource.get("id")
                    label = f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) else str(key)
                    entries.append((None, resource, label, f"FHIR server ({key})"))
    bound, skipped = bind_entries(entries, patient_id, fhir_server=upstream.base_url)
    record = build_record(bound, patient_id)
    record.skipped.update(skipped)  # reported in the evaluation's `skipped`
    return record


def _evaluate_patient(patient_id: str) -> tuple[dict[str, Any], date, str, Upstream]:
    """(evaluation, as_of, policy id, upstream) for a patient read from the configured FHIR server;
    the decision is counted here, once per answer."""
    patient_id = _patient_id(patient_id)
    as_of, policy_id, policy = _query()
    upstream = _upstream()
    record = upstream.call(fetch_record, upstream, patient_id)
    evaluation = _evaluate(record, as_of=as_of, policy=policy)
    record_decisions([evaluation], policy_id)
    return evaluation, as_of, policy_id, upstream


@bp.get("/patients/<path:patient_id>/evaluation")
def get_patient_evaluation(patient_id: str) -> Response:
    """Evaluate a patient read from the configured FHIR server."""
    evaluation, *_ = _evaluate_patient(patient_id)
    logs.annotate(decision=evaluation.get("decision"), patient=evaluation.get("patient"))
    return jsonify(with_page_links([evaluation], "api")[0])


# --- POST /patients/{id}/careplans ---------------------------------------------------------------


def careplan_identifier(
    care_plan: dict[str, Any], *, patient: str, policy_id: str, as_of: date
) -> tuple[str, str]:
    """(system, value) of the CarePlan's business identifier, adding one if the rules gave none.

    The value is deterministic in (patient, policy, as-of), so a retried write finds the CarePlan
    the first try created instead of adding a second one.
    """
    for identifier in care_plan.get("identifier") or ():
        if isinstance(identifier, Mapping) and identifier.get("system") and identifier.get("value"):
            return identifier["system"], identifier["value"]
    value = hashlib.sha256(f"{patient}|{policy_id}|{as_of.isoformat()}".encode()).hexdigest()[:32]
    care_plan["identifier"] = [*(care_plan.get("identifier") or ()), {"system": CAREPLAN_IDENTIFIER_SYSTEM,
                                                                       "value": value}]
    return CAREPLAN_IDENTIFIER_SYSTEM, value


def if_none_exist(system: str, value: str) -> str:
    """The If-None-Exist header: `identifier=system|value`, escaping only what would break the query."""
    safe = ":/-._~@!$'()*+;"  # not '|' or ',' (token separators)
    return f"identifier={quote(system, safe=safe)}|{quote(value, safe=safe)}"


@bp.post("/patients/<path:patient_id>/careplans")
def post_patient_careplan(patient_id: str) -> Response:
    """Evaluate the patient and write the proposed CarePlan with a conditional create."""
    evaluation, as_of, policy_id, upstream = _evaluate_patient(patient_id)
    proposal = evaluation.get("carePlan")
    if not isinstance(proposal, dict):
        return problems.problem(
            409,
            f"the evaluation (decision {evaluation.get('decision')!r}) proposes no CarePlan to write",
            type_=problems.TYPE_NO_CAREPLAN,
            title="No CarePlan proposed",
            decision=evaluation.get("decision"),
        )
    care_plan = {k: v for k, v in proposal.items() if k not in {"id", "meta"}}  # the server assigns both
    system, value = careplan_identifier(care_plan, patient=f"Patient/{patient_id}", policy_id=policy_id,
                                        as_of=as_of)
    evaluation["carePlan"] = care_plan
    client = upstream.client()
    condition = if_none_exist(system, value)
    status, body, location = upstream.call(lambda: client.create(care_plan, if_none_exist=condition))
    stored = body if isinstance(body, dict) and body.get("resourceType") == "CarePlan" else dict(care_plan)
    if location:
        location = client.url(location)
    elif isinstance(stored.get("id"), str):
        location = client.url(f"CarePlan/{stored['id']}")
    if "id" not in stored and location:
        match = re.search(r"/CarePlan/([A-Za-z0-9\-.]{1,64})", location)
        if match:
            stored["id"] = match.group(1)
    created = status == 201
    response = jsonify({"created": created, "carePlan": stored, "evaluation": evaluation})
    response.status_code = 201 if created else 200
    if location:
        response.headers["Location" if created else "Content-Location"] = location
    return response


# --- policies -------------------------------------------------------------------------------------


@bp.get("/policies")
def list_policies() -> Response:
    from fhir_vcf.service.registry import services

    svc = services()
    return jsonify(
        {
            "default": svc.settings.policy,
            "policies": [svc.policies[pid].to_dict() for pid in sorted(svc.policies)],
        }
    )


SCHEMA_MEDIA_TYPE = "application/schema+json"


@bp.get("/policies/schema")
def policy_schema() -> Response:
    """The JSON Schema of a policy file (`fhir_vcf.rules.policy.policy_json_schema`), for authors.
    A literal route: Werkzeug matches it before `/policies/<id>`, and no policy may be named "schema"."""
    from fhir_vcf.rules.policy import policy_json_schema

    return Response(json.dumps(policy_json_schema(), indent=2) + "\n", mimetype=SCHEMA_MEDIA_TYPE)


@bp.get("/policies/<path:policy_id>")
def get_policy(policy_id: str) -> Response:
    from fhir_vcf.service.registry import services

    policy = services().policies.get(policy_id)
    if policy is None:
        return problems.problem(404, f"no policy {policy_id!r} is loaded", type_=problems.TYPE_NOT_FOUND)
    return jsonify(policy.to_dict())

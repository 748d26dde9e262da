"""CDS Hooks prefetch → the patient's record, fetching what the EHR did not send.

Each prefetch key arrives in one of four states (CDS Hooks 2.0, "Prefetch"), and each is handled:

- **present**: a resource or a Bundle (possibly empty, possibly paged: `next` links are followed
  through `fhirServer` when the server may be contacted);
- **null**: the EHR says there is no such data → used as "nothing", never refetched;
- **absent**: the EHR did not fill the key → fetched from `fhirServer` with the bearer token from
  `fhirAuthorization`, the template's tokens resolved here;
- **an OperationOutcome** in place of data: the EHR failed → treated as absent.

Required data that is absent and cannot be fetched (no `fhirServer`, a `fhirServer` not on the
allowlist, a server failure or timeout) raises `PrefetchUnavailable` (the blueprint answers 412).
`check_fhir_server` sorts a caller's `fhirServer` into allowed, not allowed (`ForbiddenServer`:
nothing is sent to it, and its token is not used; a complete prefetch is still answered) and
malformed (`InvalidServer`, 400: userinfo, a query or fragment, a backslash). The URL comes from
the caller: without the allowlist anyone could make the service send requests, with tokens, to
internal hosts. Every request then goes through `FhirClient`'s one guarded path (the URL checked
after normalisation, no redirects, the token only under the base, deadline and byte budgets).

Before anything reaches the record, `fhir_vcf.sources.binding` keeps only the resources proven to
belong to `context.patientId` (`request_record` returns the counts of the others, by reason). A
prefetched Patient that is another patient refuses the request (400); a fetched one, 412.

The fetch phase has one deadline (`budget`); each key is fetched on its own thread (which carries
the request's log context: request id and trace), and no request of it outlives the deadline.
`FetchSlots` bounds how many calls of a process fetch at once.

The access token lives only in the FhirClient's Authorization header: it is never logged, stored,
or put into an error message.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from fhir_vcf.errors import FhirVcfError, InputError, UpstreamError
from fhir_vcf.record import DUPLICATE, PatientRecord, entries_of, load_resources
from fhir_vcf.sources.binding import PatientMismatch, bind_to_patient
from fhir_vcf.sources.fhir_server import ByteBudget, FetchSlots, FhirBase, FhirClient, UnsafeUrl, next_link

log = logging.getLogger(__name__)

# Everything the rules read (input profile), as CDS Hooks 2.0 prefetch templates. Only the 2.0
# context tokens, and only the query subset: read, type search with token equality, `_count`,
# `_sort` (`_sort=-date` is valid 2.0 syntax). Dated types are sorted newest first so that, if the
# page cap cuts a long history, what is cut is the oldest part.
PREFETCH_TEMPLATES: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}&_count=100",
    "imagingStudies": "ImagingStudy?patient={{context.patientId}}&_count=100",
    "diagnosticReports": "DiagnosticReport?patient={{context.patientId}}&_count=100&_sort=-date",
    "observations": "Observation?patient={{context.patientId}}&_count=100&_sort=-date",
    "encounters": "Encounter?patient={{context.patientId}}&_count=100&_sort=-date",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&_count=100",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}&_count=100",
    "medicationAdministrations": "MedicationAdministration?patient={{context.patientId}}&_count=100",
    "procedures": "Procedure?patient={{context.patientId}}&_count=100",
    "serviceRequests": "ServiceRequest?patient={{context.patientId}}&_count=100",
    "allergyIntolerances": "AllergyIntolerance?patient={{context.patientId}}&_count=100",
    "deviceRequests": "DeviceRequest?patient={{context.patientId}}&_count=100",
    "carePlans": "CarePlan?patient={{context.patientId}}&_count=100",
    # Radiology reports and clinic notes as documents (input profile, "report text"); superseded and
    # entered-in-error ones are set aside, and counted, by the loader.
    "documentReferences": "DocumentReference?patient={{context.patientId}}&_count=100&_sort=-date",
}

# The whole fetch phase must leave room for the evaluation inside the EHR's 5-second budget
# (Da Vinci CRD; the spec itself asks for ~500 ms): per-call timeouts come from Settings, this caps
# the sum of retries and pages across keys.
FETCH_BUDGET_SECONDS = 3.5
MAX_FETCH_WORKERS = 6

# Order types whose drafts carry the FHIR status "draft".
_DRAFT_STATUS_TYPES = frozenset({"ServiceRequest", "MedicationRequest", "DeviceRequest", "CarePlan"})

_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")

ClientFactory = Callable[[str, "str | None"], FhirClient]


class PrefetchUnavailable(FhirVcfError):
    """Required data is absent and could not be fetched: the blueprint answers 412."""

    def __init__(self, message: str, *, keys: Iterable[str] = ()) -> None:
        self.keys = tuple(keys)
        super().__init__(message)


class ForbiddenServer(FhirVcfError):
    """`fhirServer` is not on the allowlist: nothing is sent to it and its token is not used."""


class InvalidServer(ForbiddenServer):
    """`fhirServer` is not a usable FHIR base URL (userinfo, a query or fragment, not http(s)...): 400."""


def normalise_base(url: str) -> str:
    """A comparable form of a FHIR base URL: lower-case scheme and host, no default port, no
    trailing slash, no query or fragment (path case kept: paths are case-sensitive). A URL that
    does not parse (a bad port, a broken IPv6 literal) stays as written, so it matches only itself."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    path = re.sub(r"/+", "/", parts.path).rstrip("/")
    return urlunsplit((scheme, host, path, "", ""))


def check_fhir_server(fhir_server: str, allowed: Iterable[str]) -> str:
    """The normalised `fhirServer` if it is on the allowlist; InvalidServer when it is not a usable
    base URL, ForbiddenServer when it is one but not allowed.

    Both sides are normalised by the HTTP client's own parser (`FhirBase`), so `?@`, `#@`,
    `user:pw@` and `\\@` forms cannot make a URL pass for an allowed one.
    """
    try:
        wanted = FhirBase.parse(fhir_server).url
    except UnsafeUrl as exc:
        raise InvalidServer(f"fhirServer is not a usable FHIR base URL: {exc}") from None
    allowed_set = set()
    for base in allowed:
        try:
            allowed_set.add(FhirBase.parse(base).url)
        except UnsafeUrl:
            continue
    if wanted not in allowed_set:
        raise ForbiddenServer(
            f"fhirServer {wanted} is not on this service's list of allowed FHIR servers "
            "(FHIR_VCF_ALLOWED_FHIR_SERVERS)"
        )
    return wanted


def resolve_template(template: str, context: Mapping[str, Any]) -> str | None:
    """The query with its 2.0 tokens filled in (URL-encoded); None when a token has no value.

    Supported: `{{context.<field>}}` for string context fields, and the user tokens
    `{{userPractitionerId}}`, `{{userPractitionerRoleId}}`, `{{userPatientId}}`,
    `{{userRelatedPersonId}}` derived from `context.userId` ("Practitioner/123" → "123").
    """
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        found: Any = None
        if name.startswith("context."):
            found = context.get(name[len("context."):])
        elif name.startswith("user") and name.endswith("Id"):
            user = context.get("userId")
            wanted_type = name[len("user"):-len("Id")]
            if isinstance(user, str) and user.split("/")[0] == wanted_type and "/" in user:
                found = user.split("/", 1)[1]
        if not isinstance(found, str) or not found:
            missing = True
            return ""
        return quote(found, safe="")

    resolved = _TOKEN.sub(value, template)
    return None if missing else resolved


@dataclass
class FetchPlan:
    """What a request's prefetch holds, and what must still be fetched."""

    entries: list[tuple[str | None, Mapping[str, Any], str, str]] = field(default_factory=list)
    to_fetch: dict[str, str] = field(default_factory=dict)  # key → resolved query
    to_page: dict[str, str] = field(default_factory=dict)  # key → `next` URL of a present Bundle
    unavailable: list[str] = field(default_factory=list)  # keys whose template cannot be resolved


def _is_outcome(value: Any) -> bool:
    return (type(value) is dict or isinstance(value, Mapping)) and value.get("resourceType") == "OperationOutcome"


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    return next_link(bundle)


def plan_prefetch(
    prefetch: Mapping[str, Any] | None,
    context: Mapping[str, Any],
    templates: Mapping[str, str] = PREFETCH_TEMPLATES,
) -> FetchPlan:
    """Sort each template key into present / null / absent (fetch) and collect the present data."""
    prefetch = prefetch or {}
    plan = FetchPlan()
    for key, template in templates.items():
        if key in prefetch and prefetch[key] is None:
            continue  # null: the EHR has no such data; do not refetch
        value = prefetch.get(key)
        if key in prefetch and not _is_outcome(value):
            if type(value) is not dict and not isinstance(value, Mapping):  # `type`: the ABC check costs more
                raise InputError("expected a FHIR resource, a Bundle or null", source=f"prefetch.{key}")
            source = f"prefetch.{key}"
            plan.entries.extend([(full_url, resource, label, source)
                                 for full_url, resource, label in entries_of(value, source=source)])
            if value.get("resourceType") == "Bundle":
                next_url = _next_link(value)
                if next_url:
                    plan.to_page[key] = next_url
            continue
        # absent, or an OperationOutcome in place of data: fetch it
        query = resolve_template(template, context)
        if query is None:
            plan.unavailable.append(key)
        else:
            plan.to_fetch[key] = query
    return plan


def _fetch_one(
    client: FhirClient, query: str, *, is_next: bool, key: str, stop: threading.Event | None = None
) -> list[Mapping[str, Any]]:
    """The resources behind one key: a read, a search across pages, or the rest of a paged Bundle.

    Pages are followed here rather than inside the client so that a cut at the page cap is logged;
    the client refuses any `next` link outside `fhirServer` (after normalisation) before the bearer
    token is sent anywhere. `stop` is set once the call has been answered: no further page.
    """
    try:
        if not (is_next or "?" in query or "/" not in query):  # a read: Patient/123
            body = client.get(query)
            return [] if _is_outcome(body) else [body]
        resources: list[Mapping[str, Any]] = []
        url, pages = query, 0
        while True:
            if stop is not None and stop.is_set():
                raise UpstreamError("fetch abandoned: the time budget is spent")
            try:
                page = client.get(url)
            except UnsafeUrl:
                if url == query and not is_next:
                    raise
                raise UpstreamError(
                    "fhirServer answered a next link outside its base (another server or path); it was not followed"
                ) from None
            pages += 1
            if page.get("resourceType") != "Bundle":
                resources.append(page)
                break
            entries = page.get("entry")
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, Mapping) and isinstance(entry.get("resource"), dict):
                    resources.append(entry["resource"])
            next_url = _next_link(page)
            if not next_url:
                break
            if pages >= client.max_pages:
                log.warning("prefetch key %s: stopped after %d page(s) (FHIR_VCF_FHIR_MAX_PAGES); older entries unread",
                            key, pages)
                break
            url = next_url
        return [r for r in resources if isinstance(r, Mapping) and not _is_outcome(r)]
    finally:
        client.close()


def fetch_missing(
    plan: FetchPlan,
    *,
    fhir_server: str | None,
    token: str | None,
    client_factory: ClientFactory,
    budget: float = FETCH_BUDGET_SECONDS,
    slots: FetchSlots | None = None,
    not_allowed: str | None = None,
) -> list[tuple[str | None, Mapping[str, Any], str, str]]:
    """Fetch the absent keys and the remaining pages of present ones, concurrently, within `budget`.

    Raises PrefetchUnavailable when required data cannot be had, and `Unavailable` (503) when every
    fetch slot of this process is taken. A present Bundle's `next` link is followed only when it is
    under the (allowlisted) `fhirServer`; without a server to ask, the pages the EHR sent are used
    as they are. `not_allowed` says why there is no server to ask (a fhirServer off the allowlist),
    for the 412's message.
    """
    if plan.unavailable:
        raise PrefetchUnavailable(
            "required data is absent and its prefetch query cannot be resolved from the context",
            keys=plan.unavailable,
        )
    jobs: dict[str, tuple[str, bool]] = {key: (query, False) for key, query in plan.to_fetch.items()}
    base = FhirBase.parse(fhir_server) if fhir_server else None
    for key, url in plan.to_page.items():
        if base is None:
            log.warning("prefetch key %s is paged but there is no fhirServer to follow it; using the pages sent", key)
            continue
        try:
            base.resolve(url)
        except UnsafeUrl:
            raise PrefetchUnavailable(
                f"prefetch.{key}: its next link is not under fhirServer; refusing to follow it", keys=[key]
            ) from None
        jobs[key] = (url, True)
    if not jobs:
        return []
    if not fhir_server:
        reason = f"; {not_allowed}" if not_allowed else " and there is no fhirServer to fetch it from"
        raise PrefetchUnavailable(
            f"required data is absent from prefetch{reason}", keys=sorted(plan.to_fetch),
        )

    with slots.slot() if slots is not None else nullcontext():
        return _fetch_all(jobs, fhir_server=fhir_server, token=token, client_factory=client_factory, budget=budget)


def _fetch_all(
    jobs: Mapping[str, tuple[str, bool]],
    *,
    fhir_server: str,
    token: str | None,
    client_factory: ClientFactory,
    budget: float,
) -> list[tuple[str | None, Mapping[str, Any], str, str]]:
    found: list[tuple[str | None, Mapping[str, Any], str, str]] = []
    started = time.monotonic()
    deadline = started + budget
    stop = threading.Event()
    clients = {key: client_factory(fhir_server, token) for key in jobs}
    shared = ByteBudget(next(iter(clients.values())).byte_budget.limit)  # one decompressed-bytes budget per call
    pool = ThreadPoolExecutor(max_workers=min(MAX_FETCH_WORKERS, len(jobs)), thread_name_prefix="prefetch")
    try:
        futures = {
            pool.submit(
                contextvars.copy_context().run,  # the request id and trace follow the fetch into its thread
                _fetch_one, clients[key].budgeted(deadline=deadline, byte_budget=shared), query,
                is_next=is_next, key=key, stop=stop,
            ): key
            for key, (query, is_next) in jobs.items()
        }
        done, pending = wait(futures, timeout=budget, return_when=FIRST_EXCEPTION)
        failed: list[str] = []
        reasons: list[str] = []
        for future in done:
            key = futures[future]
            error = future.exception()
            if error is None:
                continue
            failed.append(key)
            reasons.append(str(error) if isinstance(error, FhirVcfError) else type(error).__name__)
            if not isinstance(error, FhirVcfError):
                log.error("prefetch fetch of %s failed unexpectedly", key, exc_info=error)
        if failed:
            raise PrefetchUnavailable(
                "could not fetch required data from fhirServer: " + "; ".join(sorted(set(reasons))),
                keys=sorted(failed),
            )
        if pending:
            raise PrefetchUnavailable(
                f"fhirServer did not deliver the required data within {budget:g} s",
                keys=sorted(futures[f] for f in pending),
            )
        for future, key in futures.items():
            for resource in future.result():
                found.append((None, resource, _label(resource), f"fhirServer ({key})"))
    finally:
        stop.set()  # fetches still running after the budget request no further page (and their deadline cuts them)
        pool.shutdown(wait=False, cancel_futures=True)
        log.info("prefetch fetched %d key(s) in %.3f s", len(jobs), time.monotonic() - started)
    return found


def _label(resource: Mapping[str, Any]) -> str:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) else str(resource.get("resourceType"))


def draft_entries(
    draft_orders: Mapping[str, Any] | None, patient_id: str
) -> list[tuple[str | None, Mapping[str, Any], str, str]]:
    """`context.draftOrders` as record entries: status draft, subject defaulted to the patient."""
    if not draft_orders:
        return []
    entries = []
    for full_url, resource, label in entries_of(draft_orders, source="context.draftOrders"):
        order = dict(resource)
        if order.get("resourceType") in _DRAFT_STATUS_TYPES:
            order["status"] = "draft"
            order.setdefault("subject", {"reference": f"Patient/{patient_id}"})
        entries.append((full_url, order, label, "context.draftOrders"))
    return entries


def build_record(
    entries: Iterable[tuple[str | None, Mapping[str, Any], str, str]], patient_id: str
) -> PatientRecord:
    """One validated record for the context patient; later entries replace earlier ones with the
    same Type/id (so a draft order wins over its stored copy, a fetched page over nothing)."""
    unique: dict[str, tuple[str | None, Mapping[str, Any], str]] = {}
    anonymous = duplicates = 0
    for full_url, resource, label, source in entries:
        rid = resource.get("id")
        if isinstance(rid, str) and rid:
            key = f"{resource.get('resourceType')}/{rid}"
            duplicates += unique.pop(key, None) is not None
        else:
            anonymous += 1
            key = f"#{anonymous}"
        unique[key] = (full_url, resource, f"{label} in {source}")
    wanted = f"Patient/{patient_id}"
    records = load_resources(unique.values(), source="CDS Hooks request")
    record = next((r for r in records if r.patient == wanted), None)
    others = [r for r in records if r.patient != wanted]
    if record is None and len(others) == 1 and not others[0].patient.startswith("Patient/"):
        record = others[0]  # e.g. a Patient without id filed under its fullUrl
    if record is None:
        record = PatientRecord(patient=wanted, source="CDS Hooks request")
        if records:
            record.index.update(records[0].index)
    if duplicates:
        record.skipped[DUPLICATE] += duplicates
    return record


def bind_entries(
    entries: list[tuple[str | None, Mapping[str, Any], str, str]], patient_id: str, *, fhir_server: str | None
) -> tuple[list[tuple[str | None, Mapping[str, Any], str, str]], Counter[str]]:
    """The entries of the context patient only (`fhir_vcf.sources.binding`), and the skip counts.

    Another Patient: a 400 (InputError) when the caller sent it, a 412 (PrefetchUnavailable) when the
    server answered with it. A draft order for another patient is the caller's error too (400).
    """
    try:
        binding = bind_to_patient(entries, patient_id, fhir_server=fhir_server)
    except PatientMismatch as exc:
        if (exc.source or "").startswith("fhirServer"):
            raise PrefetchUnavailable(f"fhirServer answered with another patient's record ({exc.message})",
                                      keys=[(exc.source or "").partition("(")[2].rstrip(")")]) from None
        raise
    drafts = [(label, reason) for label, source, reason in binding.dropped if source == "context.draftOrders"]
    if drafts:
        label, reason = drafts[0]
        raise InputError(f"a draft order must be for context.patientId ({reason})", source="context.draftOrders",
                         resource=label)
    if binding.skipped:
        log.warning("set aside %d resource(s) not proven to be the context patient's",
                    sum(binding.skipped.values()), extra={"skipped": dict(binding.skipped)})
    return binding.entries, binding.skipped


def request_record(
    *,
    context: Mapping[str, Any],
    prefetch: Mapping[str, Any] | None,
    fhir_server: str | None,
    token: str | None,
    client_factory: ClientFactory,
    templates: Mapping[str, str] = PREFETCH_TEMPLATES,
    budget: float = FETCH_BUDGET_SECONDS,
    slots: FetchSlots | None = None,
    not_allowed: str | None = None,
    building: AbstractContextManager[Any] | None = None,
) -> PatientRecord:
    """The context patient's record (prefetch, plus what had to be fetched, plus draft orders, each
    proven to be that patient's); `skipped` counts what was set aside, the binding's reasons included.

    `fhir_server` is None unless it is on the allowlist (the caller checks it); `not_allowed` then
    says why, for the 412 when data must be fetched. `building`, when given, is held while the record
    is bound and built (CPU work), not while fetching: the service's evaluation slot.
    """
    patient_id = context["patientId"]
    plan = plan_prefetch(prefetch, context, templates)
    entries = list(plan.entries)
    entries.extend(
        fetch_missing(plan, fhir_server=fhir_server, token=token, client_factory=client_factory, budget=budget,
                      slots=slots, not_allowed=not_allowed)
    )
    entries.extend(draft_entries(context.get("draftOrders"), patient_id))
    with building if building is not None else nullcontext():
        bound, skipped = bind_entries(entries, patient_id, fhir_server=fhir_server)
        record = build_record(bound, patient_id)
    record.skipped.update(skipped)  # the evaluation reports them with the loader's own (issue 9)
    return record


__all__ = [
    "FETCH_BUDGET_SECONDS",
    "PREFETCH_TEMPLATES",
    "ClientFactory",
    "ForbiddenServer",
    "InvalidServer",
    "PrefetchUnavailable",
    "bind_entries",
    "build_record",
    "check_fhir_server",
    "draft_entries",
    "fetch_missing",
    "normalise_base",
    "plan_prefetch",
    "request_record",
    "resolve_template",
]

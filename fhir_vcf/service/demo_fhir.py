"""Demo mode: the sample patients on a FHIR R4 endpoint at `/demo/fhir`, dated as of today.

With `FHIR_VCF_DEMO=true` (`fhir-vcf serve --demo`) a newcomer can try every path of the service
without an EHR: the CDS Hooks services accept `{base}/demo/fhir` as `fhirServer` (see
`cds_hooks._allowed_servers`), so a hook call without prefetch makes the service fetch the record
from here exactly as it would from an EHR, paging included.

- `GET /demo/fhir/metadata`: a minimal CapabilityStatement;
- `GET /demo/fhir/{Type}/{id}`: read;
- `GET /demo/fhir/{Type}?patient=|subject=|_id=|status=|category=|code=|date=|_count=|_sort=`:
  search → a searchset Bundle with `total` and `self` / `first` / `previous` / `next` links
  (`_count` per page, `_getpagesoffset` for the offset); date parameters follow the FHIR R4 rules
  (`fhir_vcf.sources.memory`); parameters the server does not support are ignored and left out
  of the `self` link (FHIR's lenient handling), or refused with 400 under `Prefer:
  handling=strict`; malformed values (`_count=abc`) are 400;
- `POST /demo/fhir/CarePlan`: the CarePlan write-back, so that `POST
  /api/v1/patients/{id}/careplans` (and any client) can be tried end to end. A conditional
  create (`If-None-Exist`, FHIR R4 "RESTful API" 3.1.0.8.1): no match creates (201, `Location`),
  one match answers it (200), several are 412. The body must be a valid FHIR R4 CarePlan (400
  otherwise). Written resources live in the store's `demo_resource` table, so every worker
  process sees them; searches and reads include them. Other writes are 405;
- `GET /demo/fhir/$cds-hooks-request?patient=ID&hook=patient-view|order-select|order-sign[&asOf=D]`: a
  complete CDS Hooks request for a sample patient, prefetch filled (what `fhir-vcf replay` sends:
  both build it with `fhir_vcf.sources.hook_request`), to pipe into `curl -d @-`;
- unknown ids and types are 404 with an OperationOutcome.

Dates. Real clients send no as-of date: the service evaluates as of today. So the endpoint serves
each sample patient's record moved in time (`fhir_vcf.sources.timeshift`: every date by the same
number of days, so every interval the rules count is kept) such that the date the sample was
written for, its `asOf` in the folder's `expected.json`, falls on today. A client that sends no
as-of date therefore sees the decision `expected.json` documents for that patient, on any day.
`$cds-hooks-request?asOf=D` builds the request from the record moved to D and names D, so it too
gives the documented decision. A patient without an `asOf` in `expected.json` is served as
written, and so is everything with `FHIR_VCF_DEMO_DATES=as-written`. (Replay reads the sample
files themselves, with each expectation's own `asOf`, so `fhir-vcf replay samples --expect
samples/expected.json` is unaffected.) The view is rebuilt when the UTC date changes.

CORS. Browser-based clients (the CDS Hooks Sandbox) call from their own origin: in demo mode, the
CDS Hooks and demo FHIR endpoints answer CORS for any origin, but only to callers on this machine
(a loopback peer address), never to the network (`init_demo_cors`). `FHIR_VCF_CORS_ORIGINS` still
governs everything else.

Where the data comes from (one source of truth, the repository's `samples/` folder, never
copied into the package): `FHIR_VCF_DEMO_DIR` when set, else `samples/` beside the `fhir_vcf`
package (a source checkout or an editable install). A non-editable install has no samples: demo
mode then refuses to start with a message naming `FHIR_VCF_DEMO_DIR`; the Docker image copies
`samples/` to `/app/samples` and sets the variable. The bundles are read once per app, when the
blueprint is registered, so a broken sample stops the start-up instead of failing a request.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
import shutil
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fhir.resources.R4B import get_fhir_model_class
from flask import Blueprint, Flask, Response, current_app, request

from fhir_vcf.clinical_time import parse_as_of
from fhir_vcf.errors import ConfigError, FhirVcfError
from fhir_vcf.service.outcomes import FHIR_JSON, operation_outcome
from fhir_vcf.sources.files import bundle_files, parse_json
from fhir_vcf.sources.hook_request import HOOKS, build_request, draft_orders
from fhir_vcf.sources.memory import TOKEN_PARAMS, MemoryFhir, QueryError, searchset
from fhir_vcf.sources.timeshift import days_between, shift_resource
from fhir_vcf.store import StoreError, StoreValueError
from fhir_vcf.version import __version__

log = logging.getLogger(__name__)

bp = Blueprint("demo_fhir", __name__, url_prefix="/demo/fhir")

PREFIX = "/demo/fhir"
DEFAULT_COUNT = 50
MAX_COUNT = 500
OFFSET_PARAM = "_getpagesoffset"
_EXTENSION = "fhir_vcf.demo_fhir"
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


# --- data -----------------------------------------------------------------------------------------


def samples_dir(settings: Any) -> Path:
    """The folder demo mode serves: FHIR_VCF_DEMO_DIR, else samples/ of the source checkout."""
    configured = getattr(settings, "demo_dir", None)
    if configured:
        path = Path(configured)
        if not path.is_dir():
            raise ConfigError(f"FHIR_VCF_DEMO_DIR: no such directory {configured}")
        return path
    # From this file, not fhir_vcf.__file__ (None under a stale editable install's namespace package).
    checkout = Path(__file__).resolve().parents[2] / "samples"
    if checkout.is_dir():
        return checkout
    raise ConfigError(
        "demo mode needs the sample Bundles: set FHIR_VCF_DEMO_DIR to the samples/ folder of the fhir-vcf "
        "source (the Docker image sets it to /app/samples)"
    )


class DemoData:
    """The sample patients, served as of a date, plus what clients wrote to the endpoint.

    `files` are (file name, parsed document); `anchors` are file name → "Patient/id" → the date
    the file was written for (`expected.json`'s `asOf`). Views are immutable `MemoryFhir` stores,
    built per (date, latest write) and kept for the last few, so concurrent requests share them.
    """

    def __init__(self, files: Sequence[tuple[str, Any]], anchors: Mapping[str, Mapping[str, date]],
                 *, move: bool = True) -> None:
        self._resources: list[tuple[dict[str, Any], date | None]] = []
        for name, document in files:
            if not isinstance(document, Mapping):
                continue
            per_file = MemoryFhir.from_bundles([document])  # ids assigned, fullUrl references resolved
            patients = anchors.get(name, {})
            shared = set(patients.values())
            for rtype in per_file.types:
                for resource in per_file.resources(rtype):
                    anchor = patients.get(_patient_of(resource)) if move else None
                    if anchor is None and move and len(shared) == 1:
                        anchor = next(iter(shared))  # a Practitioner of a one-date file moves with it
                    self._resources.append((resource, anchor))
        self._views: dict[tuple[date | None, int], MemoryFhir] = {}
        self._lock = threading.Lock()

    def patients(self) -> list[str]:
        return sorted({r["id"] for r, _ in self._resources if r.get("resourceType") == "Patient"})

    def view(self, on: date | None, written: tuple[int, list[dict[str, Any]]] = (0, [])) -> MemoryFhir:
        """The store as of `on` (None: as written), with the written resources."""
        key = (on, written[0])
        with self._lock:
            found = self._views.get(key)
            if found is None:
                moved = [shift_resource(r, days_between(anchor, on)) if anchor and on else r
                         for r, anchor in self._resources]
                found = MemoryFhir((None, r) for r in [*moved, *written[1]])
                if len(self._views) >= 4:
                    self._views.pop(next(iter(self._views)))
                self._views[key] = found
            return found


def _patient_of(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return f"Patient/{resource.get('id')}"
    for element in ("subject", "patient", "beneficiary"):
        pointer = resource.get(element)
        ref = pointer.get("reference") if isinstance(pointer, Mapping) else None
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref
    return None


def load_demo(folder: Path, *, move: bool = True) -> DemoData:
    """Every sample Bundle of `folder`, with `expected.json`'s dates; a file that is not JSON stops the start-up."""
    files = bundle_files([folder])
    if not files:
        raise ConfigError(f"demo mode: no sample Bundles (*.json) in {folder}")
    documents = []
    for path in files:
        try:
            documents.append((path.name, parse_json(path.read_bytes(), source=str(path))))
        except (OSError, FhirVcfError) as exc:
            raise ConfigError(f"demo mode: cannot load {path}: {exc}") from None
    anchors = _anchors(folder / "expected.json")
    data = DemoData(documents, anchors, move=move)
    log.info("demo FHIR endpoint serving sample patients",
             extra={"count": len(data.patients()), "dates": "today" if move and anchors else "as written"})
    return data


def _anchors(path: Path) -> dict[str, dict[str, date]]:
    """file name → "Patient/id" → the date its expectation holds on (`expected.json`, as replay reads it)."""
    if not path.is_file():
        log.warning("demo mode: no %s; the samples are served with the dates they were written with", path.name)
        return {}
    from fhir_vcf.sources.expectations import load_expectations

    try:
        expectations = load_expectations(path)
    except FhirVcfError as exc:
        raise ConfigError(f"demo mode: {exc}") from None
    return {name: {patient: e.as_of for patient, e in patients.items() if e.as_of}
            for name, patients in expectations.items()}


def load_store(folder: Path) -> MemoryFhir:
    """The samples of `folder` as written, in one store (for tools that want the files' own dates)."""
    return load_demo(folder, move=False).view(None)


@bp.record_once
def _load(state: Any) -> None:
    settings = state.app.extensions["fhir_vcf"].settings
    state.app.extensions[_EXTENSION] = load_demo(samples_dir(settings), move=settings.demo_dates == "today")
    init_demo_cors(state.app)


def demo_today() -> date:
    """Today for the demo data: the CDS Hooks service's own date (one seam for tests to pin)."""
    from fhir_vcf.service.cds_hooks import today

    return today()


def store(on: date | None = None, *, resource_type: str | None = None) -> MemoryFhir:
    """The demo store as of `on` (default: today), with what clients wrote (read from the database
    only when the request concerns a type clients may write, or any type when `resource_type` is None)."""
    from fhir_vcf.service.registry import services

    data: DemoData = current_app.extensions[_EXTENSION]
    written: tuple[int, list[dict[str, Any]]] = (0, [])
    if resource_type is None or resource_type in WRITABLE:
        writes = services().store
        written = writes.demo_resources() if writes.demo_latest() else written
    return data.view(on or demo_today(), written)


def demo_base_url() -> str:
    """This endpoint's absolute base, as links and `fhirServer` must name it."""
    settings = current_app.extensions["fhir_vcf"].settings
    root = settings.public_base_url or request.url_root
    return root.rstrip("/") + PREFIX


# --- CORS for browser-based clients on this machine ---------------------------------------------------

DEMO_CORS_PATHS = ("/cds-services", PREFIX)


def _loopback_peer() -> bool:
    try:
        return ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def init_demo_cors(app: Flask) -> None:
    """Demo mode: CORS for any origin on the CDS Hooks and demo FHIR endpoints, for loopback peers only.

    flask-cors computes the headers (preflight included); this only decides when they apply. A
    response that already carries CORS headers (a configured origin) is left as it is. No
    credentials mode, so `*` never comes with cookies.
    """
    from flask_cors.core import get_cors_options, set_cors_headers

    from fhir_vcf.logs import REQUEST_ID_HEADER

    options = get_cors_options(app, {
        "origins": "*",
        "send_wildcard": True,  # "*" itself, not the echoed origin: no credentials, nothing per origin
        "allow_headers": ["Authorization", "Content-Type", "If-None-Exist", "Prefer", REQUEST_ID_HEADER],
        "expose_headers": [REQUEST_ID_HEADER, "Location", "ETag"],
        "methods": ["GET", "POST", "OPTIONS"],
        "supports_credentials": False,
        "max_age": 600,
    })

    def any_local_origin(response: Response) -> Response:
        path = request.path
        if (
            request.headers.get("Origin")
            and "Access-Control-Allow-Origin" not in response.headers
            and any(path == p or path.startswith(p + "/") for p in DEMO_CORS_PATHS)
            and _loopback_peer()
        ):
            set_cors_headers(response, options)
        return response

    app.after_request(any_local_origin)


# --- responses ------------------------------------------------------------------------------------


def _fhir(body: Mapping[str, Any]) -> Response:
    return Response(json.dumps(body), mimetype=FHIR_JSON)


def _known_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError, TypeError):
        return False
    return name[:1].isupper()


WRITABLE = frozenset({"CarePlan"})  # the write-back the service itself performs


def _read_only(resource_type: str | None = None) -> Response:
    allow = "GET, POST" if resource_type in WRITABLE else "GET"
    return operation_outcome(405, "not-supported", "the demo FHIR endpoint only reads, and creates CarePlans",
                             headers={"Allow": allow})


# --- routes ---------------------------------------------------------------------------------------


@bp.route("/metadata", methods=_METHODS)
def metadata() -> Response:
    if request.method != "GET":
        return _read_only()
    params = [{"name": n, "type": "reference"} for n in ("patient", "subject")]
    params += [{"name": n, "type": "token"} for n in ("_id", *TOKEN_PARAMS)]
    params += [{"name": "date", "type": "date"}]
    return _fhir(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2025-06-30",
            "publisher": "fhir-vcf demo",
            "kind": "instance",
            "software": {"name": "fhir-vcf demo FHIR endpoint", "version": __version__},
            "implementation": {"description": "Sample patients, dated as of today; CarePlans may be created",
                               "url": demo_base_url()},
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": rtype,
                            "interaction": [{"code": "read"}, {"code": "search-type"},
                                            *([{"code": "create"}] if rtype in WRITABLE else [])],
                            **({"conditionalCreate": True} if rtype in WRITABLE else {}),
                            "searchParam": params,
                        }
                        for rtype in sorted({*store(resource_type="Patient").types, *WRITABLE})
                    ],
                }
            ],
        }
    )


@bp.route("/$cds-hooks-request", methods=_METHODS)
def cds_hooks_request() -> Response:
    """A ready CDS Hooks request for a sample patient (prefetch filled), for curl and the guides."""
    if request.method != "GET":
        return _read_only()
    from fhir_vcf.evaluation import ordered_technique
    from fhir_vcf.service.cds_hooks import discovery_document

    def is_order(resource: Mapping[str, Any]) -> bool:  # the service's own augmentation-order rule
        return ordered_technique(resource) is not None

    patient = request.args.get("patient", "")
    hook = request.args.get("hook", "patient-view")
    if hook not in HOOKS:
        return operation_outcome(400, "invalid", f"hook must be one of {', '.join(HOOKS)}")
    as_of = None
    if request.args.get("asOf"):
        try:
            as_of = parse_as_of(request.args["asOf"])
        except ValueError:
            return operation_outcome(400, "invalid", "asOf must be a date written YYYY-MM-DD")
    # The record as of that date (today without asOf): the request names asOf only when asked to,
    # as a real EHR names none.
    data = store(as_of)
    if data.read("Patient", patient) is None:
        known = ", ".join(data.patients())
        return operation_outcome(404, "not-found", f"no sample patient {patient!r}; known: {known}")
    service = next((s for s in discovery_document()["services"] if s["hook"] == hook), None)
    if service is None:
        return operation_outcome(404, "not-found", f"this service offers no {hook} service")
    if hook != "patient-view" and not draft_orders(data, patient, is_order):
        return operation_outcome(404, "not-found",
                                 f"sample patient {patient!r} has no draft vertebral augmentation order")
    body = build_request(data, patient, service, is_order=is_order, as_of=as_of)
    return Response(json.dumps(body), mimetype="application/json")


@bp.route("/<resource_type>", methods=_METHODS)
def search(resource_type: str) -> Response:
    if request.method == "POST" and resource_type in WRITABLE:
        return create(resource_type)
    if request.method != "GET":
        return _read_only(resource_type)
    if not _known_type(resource_type):
        return operation_outcome(404, "not-found", f"unknown resource type {resource_type!r}")
    params = [(k, v) for k, v in request.args.items(multi=True) if k != OFFSET_PARAM]
    try:
        offset = int(request.args.get(OFFSET_PARAM, "0"))
        if offset < 0:
            raise ValueError
    except ValueError:
        return operation_outcome(400, "invalid", f"{OFFSET_PARAM} must be a whole number of 0 or more")
    try:
        result = store(resource_type=resource_type).search(resource_type, params)
    except QueryError as exc:
        return operation_outcome(400, "invalid", exc.message)
    strict = "handling=strict" in request.headers.get("Prefer", "").replace(" ", "")
    if strict and result.ignored:
        return operation_outcome(400, "not-supported", f"unsupported search parameter(s): {', '.join(result.ignored)}")
    count = min(result.count if result.count is not None else DEFAULT_COUNT, MAX_COUNT)
    page = [] if request.args.get("_summary") == "count" else result.page(offset, count)
    base = f"{demo_base_url()}/{resource_type}"

    # Links repeat the parameters that were applied (FHIR: not the ignored ones) with the page size.
    applied = [(k, v) for k, v in result.applied if k != "_count"] + [("_count", str(count))]

    def link(relation: str, at: int) -> dict[str, str]:
        query = applied + ([(OFFSET_PARAM, str(at))] if at else [])
        return {"relation": relation, "url": f"{base}?{urlencode(query)}"}

    links = [link("self", offset), link("first", 0)]
    if offset > 0 and count:
        links.append(link("previous", max(0, offset - count)))
    if count and offset + count < len(result.matches):
        links.append(link("next", offset + count))
    bundle = searchset(result, page, links)
    for entry in bundle.get("entry", []):
        entry["fullUrl"] = f"{demo_base_url()}/{entry['fullUrl']}"
    return _fhir(bundle)


MAX_WRITTEN = 1000  # a demo, not a FHIR server: enough for any try-out, bounded against a loop


def create(resource_type: str) -> Response:
    """FHIR R4 create, conditional with `If-None-Exist` (the CarePlan write-back)."""
    from fhir.resources.R4B import get_fhir_model_class as model_of
    from pydantic import ValidationError

    if request.mimetype not in {FHIR_JSON, "application/json"}:
        return operation_outcome(415, "not-supported", "send the resource as application/fhir+json")
    try:
        body = json.loads(request.get_data() or b"")
    except (ValueError, RecursionError):
        return operation_outcome(400, "structure", "the request body is not valid JSON")
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        return operation_outcome(400, "invalid", f"the body must be a {resource_type} resource")
    try:
        model_of(resource_type).model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return operation_outcome(400, "invalid", f"not a valid FHIR R4 {resource_type}: {where}: {first['msg']}",
                                 where or None)
    condition = request.headers.get("If-None-Exist", "").strip() or None
    params = parse_qsl(condition or "", keep_blank_values=True)
    if condition is not None:
        try:
            found = store(resource_type=resource_type).search(resource_type, params)
        except QueryError as exc:
            return operation_outcome(400, "invalid", f"If-None-Exist: {exc.message}")
        if found.ignored:
            return operation_outcome(400, "not-supported",
                                     f"If-None-Exist: unsupported search parameter(s): {', '.join(found.ignored)}")
        if len(found.matches) > 1:
            return operation_outcome(412, "duplicate", "If-None-Exist matches more than one resource")
        if found.matches:
            return _existing(found.matches[0])
    from fhir_vcf.service.registry import services

    writes = services().store
    try:
        if writes.demo_latest() >= MAX_WRITTEN:
            return operation_outcome(400, "too-costly", f"the demo endpoint keeps at most {MAX_WRITTEN} resources")
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        resource = {**body, "id": uuid.uuid4().hex,
                    "meta": {**(body.get("meta") or {}), "versionId": "1", "lastUpdated": now}}
        normalised = urlencode(sorted(params)) if condition is not None else None
        if not writes.demo_create(resource, normalised):  # a concurrent create with this condition won
            again = store(resource_type=resource_type).search(resource_type, params).matches
            if again:
                return _existing(again[0])
            return operation_outcome(409, "conflict", "a concurrent write conflicted; retry")
    except StoreValueError:
        return operation_outcome(400, "invalid", "the resource holds a value the database cannot store")
    except StoreError as exc:
        log.error("demo FHIR endpoint: %s", exc)
        return operation_outcome(503, "transient", "the resource could not be stored; retry later")
    log.info("demo FHIR endpoint: created", extra={"resourceType": resource_type})
    return _written(resource, 201)


def _written(resource: Mapping[str, Any], status: int) -> Response:
    response = _fhir(resource)
    response.status_code = status
    url = f"{demo_base_url()}/{resource['resourceType']}/{resource['id']}"
    version = (resource.get("meta") or {}).get("versionId")
    response.headers["Location" if status == 201 else "Content-Location"] = (
        f"{url}/_history/{version}" if version else url)
    if version:
        response.headers["ETag"] = f'W/"{version}"'
    return response


def _existing(resource: Mapping[str, Any]) -> Response:
    """The conditional create's one match: 200 with it, nothing created (FHIR R4 3.1.0.8.1)."""
    return _written(resource, 200)


@bp.route("/<resource_type>/<resource_id>", methods=_METHODS)
def read(resource_type: str, resource_id: str) -> Response:
    if request.method != "GET":
        return _read_only()
    if not _known_type(resource_type):
        return operation_outcome(404, "not-found", f"unknown resource type {resource_type!r}")
    resource = store(resource_type=resource_type).read(resource_type, resource_id)
    if resource is None:
        return operation_outcome(404, "not-found", f"{resource_type}/{resource_id} is not on the demo server")
    return _fhir(resource)


@bp.errorhandler(StoreError)
def _store_failed(exc: StoreError) -> Response:
    """The written resources could not be read: a transient failure, never a stack trace."""
    log.error("demo FHIR endpoint: %s", exc)
    return operation_outcome(503, "transient", "the demo endpoint's written resources could not be read; retry later")


# --- serving: the REST API's FHIR server and the start-up banner ----------------------------------


def local_base_url(host: str, port: int) -> str:
    """The URL this process answers on, from inside the machine (a wildcard bind → 127.0.0.1)."""
    name = "127.0.0.1" if host in {"", "0.0.0.0", "::", "[::]"} else host.strip("[]")
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}"


def demo_overrides(overrides: Mapping[str, Any], host: str, port: int) -> dict[str, Any]:
    """Settings `fhir-vcf serve` adds in demo mode: the REST API's patient endpoints read from the
    demo endpoint (over loopback) unless FHIR_VCF_FHIR_BASE_URL names another server.

    A bad environment raises ConfigError here, as create_app would.
    """
    from fhir_vcf.config import Settings

    settings = Settings.from_env().updated(dict(overrides))
    if settings.demo and not settings.fhir_base_url:
        return {"fhir_base_url": local_base_url(host, port) + PREFIX}
    return {}


BANNER_PATIENT = "p-tanaka"  # samples/eligible-requested-kyphoplasty-t12-l1.json: a draft kyphoplasty order


def program() -> str:
    """This program as a command that works from any folder: the full path of the `fhir-vcf` being
    run, else the one on PATH, else this interpreter running the CLI module."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "fhir-vcf" and argv0.is_file():
        return shlex.quote(str(argv0.absolute()))
    found = shutil.which("fhir-vcf")
    if found:
        return shlex.quote(str(Path(found).absolute()))
    return f"{shlex.quote(sys.executable)} -m fhir_vcf.cli"


def demo_banner(base_url: str, *, samples: Path | None = None, command: str | None = None) -> str:
    """What to try first, printed by `fhir-vcf serve --demo` once it answers: every command works as
    printed, from any folder (full paths; no as-of date, as a real EHR sends none)."""
    from fhir_vcf.service.cds_hooks import SERVICES

    base = base_url.rstrip("/")
    fhir = base + PREFIX
    by_hook = {s.hook: s.id for s in SERVICES.values()}
    view = by_hook.get("patient-view", "vcf-patient-view")
    sign = by_hook.get("order-sign", "vcf-order-sign")
    p = BANNER_PATIENT
    exe = command or program()
    folder = samples.absolute() if samples is not None else Path("samples")
    no_prefetch = json.dumps(
        {
            "hook": "patient-view",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": fhir,
            "context": {"userId": "Practitioner/demo", "patientId": p},
        }
    )
    rule = "-" * 78
    return "\n".join(
        [
            "",
            rule,
            f"fhir-vcf {__version__} demo: sample patients at {fhir}",
            "(each record dated so that its documented decision holds today)",
            "",
            f"  CDS Hooks discovery      curl -s {base}/cds-services",
            "  patient-view, no prefetch (the service fetches from the demo FHIR endpoint):",
            f"    curl -s -H 'Content-Type: application/json' -d '{no_prefetch}' {base}/cds-services/{view}",
            "  order-sign, prefetch filled (a ready request from the demo endpoint, piped in):",
            f"    curl -s '{fhir}/$cds-hooks-request?patient={p}&hook=order-sign' \\",
            f"      | curl -s -H 'Content-Type: application/json' -d @- {base}/cds-services/{sign}",
            f"  REST API evaluation      curl -s {base}/api/v1/patients/{p}/evaluation",
            "  explanation page         open a card's \"Open the full explanation\" link (or an evaluation's",
            "                           explanationUrl) in a browser: the decision explained, printable",
            f"  CarePlan write-back      curl -s -X POST {base}/api/v1/patients/{p}/careplans",
            f"  demo FHIR endpoint       curl -s '{fhir}/CarePlan?patient={p}'",
            f"  API explorer             {base}/docs/",
            f"  metrics, health          curl -s {base}/metrics; curl -s {base}/healthz",
            "  replay every sample:",
            f"    {exe} replay {shlex.quote(str(folder))} --hook all \\",
            f"      --expect {shlex.quote(str(folder / 'expected.json'))} --against {base}",
            "",
            "  Browsers on this machine may call it from any origin (CORS), e.g. the CDS Hooks Sandbox.",
            "  JSON log lines follow below; Ctrl-C stops the service.",
            rule,
            "",
        ]
    )


__all__ = [
    "DemoData",
    "bp",
    "demo_banner",
    "demo_base_url",
    "demo_overrides",
    "demo_today",
    "init_demo_cors",
    "load_demo",
    "load_store",
    "local_base_url",
    "program",
    "samples_dir",
    "store",
]

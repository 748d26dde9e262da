"""Demo mode: the sample patients on a read-only FHIR R4 endpoint at `/demo/fhir`.

With `FHIR_VCF_DEMO=true` (`fhir-vcf serve --demo`) a newcomer can try every path of the service
without an EHR: the CDS Hooks services accept `{base}/demo/fhir` as `fhirServer` (see
`cds_hooks._allowed_servers`), so a hook call without prefetch makes the service fetch the record
from here exactly as it would from an EHR, paging included.

- `GET /demo/fhir/metadata`: a minimal CapabilityStatement;
- `GET /demo/fhir/{Type}/{id}`: read;
- `GET /demo/fhir/{Type}?patient=|subject=|_id=|status=|category=|code=|date=|_count=|_sort=`:
  search → a searchset Bundle with `total` and `self` / `first` / `previous` / `next` links
  (`_count` per page, `_getpagesoffset` for the offset); parameters the server does not support
  are ignored and left out of the `self` link (FHIR's lenient handling), or refused with 400 under
  `Prefer: handling=strict`; malformed values (`_count=abc`) are 400;
- `GET /demo/fhir/$cds-hooks-request?patient=ID&hook=patient-view|order-select|order-sign[&asOf=D]`: a
  complete CDS Hooks request for a sample patient, prefetch filled (what `fhir-vcf replay` sends:
  both build it with `fhir_vcf.sources.hook_request`), to pipe into `curl -d @-`;
- unknown ids and types are 404 with an OperationOutcome; any other method is 405.

Where the data comes from (one source of truth, the repository's `samples/` folder, never
copied into the package): `FHIR_VCF_DEMO_DIR` when set, else `samples/` beside the `fhir_vcf`
package (a source checkout or an editable install). A non-editable install has no samples: demo
mode then refuses to start with a message naming `FHIR_VCF_DEMO_DIR`; the Docker image copies
`samples/` to `/app/samples` and sets the variable. The bundles are read once per app, when the
blueprint is registered, so a broken sample stops the start-up instead of failing a request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B import get_fhir_model_class
from flask import Blueprint, Response, current_app, request

from fhir_vcf.dates import parse_as_of
from fhir_vcf.errors import ConfigError, FhirVcfError
from fhir_vcf.service.outcomes import FHIR_JSON, operation_outcome
from fhir_vcf.sources.files import bundle_files, parse_json
from fhir_vcf.sources.hook_request import HOOKS, build_request, draft_orders
from fhir_vcf.sources.memory import TOKEN_PARAMS, MemoryFhir, QueryError, searchset
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


def load_store(folder: Path) -> MemoryFhir:
    """Every sample Bundle of `folder` in one store; a file that is not JSON stops the start-up."""
    documents = []
    files = bundle_files([folder])
    if not files:
        raise ConfigError(f"demo mode: no sample Bundles (*.json) in {folder}")
    for path in files:
        try:
            documents.append(parse_json(path.read_bytes(), source=str(path)))
        except (OSError, FhirVcfError) as exc:
            raise ConfigError(f"demo mode: cannot load {path}: {exc}") from None
    store = MemoryFhir.from_bundles(d for d in documents if isinstance(d, Mapping))
    log.info("demo FHIR endpoint serving sample patients", extra={"count": len(store.patients())})
    return store


@bp.record_once
def _load(state: Any) -> None:
    settings = state.app.extensions["fhir_vcf"].settings
    state.app.extensions[_EXTENSION] = load_store(samples_dir(settings))


def store() -> MemoryFhir:
    return current_app.extensions[_EXTENSION]


def demo_base_url() -> str:
    """This endpoint's absolute base, as links and `fhirServer` must name it."""
    settings = current_app.extensions["fhir_vcf"].settings
    root = settings.public_base_url or request.url_root
    return root.rstrip("/") + PREFIX


# --- responses ------------------------------------------------------------------------------------


def _fhir(body: Mapping[str, Any]) -> Response:
    return Response(json.dumps(body), mimetype=FHIR_JSON)


def _known_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError, TypeError):
        return False
    return name[:1].isupper()


def _read_only() -> Response:
    return operation_outcome(405, "not-supported", "the demo FHIR endpoint is read-only", headers={"Allow": "GET"})


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
            "implementation": {"description": "Sample patients, read-only", "url": demo_base_url()},
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": rtype,
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": params,
                        }
                        for rtype in store().types
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
    if store().read("Patient", patient) is None:
        known = ", ".join(store().patients())
        return operation_outcome(404, "not-found", f"no sample patient {patient!r}; known: {known}")
    service = next((s for s in discovery_document()["services"] if s["hook"] == hook), None)
    if service is None:
        return operation_outcome(404, "not-found", f"this service offers no {hook} service")
    if hook != "patient-view" and not draft_orders(store(), patient, is_order):
        return operation_outcome(404, "not-found",
                                 f"sample patient {patient!r} has no draft vertebral augmentation order")
    as_of = None
    if request.args.get("asOf"):
        try:
            as_of = parse_as_of(request.args["asOf"])
        except ValueError:
            return operation_outcome(400, "invalid", "asOf must be a date written YYYY-MM-DD")
    body = build_request(store(), patient, service, is_order=is_order, as_of=as_of)
    return Response(json.dumps(body), mimetype="application/json")


@bp.route("/<resource_type>", methods=_METHODS)
def search(resource_type: str) -> Response:
    if request.method != "GET":
        return _read_only()
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
        result = store().search(resource_type, params)
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


@bp.route("/<resource_type>/<resource_id>", methods=_METHODS)
def read(resource_type: str, resource_id: str) -> Response:
    if request.method != "GET":
        return _read_only()
    if not _known_type(resource_type):
        return operation_outcome(404, "not-found", f"unknown resource type {resource_type!r}")
    resource = store().read(resource_type, resource_id)
    if resource is None:
        return operation_outcome(404, "not-found", f"{resource_type}/{resource_id} is not on the demo server")
    return _fhir(resource)


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


# The date the sample bundles are written for (samples/expected.json states it per patient).
SAMPLES_AS_OF = "2025-06-30"


def demo_banner(base_url: str) -> str:
    """What to try first, printed by `fhir-vcf serve --demo`: every URL is live on `base_url`."""
    from fhir_vcf.service.cds_hooks import SERVICES

    base = base_url.rstrip("/")
    fhir = base + PREFIX
    by_hook = {s.hook: s.id for s in SERVICES.values()}
    view = by_hook.get("patient-view", "vcf-patient-view")
    sign = by_hook.get("order-sign", "vcf-order-sign")
    p = BANNER_PATIENT
    no_prefetch = json.dumps(
        {
            "hook": "patient-view",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": fhir,
            "context": {"userId": "Practitioner/demo", "patientId": p},
            "extension": {"fhir-vcf": {"asOf": SAMPLES_AS_OF}},
        }
    )
    return "\n".join(
        [
            "fhir-vcf demo mode: sample patients served at " + fhir,
            "",
            f"  CDS Hooks discovery      curl -s {base}/cds-services",
            "  patient-view, no prefetch (the service fetches from the demo FHIR endpoint):",
            f"    curl -s -H 'Content-Type: application/json' -d '{no_prefetch}' {base}/cds-services/{view}",
            "  order-sign, prefetch filled (a ready request from the demo endpoint, piped in):",
            f"    curl -s '{fhir}/$cds-hooks-request?patient={p}&hook=order-sign&asOf={SAMPLES_AS_OF}' \\",
            f"      | curl -s -H 'Content-Type: application/json' -d @- {base}/cds-services/{sign}",
            f"  REST API evaluation      curl -s '{base}/api/v1/patients/{p}/evaluation?asOf={SAMPLES_AS_OF}'",
            "  explanation page         open a card's \"Open the full explanation\" link (or an evaluation's",
            "                           explanationUrl) in a browser: the decision explained, printable",
            f"  demo FHIR endpoint       curl -s '{fhir}/Observation?patient={p}&_count=2'",
            f"  metrics                  curl -s {base}/metrics",
            f"  health                   curl -s {base}/healthz",
            f"  replay every sample      fhir-vcf replay samples --hook all --expect samples/expected.json"
            f" --against {base}",
            "",
            f"  The samples are written for {SAMPLES_AS_OF}: the REST API takes ?asOf=, and in demo mode a CDS",
            '  Hooks request may name its date in the extension {"fhir-vcf": {"asOf": ...}}.',
            "",
        ]
    )


__all__ = [
    "bp",
    "demo_banner",
    "demo_base_url",
    "demo_overrides",
    "load_store",
    "local_base_url",
    "samples_dir",
    "store",
]

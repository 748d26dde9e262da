"""openapi.yaml stays true: a valid document, the same routes as the app, and real responses that
validate against it (openapi-core, with the app's own test client)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from api_support import BASE, ROOT, FakeFhirServer, bundle, make_app, sample_resources
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_spec_validator import validate as validate_spec
from werkzeug.test import EnvironBuilder

from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES

DOCUMENT = ROOT / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch"}
# The demo FHIR endpoint is read-only: its views answer every other method with 405 (documented in
# the document's comment and tag description, not as operations). Checked below to really be 405.
READ_ONLY_PREFIX = "/demo/fhir"

SAMPLE = "eligible-requested-kyphoplasty-t12-l1.json"
ADMIN = "governance-admin-token-for-the-openapi-tests-0123456789"
AS_ADMIN = {"headers": {"Authorization": f"Bearer {ADMIN}"}}
AS_OF = "2025-06-30"


def _json(value: bytes, **_: Any) -> Any:
    return json.loads(value)


def _text(value: bytes, **_: Any) -> str:
    return value.decode("utf-8")


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    config = Config(
        extra_media_type_deserializers={
            "application/problem+json": _json,
            "application/fhir+json": _json,
            "application/yaml": _text,
            "application/schema+json": _json,
            "text/css": _text,
            "text/javascript": _text,
            "text/html": _text,
        }
    )
    return OpenAPI.from_file_path(str(DOCUMENT), config=config)


@pytest.fixture
def fhir_server() -> Iterator[FakeFhirServer]:
    resources = [r for r in sample_resources(SAMPLE) if r["resourceType"] != "Composition"]
    server = FakeFhirServer(resources)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server.install(rsps)
        yield server


# A card the app "issued" (audited), so that feedback about it is accepted.
ISSUED_CARD = "9368d37b-283f-44a0-93ea-547cebab93ed"


@pytest.fixture
def app(tmp_path: Path, fhir_server: FakeFhirServer):
    from fhir_vcf.store import IssuedCard, current_store

    app = make_app(tmp_path, demo=True, fhir_base_url=BASE, admin_token=ADMIN)
    with app.app_context():
        current_store().record_call(hook="patient-view", service_id="vcf-patient-view",
                                    cards=[IssuedCard(ISSUED_CARD, (), ())])
    return app


def _normalise(path: str) -> str:
    """Flask `<conv:name>` and OpenAPI `{name}` both become `{}`; a trailing-slash alias is the same route."""
    path = re.sub(r"<(?:[^:>]+:)?[^>]+>", "{}", path)
    path = re.sub(r"\{[^}]+\}", "{}", path)
    return path.rstrip("/") or "/"


def test_document_is_valid_openapi() -> None:
    validate_spec(yaml.safe_load(DOCUMENT.read_text()))


def test_the_package_copy_is_the_root_document() -> None:
    """`fhir_vcf/openapi.yaml` (package data, for non-editable installs) is a symlink to the root
    file, so there is one source; a wheel build stores it as a regular file."""
    copy = ROOT / "fhir_vcf" / "openapi.yaml"
    assert copy.read_bytes() == DOCUMENT.read_bytes()


def test_every_route_is_documented_and_every_documented_operation_exists(app) -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    documented = {
        (_normalise(path), method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    routed = {
        (_normalise(rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    read_only = {(p, m) for p, m in routed - documented if p.startswith(READ_ONLY_PREFIX) and m != "GET"}
    assert routed - documented - read_only == set(), "routes missing from openapi.yaml"
    assert documented - routed == set(), "operations in openapi.yaml that the app does not serve"
    client = app.test_client()
    for path, method in sorted(read_only):
        response = client.open(path.replace("{}", "Patient"), method=method)
        assert response.status_code == 405, (method, path)


def _prefetch() -> dict[str, Any]:
    """Every prefetch key filled from the sample, so the hook needs no FHIR server."""
    resources = [r for r in sample_resources(SAMPLE) if r["resourceType"] != "Composition"]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {}
    for key, template in PREFETCH_TEMPLATES.items():
        rtype = template.split("?")[0].split("/")[0]
        if "?" not in template:
            prefetch[key] = patient
        else:
            prefetch[key] = bundle([r for r in resources if r["resourceType"] == rtype
                                    and r is not patient])
    return prefetch


def _hook_request(service_id: str = "vcf-patient-view") -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/p-tanaka-pcp", "patientId": "p-tanaka"},
        "prefetch": _prefetch(),
    }


# (method, url, kwargs for the test client, expected status)
SCENARIOS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/healthz", {}, 200),
    ("GET", "/readyz", {}, 200),
    ("GET", "/metrics", {}, 200),
    ("GET", "/openapi.yaml", {}, 200),
    ("GET", "/docs/", {}, 200),
    ("GET", "/docs/swagger-ui.css", {}, 200),
    ("GET", "/docs/no-such-asset.js", {}, 404),
    ("GET", "/problems", {}, 200),
    ("GET", "/problems/invalid-input", {}, 200),
    ("GET", "/problems/no-such-type", {}, 404),
    ("GET", "/api/v1/policies", {}, 200),
    ("GET", "/api/v1/policies/cms-lcd-pva", {}, 200),
    ("GET", "/api/v1/policies/acme", {}, 404),
    ("GET", "/api/v1/policies/schema", {}, 200),
    ("POST", f"/api/v1/evaluations?asOf={AS_OF}",
     {"data": (ROOT / "samples" / "two-patients.json").read_bytes(), "content_type": "application/fhir+json"}, 200),
    ("POST", f"/api/v1/evaluations?asOf={AS_OF}", {"data": (ROOT / "samples" / SAMPLE).read_bytes(),
                                                  "content_type": "application/json"}, 200),
    ("POST", "/api/v1/evaluations", {"data": b"{", "content_type": "application/json"}, 400),
    ("POST", "/api/v1/evaluations?policy=acme", {"json": {"resourceType": "Patient"}}, 400),
    ("POST", "/api/v1/evaluations", {"data": b"<Patient/>", "content_type": "application/xml"}, 415),
    ("GET", f"/api/v1/patients/p-tanaka/evaluation?asOf={AS_OF}", {}, 200),
    ("GET", "/api/v1/patients/nobody/evaluation", {}, 404),
    ("GET", "/api/v1/patients/bad_id/evaluation", {}, 400),
    ("POST", f"/api/v1/patients/p-tanaka/careplans?asOf={AS_OF}", {}, 201),
    ("POST", "/api/v1/patients/nobody/careplans", {}, 404),
    ("GET", "/cds-services", {}, 200),
    ("POST", "/cds-services/vcf-patient-view", {"json": _hook_request()}, 200),
    ("POST", "/cds-services/no-such-service", {"json": _hook_request()}, 404),
    ("POST", "/cds-services/vcf-patient-view", {"json": {"hook": "patient-view"}}, 400),
    ("POST", "/cds-services/vcf-patient-view/feedback",
     {"json": {"feedback": [{"card": ISSUED_CARD, "outcome": "overridden",
                             "outcomeTimestamp": "2025-06-30T14:02:00Z"}]}}, 200),
    ("POST", "/cds-services/vcf-patient-view/feedback",
     {"json": {"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden",
                             "outcomeTimestamp": "2025-06-30T14:02:00Z"}]}}, 400),
    ("GET", f"/cds-services/vcf-patient-view/feedback/{ISSUED_CARD}", {}, 200),
    ("GET", f"/cds-services/vcf-patient-view/feedback/{uuid.uuid4()}", {}, 404),
    ("GET", "/explanations/not-a-link-we-made", {}, 404),
    ("GET", "/governance", AS_ADMIN, 200),
    ("GET", "/governance?weeks=4", {}, 401),
    ("POST", "/governance", {"data": {"token": ADMIN}}, 303),
    ("POST", "/governance", {"data": {"token": "wrong"}}, 401),
    ("GET", "/governance/summary.json?weeks=8", AS_ADMIN, 200),
    ("GET", "/governance/summary.json", {}, 401),
    ("GET", "/demo/fhir/metadata", {}, 200),
    ("GET", "/demo/fhir/Condition?patient=p-tanaka", {}, 200),
    ("GET", "/demo/fhir/Patient/p-tanaka", {}, 200),
    ("GET", "/demo/fhir/Patient/nobody", {}, 404),
    ("GET", "/demo/fhir/$cds-hooks-request?patient=p-tanaka", {}, 200),
    ("POST", "/demo/fhir/CarePlan", {"json": {"resourceType": "CarePlan", "status": "draft", "intent": "proposal",
                                              "subject": {"reference": "Patient/p-tanaka"}}}, 201),
    ("POST", "/demo/fhir/Patient", {"json": {"resourceType": "Patient"}}, 405),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), SCENARIOS,
                         ids=[f"{m} {u.split('?')[0]} {s}" for m, u, _, s in SCENARIOS])
def test_real_responses_validate_against_the_document(
    app, openapi: OpenAPI, method: str, url: str, kwargs: dict[str, Any], status: int
) -> None:
    response = app.test_client().open(url, method=method, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    # A fresh copy of the request: the app consumed the original's body stream.
    request = WerkzeugOpenAPIRequest(EnvironBuilder(url, method=method, **kwargs).get_request())
    if status < 400:
        openapi.validate_request(request)
    openapi.validate_response(request, WerkzeugOpenAPIResponse(response))


def test_upstream_failure_and_no_server_responses_validate(tmp_path: Path, openapi: OpenAPI,
                                                           fhir_server: FakeFhirServer) -> None:
    app = make_app(tmp_path, fhir_base_url=BASE)
    fhir_server.fail["Condition"] = 500
    for url, status in (("/api/v1/patients/p-tanaka/evaluation", 502), ("/api/v1/patients/p-tanaka/careplans", 502)):
        method = "GET" if url.endswith("evaluation") else "POST"
        response = app.test_client().open(url, method=method)
        assert response.status_code == status
        openapi.validate_response(WerkzeugOpenAPIRequest(response.request), WerkzeugOpenAPIResponse(response))
    (tmp_path / "unconfigured").mkdir()
    unconfigured = make_app(tmp_path / "unconfigured")
    response = unconfigured.test_client().get("/api/v1/patients/p-tanaka/evaluation")
    assert response.status_code == 503
    openapi.validate_response(WerkzeugOpenAPIRequest(response.request), WerkzeugOpenAPIResponse(response))


def test_every_operation_has_a_scenario() -> None:
    """Adding an operation to the document without a real-response check above fails here."""
    document = yaml.safe_load(DOCUMENT.read_text())
    documented = {(method.upper(), _normalise(path)) for path, item in document["paths"].items()
                  for method in item if method in METHODS}
    covered = set()
    for method, url, _, _ in SCENARIOS:
        path = _normalise(url.split("?")[0])
        for doc_method, doc_path in documented:
            pattern = "^" + re.escape(doc_path).replace(r"\{\}", "[^/]+") + "$"
            if doc_method == method and re.match(pattern, path):
                covered.add((doc_method, doc_path))
    assert documented - covered == set()


def test_an_api_evaluation_links_to_its_page_and_the_page_validates(app, openapi: OpenAPI) -> None:
    """`explanationUrl` of a REST evaluation opens its page (the one 200 of /explanations/{token})."""
    client = app.test_client()
    posted = client.post(f"/api/v1/evaluations?asOf={AS_OF}", data=(ROOT / "samples" / SAMPLE).read_bytes(),
                         content_type="application/fhir+json")
    (evaluation,) = posted.json["evaluations"]
    path = "/" + evaluation["explanationUrl"].split("/", 3)[3]
    response = client.get(path)
    assert response.status_code == 200 and "Criterion by criterion" in response.get_data(as_text=True)
    request = WerkzeugOpenAPIRequest(EnvironBuilder(path, method="GET").get_request())
    openapi.validate_request(request)
    openapi.validate_response(request, WerkzeugOpenAPIResponse(response))

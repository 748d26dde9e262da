"""End to end over real HTTP: an EHR that knows only the discovery URL calls each hook.

The app runs in demo mode under werkzeug's threaded server on 127.0.0.1 (an ephemeral port), with
JWT trust configured (every call is signed as an EHR would sign it) and its own read-only FHIR
endpoint `/demo/fhir` as the EHR's FHIR server. For each hook the EHR sends full prefetch (filled
by running the discovered templates against that server), partial prefetch (every other key) and
none; the service fetches what is missing through `fhirServer` with the bearer token from
`fhirAuthorization` - every request here crosses the loopback for real, nothing is mocked. The
three answers must be valid CDS Hooks 2.0 cards whose CarePlan suggestion validates as FHIR R4,
and give the same decision. The samples are dated 2025: every call sends the as-of extension,
which the demo service honours.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from cards import assert_valid_cards
from fhir.resources.R4B.careplan import CarePlan
from trust_support import ISSUER, bearer, ec_key, issuers_file, jwks, mint
from werkzeug.serving import WSGIRequestHandler, make_server

from fhir_vcf.app import create_app
from fhir_vcf.clinical_time import today_utc
from fhir_vcf.config import Settings
from fhir_vcf.store import current_store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())
AS_OF = "2025-06-30"  # the date every sample is written for (expected.json)
# The EHR here sends no as-of date, as real EHRs do: the service evaluates as of today, and the demo
# endpoint serves each sample moved so that its documented decision holds today.
PATIENT = "p-tanaka"  # eligible, with a draft kyphoplasty order for T12-L1
OTHER_PATIENT = "p-moreau"  # eligible at L1, no augmentation order
TOKEN = f"e2e-access-token-{uuid.uuid4().hex}"  # the EHR's FHIR access token: must never be logged or stored
AUGMENTATION_CPT = {"22510", "22511", "22512", "22513", "22514", "22515"}  # AMA CPT
MODES = ("full", "partial", "none")
BROWSER_EHR = "https://ehr-ui.example.org"  # a browser-based EHR's origin, configured for CORS


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # keep the test output to the point
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("e2e")
    key = ec_key("e2e-1")
    fhir_calls: list[tuple[str, str | None]] = []  # (path, Authorization) of each /demo/fhir request
    holder: dict[str, Any] = {}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/demo/fhir"):
            fhir_calls.append((environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION")))
        return holder["app"](environ, start_response)

    httpd = make_server("127.0.0.1", 0, wsgi, threaded=True, request_handler=_QuietHandler)
    base = f"http://127.0.0.1:{httpd.server_port}"
    db = tmp / "e2e.db"
    holder["app"] = create_app(Settings(
        database_url=f"sqlite:///{db}",
        demo=True,
        public_base_url=base,  # the JWT audience, and (demo) the allowed fhirServer base
        trusted_issuers=issuers_file(tmp, {ISSUER: {"jwks": jwks(key)}}),
        cors_origins=(BROWSER_EHR,),
        fhir_base_url=f"{base}/demo/fhir",  # the REST API's EHR: the demo endpoint, as `serve --demo` sets it
    ))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(base=base, fhir=f"{base}/demo/fhir", app=holder["app"], key=key,
                              fhir_calls=fhir_calls, db=db)
    finally:
        httpd.shutdown()
        thread.join(5)


class Ehr:
    """What an EHR does, knowing only the discovery URL (and its own FHIR server)."""

    def __init__(self, server: SimpleNamespace) -> None:
        self.server = server
        self.http = requests.Session()

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> requests.Response:
        url = self.server.base + path
        headers = bearer(token if token is not None else mint(self.server.key, url))
        return self.http.request(method, url, json=body, headers=headers, timeout=10)

    def services(self) -> dict[str, dict[str, Any]]:
        response = self.call("GET", "/cds-services")
        assert response.status_code == 200
        return {s["hook"]: s for s in response.json()["services"]}

    def fhir(self, query: str) -> Any:
        """The EHR reading its own FHIR server (no token of ours involved)."""
        response = self.http.get(f"{self.server.fhir}/{query}", timeout=10)
        if response.status_code == 404:
            return None  # a read of nothing: prefetch null
        assert response.status_code == 200, response.text
        return response.json()

    def drafts(self, patient: str) -> list[dict[str, Any]]:
        """The patient's draft vertebral augmentation orders (as the ordering screen holds them)."""
        found = self.fhir(f"ServiceRequest?patient={patient}") or {}
        orders = [e["resource"] for e in found.get("entry", [])]
        return [o for o in orders if o.get("status") == "draft" and AUGMENTATION_CPT & {
            c.get("code") for c in o.get("code", {}).get("coding", [])}]

    def request(self, service: dict[str, Any], patient: str, mode: str) -> dict[str, Any]:
        hook = service["hook"]
        context: dict[str, Any] = {"userId": "Practitioner/dr-e2e", "patientId": patient}
        if hook in {"order-select", "order-sign"}:
            drafts = self.drafts(patient)
            context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": d} for d in drafts]}
            if hook == "order-select":
                context["selections"] = [f"ServiceRequest/{d['id']}" for d in drafts]
        body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
        keys = sorted(service["prefetch"])
        if mode == "partial":
            keys = keys[::2]
        if mode != "none":
            prefetch = {}
            for key in keys:
                query = service["prefetch"][key].replace("{{context.patientId}}", patient)
                assert "{{" not in query, query
                prefetch[key] = self.fhir(query)
            body["prefetch"] = prefetch
        if mode != "full":
            body["fhirServer"] = self.server.fhir
            body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                         "scope": "patient/*.read", "subject": "fhir-vcf"}
        return body


@pytest.fixture
def ehr(server: SimpleNamespace) -> Ehr:
    return Ehr(server)


def careplans(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a["resource"] for c in cards for s in c.get("suggestions", []) for a in s["actions"]
            if a["type"] == "create" and a["resource"]["resourceType"] == "CarePlan"]


def verdict(card: dict[str, Any]) -> tuple[Any, ...]:
    own = card["extension"]["fhir-vcf"]
    return (own["decision"], own.get("technique"), tuple(own.get("levels", ())), own.get("request"),
            card["indicator"], card["summary"])


@pytest.mark.parametrize("hook", ["patient-view", "order-select", "order-sign"])
def test_each_hook_with_full_partial_and_no_prefetch(server: SimpleNamespace, ehr: Ehr, hook: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service = ehr.services()[hook]
    (expected,) = EXPECTED["eligible-requested-kyphoplasty-t12-l1.json"].values()
    verdicts = {}
    for mode in MODES:
        body = ehr.request(service, PATIENT, mode)
        server.fhir_calls.clear()
        response = ehr.call("POST", f"/cds-services/{service['id']}", body)
        assert response.status_code == 200, (mode, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        cards = assert_valid_cards(response.json())  # no null/empty anywhere, CarePlan included
        assert cards, mode
        expected_orders = 1 if hook != "patient-view" else 0
        assert len(cards) == max(1, expected_orders)
        for plan in careplans(cards):
            CarePlan.model_validate(plan)  # FHIR R4 (R4B model) valid
            assert plan["subject"]["reference"] == f"Patient/{PATIENT}"
        assert careplans(cards), "every card here proposes a care plan"
        for plan in careplans(cards):
            assert plan["addresses"] and all(a["reference"].startswith("Condition/") for a in plan["addresses"])
        for card in cards:
            links = {link["label"]: link["url"] for link in card["links"]}
            explanation = links["Open the full explanation"]  # the page, at the public base
            assert explanation.startswith(f"{server.base}/explanations/")
            assert card["source"]["url"] in links.values()  # and the policy's public text
            assert card["extension"]["fhir-vcf"]["asOf"] == today_utc().isoformat()
            assert card["extension"]["fhir-vcf"]["decision"] == expected["decision"]
        verdicts[mode] = [verdict(c) for c in cards]
        page = requests.get(explanation, timeout=10)  # the link opens the page with no EHR credential
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert expected["decision"] in page.text and "Criterion by criterion" in page.text

        fetched = [auth for path, auth in server.fhir_calls]
        if mode == "full":
            assert fetched == []  # everything was prefetched: the service asked nothing
        else:
            assert fetched, f"{mode}: the service fetched the missing keys"
            assert set(fetched) == {f"Bearer {TOKEN}"}  # every fetch carried the EHR's token

    assert verdicts["full"] == verdicts["partial"] == verdicts["none"]
    assert TOKEN not in caplog.text
    assert all(TOKEN not in json.dumps(r.__dict__, default=str) for r in caplog.records)


def test_token_is_not_in_the_audit_store(server: SimpleNamespace, ehr: Ehr) -> None:
    service = ehr.services()["order-sign"]
    assert ehr.call("POST", f"/cds-services/{service['id']}", ehr.request(service, PATIENT, "none")).status_code == 200
    assert server.db.exists()
    assert TOKEN.encode() not in server.db.read_bytes()
    for sidecar in server.db.parent.glob(server.db.name + "-*"):  # SQLite journal / WAL
        assert TOKEN.encode() not in sidecar.read_bytes()


def test_order_hooks_name_the_judged_order_and_agree_on_the_technique(ehr: Ehr) -> None:
    services = ehr.services()
    (draft,) = ehr.drafts(PATIENT)
    for hook in ("order-select", "order-sign"):
        body = ehr.request(services[hook], PATIENT, "full")
        (card,) = assert_valid_cards(ehr.call("POST", f"/cds-services/{services[hook]['id']}", body).json())
        assert card["extension"]["fhir-vcf"]["request"] == f"ServiceRequest/{draft['id']}"
        assert card["extension"]["fhir-vcf"]["levels"] == ["T12", "L1"]
        assert "advised rather than" not in card["summary"]  # kyphoplasty ordered, kyphoplasty advised


def test_unrelated_order_is_silent(ehr: Ehr) -> None:
    service = ehr.services()["order-select"]
    body = ehr.request(service, PATIENT, "none")
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "MedicationRequest", "id": "m-new", "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"}, "medicationCodeableConcept": {"text": "calcitonin"}}}]}
    body["context"]["selections"] = ["MedicationRequest/m-new"]
    response = ehr.call("POST", f"/cds-services/{service['id']}", body)
    assert response.status_code == 200 and response.json() == {"cards": []}


def test_two_patients_back_to_back_get_their_own_cards(ehr: Ehr) -> None:
    """No state survives a call (a peer reused the first request's answer through a singleton)."""
    service = ehr.services()["patient-view"]
    answers = {}
    for patient in (PATIENT, OTHER_PATIENT, PATIENT):
        body = ehr.request(service, patient, "none")
        (card,) = assert_valid_cards(ehr.call("POST", f"/cds-services/{service['id']}", body).json())
        (plan,) = careplans([card])
        answers.setdefault(patient, []).append((card["extension"]["fhir-vcf"]["levels"], plan["subject"]["reference"]))
    assert answers[PATIENT][0] == answers[PATIENT][1] == (["T12", "L1"], f"Patient/{PATIENT}")
    assert answers[OTHER_PATIENT] == [(["L1"], f"Patient/{OTHER_PATIENT}")]


def test_the_demo_request_builder_round_trips(ehr: Ehr) -> None:
    """`/demo/fhir/$cds-hooks-request` (what the guides pipe into curl) sends the as-of extension."""
    body = ehr.fhir(f"$cds-hooks-request?patient={PATIENT}&hook=order-sign&asOf={AS_OF}")
    assert body["extension"]["fhir-vcf"]["asOf"] == AS_OF
    service = ehr.services()["order-sign"]
    (card,) = assert_valid_cards(ehr.call("POST", f"/cds-services/{service['id']}", body).json())
    assert card["extension"]["fhir-vcf"]["decision"] == "eligible"


def test_feedback_for_a_returned_card_is_stored_once(server: SimpleNamespace, ehr: Ehr) -> None:
    service = ehr.services()["order-sign"]
    (card,) = assert_valid_cards(
        ehr.call("POST", f"/cds-services/{service['id']}", ehr.request(service, PATIENT, "full")).json())
    (suggestion,) = card["suggestions"]
    feedback = {"feedback": [{"card": card["uuid"], "outcome": "accepted",
                              "acceptedSuggestions": [{"id": suggestion["uuid"]}],
                              "outcomeTimestamp": "2025-06-30T10:00:00Z"}]}
    for _ in range(2):  # the EHR retransmits: each time with a fresh JWT
        response = ehr.call("POST", f"/cds-services/{service['id']}/feedback", feedback)
        assert response.status_code == 200 and response.json() == {}
    with server.app.app_context():
        (row,) = current_store().feedback_for(card["uuid"])
    assert row["accepted_suggestions"] == [suggestion["uuid"]]
    read = ehr.call("GET", f"/cds-services/{service['id']}/feedback/{card['uuid']}")
    assert read.status_code == 200
    assert [f["acceptedSuggestions"] for f in read.json()["feedback"]] == [[{"id": suggestion["uuid"]}]]
    # only what the card offered: its own override reasons, not another suggestion
    reason = card["overrideReasons"][0]
    override = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2025-06-30T10:05:00Z",
                "overrideReason": {"reason": {"system": reason["system"], "code": reason["code"]}}}
    assert ehr.call("POST", f"/cds-services/{service['id']}/feedback", {"feedback": [override]}).status_code == 200
    stranger = {**feedback["feedback"][0], "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
                "outcomeTimestamp": "2025-06-30T10:06:00Z"}
    refused = ehr.call("POST", f"/cds-services/{service['id']}/feedback", {"feedback": [stranger]})
    assert refused.status_code == 400


def test_bad_expired_replayed_or_misaddressed_jwts_are_refused(server: SimpleNamespace, ehr: Ehr) -> None:
    service = ehr.services()["patient-view"]
    path = f"/cds-services/{service['id']}"
    url = server.base + path
    body = ehr.request(service, PATIENT, "full")

    def refused(token: str) -> None:
        response = ehr.call("POST", path, body, token=token)
        assert response.status_code == 401 and response.content == b""

    refused("not-a-jwt")
    refused(mint(ec_key("stranger"), url))  # signed by a key the issuer does not publish
    refused(mint(server.key, url, exp_in=-120))  # expired (beyond the leeway)
    refused(mint(server.key, server.base + "/cds-services/vcf-order-sign"))  # addressed to another service
    refused(mint(server.key, url, iss="https://other-ehr.example.org/"))  # untrusted issuer
    once = mint(server.key, url)
    assert ehr.call("POST", path, body, token=once).status_code == 200
    refused(once)  # replayed jti
    assert ehr.http.post(url, json=body, timeout=10).status_code == 401  # no token at all


def test_a_browser_ehr_on_a_configured_origin_may_call(server: SimpleNamespace, ehr: Ehr) -> None:
    service = ehr.services()["patient-view"]
    url = f"{server.base}/cds-services/{service['id']}"
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    ok = requests.options(url, headers={"Origin": BROWSER_EHR, **preflight}, timeout=10)
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == BROWSER_EHR
    assert ok.headers.get("Access-Control-Allow-Origin") != "*"
    # This server is in demo mode and the browser is on this machine: any origin may call (the CDS
    # Hooks Sandbox's, for one). Outside demo mode only configured origins may (test_feedback, test_auth).
    other = requests.options(url, headers={"Origin": "https://sandbox.example", **preflight}, timeout=10)
    assert other.headers["Access-Control-Allow-Origin"] == "*"
    body = ehr.request(service, PATIENT, "full")
    call = requests.post(url, json=body, timeout=10, headers={"Origin": BROWSER_EHR, **bearer(mint(server.key, url))})
    assert call.status_code == 200 and call.headers["Access-Control-Allow-Origin"] == BROWSER_EHR


def test_the_careplan_write_back_round_trips_through_the_demo_endpoint(server: SimpleNamespace, ehr: Ehr) -> None:
    """`serve --demo`: the REST API evaluates a sample patient as of today (no asOf), writes the proposed
    CarePlan to the demo FHIR endpoint with a conditional create, and a retry finds it instead of adding one."""
    url = f"{server.base}/api/v1/patients/{OTHER_PATIENT}/careplans"
    first = requests.post(url, timeout=20)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True and body["evaluation"]["decision"] == "eligible"
    assert body["evaluation"]["asOf"] == today_utc().isoformat()
    plan_id = body["carePlan"]["id"]
    assert "/demo/fhir/CarePlan/" in first.headers["Location"]
    again = requests.post(url, timeout=20)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["carePlan"]["id"] == plan_id
    stored = ehr.fhir(f"CarePlan?patient={OTHER_PATIENT}")
    assert [e["resource"]["id"] for e in stored["entry"]] == [plan_id]
    assert CarePlan.model_validate(ehr.fhir(f"CarePlan/{plan_id}"))

"""CDS Hooks endpoints: discovery, the three hooks, errors. The clinical core is replaced by
contract-shaped stubs (monkeypatch on `fhir_vcf.service.cds_hooks.evaluate_record`); FHIR calls
are mocked with `responses` (an unregistered call fails)."""

from __future__ import annotations

import json
import logging
import re

import orjson
import pytest
import responses
from cards import EHR, assert_valid_cards, evaluation, find_empty_values, has_criteria_table, hook_request

from fhir_vcf.app import create_app
from fhir_vcf.config import Settings
from fhir_vcf.service import cds_hooks
from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES

TOKEN = "ehr-access-token-do-not-log"


@pytest.fixture
def settings():
    return Settings(database_url="sqlite://", allowed_fhir_servers=(EHR,), max_body_bytes=200_000)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def calls(monkeypatch):
    """Stub the core; each call's (record, options) is recorded; `calls.result` sets the answer."""

    class Calls(list):
        result = evaluation("eligible")

        def __call__(self, record, **options):
            self.append((record, options))
            answer = self.result(options) if callable(self.result) else self.result
            return json.loads(json.dumps(answer))

    stub = Calls()
    monkeypatch.setattr(cds_hooks, "evaluate_record", stub)
    return stub


def full_prefetch():
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset"} for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1"}
    return prefetch


def sr(sid, text=None, cpt=None, status="draft"):
    resource = {"resourceType": "ServiceRequest", "id": sid, "status": status, "intent": "order",
                "subject": {"reference": "Patient/p1"}, "code": {}}
    if text:
        resource["code"]["text"] = text
    if cpt:
        resource["code"]["coding"] = [{"system": "http://www.ama-assn.org/go/cpt", "code": cpt}]
    return resource


def drafts(*resources):
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


MED = {"resourceType": "MedicationRequest", "id": "med-1", "status": "draft", "intent": "order",
       "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "alendronate 70 mg"}}


def post(client, service, body):
    return client.post(f"/cds-services/{service}", json=body)


# --- discovery --------------------------------------------------------------------------------------


def test_discovery_lists_three_services_with_prefetch(client):
    response = client.get("/cds-services")
    assert response.status_code == 200 and response.mimetype == "application/json"
    services = {s["id"]: s for s in response.json["services"]}
    assert {s["hook"] for s in services.values()} == {"patient-view", "order-select", "order-sign"}
    for service in services.values():
        assert service["description"] and service["title"]
        assert service["prefetch"] == PREFETCH_TEMPLATES
        for template in service["prefetch"].values():
            assert set(re.findall(r"\{\{([^}]+)\}\}", template)) <= {"context.patientId"}
    assert find_empty_values(response.json) == []
    assert client.get("/cds-services/").json == response.json


# --- patient-view -----------------------------------------------------------------------------------


@responses.activate
def test_patient_view_eligible(client, calls):
    response = post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch()))
    assert response.status_code == 200 and response.mimetype == "application/json"
    (card,) = assert_valid_cards(response.json)
    assert card["indicator"] == "info"
    assert not has_criteria_table(card["detail"])  # concise: the table is on the explanation page
    record, options = calls[0]
    assert record.patient == "Patient/p1" and options["request"] is None if "request" in options else True
    assert options["policy"].id == "cms-lcd-pva"
    assert len(responses.calls) == 0


def test_patient_view_without_fracture_is_silent(client, calls):
    calls.result = evaluation("insufficient-data", levels=(), route="none")
    response = post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch()))
    assert response.status_code == 200 and response.json == {"cards": []}


def test_patient_view_with_an_order_but_no_fracture_is_silent(client, calls):
    """The service's description promises silence without a fracture; the order hooks speak."""
    calls.result = evaluation("insufficient-data", levels=("L2",), route="none")
    response = post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch()))
    assert response.status_code == 200 and response.json == {"cards": []}


def test_each_call_gets_its_own_answer(client, calls):
    """No state cached between calls (a peer's singleton reused the first answer for every call)."""
    calls.result = lambda options: evaluation("eligible")
    first = post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch())).json
    calls.result = lambda options: evaluation("not-eligible", technique="none")
    second = post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch())).json
    assert first["cards"][0]["indicator"] == "info" and second["cards"][0]["indicator"] == "warning"
    assert first["cards"][0]["uuid"] != second["cards"][0]["uuid"]


def test_as_of_is_the_request_date(client, calls, monkeypatch):
    import datetime as dt

    monkeypatch.setattr(cds_hooks, "today", lambda: dt.date(2025, 6, 30))
    post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch()))
    assert calls[0][1]["as_of"] == dt.date(2025, 6, 30)


def test_unknown_extension_members_are_ignored(client, calls):
    body = hook_request(prefetch=full_prefetch(), extension={"com.example.x": {"a": 1}},
                        context={"extension": {"y": 2}})
    assert post(client, "vcf-patient-view", body).status_code == 200


@responses.activate
def test_missing_prefetch_is_fetched_from_fhir_server(client, calls):
    prefetch = full_prefetch()
    del prefetch["conditions"]
    responses.get(f"{EHR}/Condition", json={"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Condition", "id": "vcf-1", "subject": {"reference": "Patient/p1"},
                      "code": {"text": "osteoporotic compression fracture T12"}}}]})
    body = hook_request(prefetch=prefetch, fhirServer=EHR, fhirAuthorization={
        "access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
        "subject": "vcf-service"})
    response = post(client, "vcf-patient-view", body)
    assert response.status_code == 200
    assert [r.id for r in calls[0][0].of_type("Condition")] == ["vcf-1"]
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_unavailable_data_is_412_with_an_operation_outcome(client, calls, caplog):
    caplog.set_level(logging.DEBUG)
    prefetch = full_prefetch()
    del prefetch["observations"]
    responses.get(f"{EHR}/Observation", status=500)
    body = hook_request(prefetch=prefetch, fhirServer=EHR, fhirAuthorization={
        "access_token": TOKEN, "token_type": "Bearer"})
    response = post(client, "vcf-patient-view", body)
    assert response.status_code == 412
    assert response.json["resourceType"] == "OperationOutcome"
    assert response.json["issue"][0]["expression"] == ["prefetch.observations"]
    assert TOKEN not in response.get_data(as_text=True)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert calls == []


def test_absent_prefetch_without_fhir_server_is_412(client, calls):
    response = post(client, "vcf-patient-view", hook_request())
    assert response.status_code == 412
    assert "no fhirServer" in response.json["issue"][0]["diagnostics"]


@responses.activate
def test_fhir_server_not_on_allowlist_with_data_to_fetch_is_412_and_nothing_fetched(client, calls):
    """Issue 13.1: a fhirServer off the allowlist is never contacted; when the prefetch lacks data, 412."""
    body = hook_request(fhirServer="http://10.0.0.5/internal", fhirAuthorization={
        "access_token": TOKEN, "token_type": "Bearer"})
    response = post(client, "vcf-patient-view", body)
    assert response.status_code == 412
    assert response.json["issue"][0]["code"] == "incomplete"
    assert "not on this service's list of allowed FHIR servers" in response.json["issue"][0]["diagnostics"]
    assert len(responses.calls) == 0 and calls == []


@responses.activate
def test_complete_prefetch_is_answered_when_fhir_server_is_not_allowed(client, calls, caplog):
    """Issue 13.1 (the Sandbox sends its own fhirServer): the prefetch is complete, so the call is
    answered; nothing is fetched, the token is not used, and a warning says so."""
    caplog.set_level(logging.WARNING)
    body = hook_request(prefetch=full_prefetch(), fhirServer="https://sandbox.example/fhir",
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
    response = post(client, "vcf-patient-view", body)
    assert response.status_code == 200
    assert len(responses.calls) == 0 and len(calls) == 1
    assert any("not on the allowlist" in r.getMessage() for r in caplog.records)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("server", ["https://user:pw@ehr.example.org/fhir", "https://ehr.example.org/fhir?@evil.test",
                                    "https://ehr.example.org/fhir#@evil.test", "ftp://ehr.example.org/fhir",
                                    "https://ehr.example.org\\@evil.test/fhir"])
@responses.activate
def test_malformed_fhir_server_is_400_even_with_a_complete_prefetch(client, calls, server):
    body = hook_request(prefetch=full_prefetch(), fhirServer=server,
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
    response = post(client, "vcf-patient-view", body)
    assert response.status_code == 400
    assert response.json["issue"][0]["expression"] == ["fhirServer"]
    assert len(responses.calls) == 0 and calls == []


@responses.activate
def test_demo_endpoint_is_allowed_in_demo_mode(settings, calls):
    from dataclasses import replace

    client = create_app(replace(settings, demo=True, allowed_fhir_servers=())).test_client()
    prefetch = full_prefetch()
    del prefetch["carePlans"]
    responses.get("http://localhost/demo/fhir/CarePlan", json={"resourceType": "Bundle", "type": "searchset"})
    response = post(client, "vcf-patient-view", hook_request(prefetch=prefetch, fhirServer="http://localhost/demo/fhir"))
    assert response.status_code == 200
    assert len(responses.calls) == 1


# --- order-select / order-sign ----------------------------------------------------------------------


def test_order_select_unrelated_order_is_silent_without_evaluating(client, calls):
    body = hook_request("order-select", context={"draftOrders": drafts(MED), "selections": ["MedicationRequest/med-1"]})
    response = post(client, "vcf-order-select", body)
    assert response.status_code == 200 and response.json == {"cards": []}
    assert calls == []


def test_order_select_judges_the_selected_augmentation_order(client, calls):
    calls.result = evaluation("eligible", technique="kyphoplasty", levels=("T12",))
    orders = drafts(MED, sr("sr-1", cpt="22510"), sr("sr-2", text="Kyphoplasty L1"))
    body = hook_request("order-select", prefetch=full_prefetch(),
                        context={"draftOrders": orders, "selections": ["ServiceRequest/sr-1"]})
    response = post(client, "vcf-order-select", body)
    (card,) = assert_valid_cards(response.json)
    record, options = calls[0]
    assert options["request"] == "ServiceRequest/sr-1"
    assert {r.id: r.status for r in record.of_type("ServiceRequest")} == {"sr-1": "draft", "sr-2": "draft"}
    assert [r.id for r in record.of_type("MedicationRequest")] == ["med-1"]
    assert "kyphoplasty is advised rather than the ordered vertebroplasty" in card["summary"]


def test_order_select_augmentation_not_selected_is_silent(client, calls):
    body = hook_request("order-select", context={"draftOrders": drafts(MED, sr("sr-1", text="vertebroplasty T12")),
                                                 "selections": ["MedicationRequest/med-1"]})
    assert post(client, "vcf-order-select", body).json == {"cards": []}
    assert calls == []


def test_order_select_not_eligible_warns_and_proposes_conservative_care(client, calls):
    calls.result = evaluation("not-eligible", technique="none")
    body = hook_request("order-select", prefetch=full_prefetch(),
                        context={"draftOrders": drafts(sr("sr-1", text="vertebral augmentation T12")),
                                 "selections": ["ServiceRequest/sr-1"]})
    (card,) = assert_valid_cards(post(client, "vcf-order-select", body).json)
    assert card["indicator"] == "warning"
    (suggestion,) = card["suggestions"]
    assert suggestion["isRecommended"] is True and card["selectionBehavior"] == "at-most-one"
    plan = suggestion["actions"][0]["resource"]
    assert plan["resourceType"] == "CarePlan" and plan["intent"] == "proposal"


def test_order_select_missing_data_asks_for_it(client, calls):
    calls.result = evaluation("insufficient-data", missing=("a pain score (LOINC 72514-3) after the fracture",))
    body = hook_request("order-select", prefetch=full_prefetch(),
                        context={"draftOrders": drafts(sr("sr-1", cpt="22513")), "selections": ["ServiceRequest/sr-1"]})
    (card,) = assert_valid_cards(post(client, "vcf-order-select", body).json)
    assert card["indicator"] == "warning" and "missing" in card["summary"]
    assert "a pain score (LOINC 72514-3)" in card["detail"]


def test_order_sign_judges_every_draft_augmentation_order(client, calls):
    calls.result = lambda options: evaluation(
        "eligible", levels=("T12",) if options["request"].endswith("1") else ("L2",))
    orders = drafts(sr("sr-1", cpt="22513"), MED, sr("sr-2", cpt="22514"), sr("sr-3", text="MRI lumbar spine"))
    body = hook_request("order-sign", prefetch=full_prefetch(), context={"draftOrders": orders})
    cards = assert_valid_cards(post(client, "vcf-order-sign", body).json)
    assert [options["request"] for _, options in calls] == ["ServiceRequest/sr-1", "ServiceRequest/sr-2"]
    assert len(cards) == 2 and "T12" in cards[0]["summary"] and "L2" in cards[1]["summary"]


def test_order_sign_with_absolute_exclusion_is_critical(client, calls):
    calls.result = evaluation("not-eligible", technique="none", present=("X3",))
    body = hook_request("order-sign", prefetch=full_prefetch(),
                        context={"draftOrders": drafts(sr("sr-1", cpt="22514"))})
    (card,) = assert_valid_cards(post(client, "vcf-order-sign", body).json)
    assert card["indicator"] == "critical"


def test_audit_row_is_written_without_raw_patient_id(app, client, calls):
    body = hook_request(prefetch=full_prefetch())
    card = post(client, "vcf-patient-view", body).json["cards"][0]
    store = app.extensions["fhir_vcf"].store
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.exec_driver_sql("SELECT * FROM audit")]
    (row,) = rows
    assert row["hook_instance"] == body["hookInstance"] and row["decision"] == "eligible"
    assert "p1" not in json.dumps(row, default=str).replace(row["patient_hash"], "")
    assert card["uuid"] in json.dumps(row, default=str)


# --- errors -----------------------------------------------------------------------------------------


def outcome_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.json
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body["issue"][0]


def test_malformed_json(client):
    issue = outcome_of(client.post("/cds-services/vcf-patient-view", data="{not json",
                                   content_type="application/json"), 400)
    assert "not valid JSON" in issue["diagnostics"]


def test_body_not_an_object(client):
    assert "JSON object" in outcome_of(client.post("/cds-services/vcf-patient-view", json=[1]), 400)["diagnostics"]


@pytest.mark.parametrize("member", ["hook", "hookInstance", "context"])
def test_missing_required_member(client, member):
    body = hook_request(prefetch=full_prefetch())
    del body[member]
    issue = outcome_of(post(client, "vcf-patient-view", body), 400)
    assert issue["expression"] == [member] and issue["code"] == "required"


def test_hook_instance_not_a_uuid(client):
    issue = outcome_of(post(client, "vcf-patient-view", hook_request(hookInstance="abc")), 400)
    assert issue["expression"] == ["hookInstance"]


def test_fhir_authorization_without_fhir_server(client):
    body = hook_request(fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
    response = post(client, "vcf-patient-view", body)
    issue = outcome_of(response, 400)
    assert "fhirServer" in issue["diagnostics"] and TOKEN not in response.get_data(as_text=True)


def test_hook_not_served_by_this_service(client):
    issue = outcome_of(post(client, "vcf-patient-view", hook_request("order-sign")), 400)
    assert issue["expression"] == ["hook"]


def test_missing_patient_id(client):
    body = hook_request()
    del body["context"]["patientId"]
    assert outcome_of(post(client, "vcf-patient-view", body), 400)["expression"] == ["context.patientId"]


def test_order_hooks_need_draft_orders_and_selections(client):
    issue = outcome_of(post(client, "vcf-order-sign", hook_request("order-sign")), 400)
    assert issue["expression"] == ["context.draftOrders"]
    body = hook_request("order-select", context={"draftOrders": drafts(MED)})
    assert outcome_of(post(client, "vcf-order-select", body), 400)["expression"] == ["context.selections"]
    body = hook_request("order-sign", context={"draftOrders": MED})
    assert "Bundle" in outcome_of(post(client, "vcf-order-sign", body), 400)["diagnostics"]


def test_oversized_body_is_413(client):
    body = hook_request(prefetch={"patient": {"resourceType": "Patient", "id": "p1", "text": {"div": "x" * 300_000}}})
    outcome_of(post(client, "vcf-patient-view", body), 413)


def test_unknown_service_is_404(client):
    outcome_of(post(client, "no-such-service", hook_request()), 404)


def test_invalid_prefetch_resource_is_400_naming_it(client, calls):
    prefetch = full_prefetch()
    prefetch["conditions"] = {"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "Condition", "id": "c9", "subject": {"reference": "Patient/p1"}, "onsetDateTime": "soon"}}]}
    issue = outcome_of(post(client, "vcf-patient-view", hook_request(prefetch=prefetch)), 400)
    assert "Condition/c9" in issue["diagnostics"]


def test_unexpected_failure_is_a_generic_500(client, monkeypatch, caplog):
    def boom(record, **options):
        raise RuntimeError("secret internals /srv/app.py line 12")

    monkeypatch.setattr(cds_hooks, "evaluate_record", boom)
    response = post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch()))
    issue = outcome_of(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert issue["code"] == "exception"
    assert any("secret internals" in str(r.exc_info) for r in caplog.records if r.exc_info)


def test_wrong_method_is_an_operation_outcome(client):
    outcome_of(client.get("/cds-services/vcf-patient-view"), 405)


def test_412_is_audited_too(app, client):
    body = hook_request()
    assert post(client, "vcf-patient-view", body).status_code == 412
    with app.extensions["fhir_vcf"].store.engine.connect() as conn:
        statuses = [r.status for r in conn.exec_driver_sql("SELECT status FROM audit")]
    assert statuses == [412]


# --- as-of date (demo mode only) ------------------------------------------------------------------------


def as_of_request(value):
    return hook_request(prefetch=full_prefetch(), extension={"fhir-vcf": {"asOf": value}, "com.example": {"x": 1}})


def test_as_of_extension_is_honoured_in_demo_mode(settings, calls, monkeypatch):
    import datetime as dt
    from dataclasses import replace

    monkeypatch.setattr(cds_hooks, "today", lambda: dt.date(2026, 1, 15))
    client = create_app(replace(settings, demo=True)).test_client()
    assert post(client, "vcf-patient-view", as_of_request("2025-06-30")).status_code == 200
    assert post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch())).status_code == 200
    assert [options["as_of"] for _, options in calls] == [dt.date(2025, 6, 30), dt.date(2026, 1, 15)]


@pytest.mark.parametrize("value", ["30/06/2025", "2025-02-30", "2025-6-30", "20250630", 20250630, None, ""])
def test_bad_as_of_in_demo_mode_is_400_before_anything_is_fetched(settings, calls, value):
    from dataclasses import replace

    client = create_app(replace(settings, demo=True)).test_client()
    body = as_of_request(value)
    del body["prefetch"]["conditions"]  # would need a fetch: none is attempted (responses not active)
    issue = outcome_of(post(client, "vcf-patient-view", body), 400)
    assert issue["expression"] == ["extension.fhir-vcf.asOf"] and "YYYY-MM-DD" in issue["diagnostics"]
    assert calls == []


@pytest.mark.parametrize("value", ["2025-06-30", "not-a-date"])
def test_as_of_extension_is_ignored_outside_demo_mode(client, calls, monkeypatch, caplog, value):
    import datetime as dt

    caplog.set_level(logging.DEBUG, logger="fhir_vcf.service.cds_hooks")
    monkeypatch.setattr(cds_hooks, "today", lambda: dt.date(2026, 1, 15))
    assert post(client, "vcf-patient-view", as_of_request(value)).status_code == 200
    assert calls[0][1]["as_of"] == dt.date(2026, 1, 15)
    assert any(r.levelno == logging.DEBUG and "asOf ignored" in r.getMessage() for r in caplog.records)


def test_card_states_the_as_of_date_it_was_evaluated_for(client, calls):
    (card,) = assert_valid_cards(post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch())).json)
    assert card["extension"]["fhir-vcf"]["asOf"] == calls.result["asOf"]


# --- more request checks ---------------------------------------------------------------------------------


def test_missing_user_id_is_a_required_issue(client, calls):
    body = hook_request(prefetch=full_prefetch())
    del body["context"]["userId"]
    issue = outcome_of(post(client, "vcf-patient-view", body), 400)
    assert issue["expression"] == ["context.userId"] and issue["code"] == "required"
    assert calls == []


@responses.activate
def test_forged_host_header_cannot_widen_the_demo_allowlist(settings, calls):
    """Demo mode accepts its own /demo/fhir; a caller-chosen Host must not make another host 'its own'."""
    from dataclasses import replace

    client = create_app(replace(settings, demo=True, allowed_fhir_servers=())).test_client()
    body = hook_request(fhirServer="http://metadata.internal/demo/fhir",
                        fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer"})
    response = client.post("/cds-services/vcf-patient-view", json=body, headers={"Host": "metadata.internal"})
    assert outcome_of(response, 412)["code"] == "incomplete"  # not allowed: nothing fetched (issue 13.1)
    assert len(responses.calls) == 0 and calls == []


@responses.activate
def test_public_base_url_names_the_demo_endpoint(settings, calls):
    from dataclasses import replace

    app = create_app(replace(settings, demo=True, allowed_fhir_servers=(), public_base_url="https://vcf.example.org"))
    prefetch = full_prefetch()
    del prefetch["carePlans"]
    responses.get("https://vcf.example.org/demo/fhir/CarePlan", json={"resourceType": "Bundle", "type": "searchset"})
    body = hook_request(prefetch=prefetch, fhirServer="https://vcf.example.org/demo/fhir")
    response = app.test_client().post("/cds-services/vcf-patient-view", json=body,
                                      headers={"Host": "10.1.2.3:8080"})
    assert response.status_code == 200 and len(responses.calls) == 1


# --- order hooks: more cases ---------------------------------------------------------------------------


def sign_request(*orders):
    return hook_request("order-sign", prefetch=full_prefetch(), context={"draftOrders": drafts(*orders)})


def test_order_the_core_does_not_judge_gets_no_card(client, calls, caplog):
    """When the core judges another order than the one asked about, no card carries its levels."""

    def answer(options):
        ev = evaluation("eligible", levels=("L3",))
        ev["request"] = {"reference": "ServiceRequest/sr-2", "technique": "kyphoplasty"}
        return ev

    calls.result = answer
    orders = drafts(sr("sr-1", text="percutaneous vertebral augmentation"), sr("sr-2", cpt="22514"))
    body = hook_request("order-sign", prefetch=full_prefetch(), context={"draftOrders": orders})
    cards = assert_valid_cards(post(client, "vcf-order-sign", body).json)
    assert [c["extension"]["fhir-vcf"]["request"] for c in cards] == ["ServiceRequest/sr-2"]
    assert any("judged another order" in r.getMessage() for r in caplog.records)


def test_not_eligible_draft_without_an_id_gets_no_delete_action(client, calls):
    calls.result = evaluation("not-eligible", technique="none")
    order = sr("x", text="kyphoplasty L1")
    del order["id"]
    body = hook_request("order-sign", prefetch=full_prefetch(), context={"draftOrders": drafts(order)})
    (card,) = assert_valid_cards(post(client, "vcf-order-sign", body).json)
    (suggestion,) = card["suggestions"]
    assert [a["type"] for a in suggestion["actions"]] == ["create"]
    assert "entry[0]" in card["detail"]  # the detail still names the order


def test_order_sign_needs_review_says_before_signing(client, calls):
    calls.result = evaluation("needs-review")
    body = sign_request(sr("sr-1", cpt="22513"))
    (card,) = assert_valid_cards(post(client, "vcf-order-sign", body).json)
    assert card["indicator"] == "warning" and card["summary"].endswith("needs review before signing")


def test_order_select_relative_exclusion_and_absolute_on_select_are_warnings(client, calls):
    """critical is reserved for signing despite an absolute exclusion (order-sign only)."""
    calls.result = evaluation("not-eligible", technique="none", present=("X3",))
    body = hook_request("order-select", prefetch=full_prefetch(),
                        context={"draftOrders": drafts(sr("sr-1", cpt="22514")), "selections": ["ServiceRequest/sr-1"]})
    (card,) = assert_valid_cards(post(client, "vcf-order-select", body).json)
    assert card["indicator"] == "warning"
    calls.result = evaluation("not-eligible", technique="none", present=("X5",))
    body = sign_request(sr("sr-1", cpt="22514"))
    (card,) = assert_valid_cards(post(client, "vcf-order-sign", body).json)
    assert card["indicator"] == "warning"


def test_critical_reads_the_exclusion_kind_not_the_id(client, calls):
    """A policy may label any exclusion absolute: the card follows `exclusionKind`, not a fixed id list."""
    ev = evaluation("not-eligible", technique="none", present=("X9",))
    for criterion in ev["criteria"]:
        if criterion["id"] == "X9":
            criterion["exclusionKind"] = "absolute"
    calls.result = ev
    body = sign_request(sr("sr-1", cpt="22514"))
    (card,) = assert_valid_cards(post(client, "vcf-order-sign", body).json)
    assert card["indicator"] == "critical" and "X9" in card["summary"]


def test_absurdly_nested_json_is_a_400_not_a_500(client):
    response = client.post("/cds-services/vcf-patient-view", data="[" * 100_000 + "]" * 100_000,
                           content_type="application/json")
    assert outcome_of(response, 400)["code"] == "structure"


# --- one evaluation at a time per process -----------------------------------------------------------


def test_calls_arriving_together_are_evaluated_one_at_a_time(app, calls):
    """Judging is CPU work: a worker's threads evaluating at once only interleave under the GIL
    (`Services.evaluation_slot`; measured in bench_serving.py). Four calls sent together all
    answer, and the core never runs for two of them at once."""
    import threading
    import time

    running, most = [0], [0]
    lock = threading.Lock()
    answer = calls.result

    def slow(options):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return answer

    calls.result = slow
    statuses: list[int] = []

    def call() -> None:
        response = post(app.test_client(), "vcf-patient-view", hook_request(prefetch=full_prefetch()))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4 and len(calls) == 4
    assert most[0] == 1


@responses.activate
def test_a_call_fetching_from_the_fhir_server_holds_no_evaluation_slot(app, client, calls):
    """Waiting for a FHIR server is not CPU work: the slot stays free for the worker's other calls."""
    slot = app.extensions["fhir_vcf"].evaluation_slot
    seen: list[bool] = []

    def answer(request):
        seen.append(slot.locked())
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset"})

    responses.add_callback(responses.GET, f"{EHR}/Condition", callback=answer)
    prefetch = full_prefetch()
    del prefetch["conditions"]
    body = hook_request(prefetch=prefetch, fhirServer=EHR, fhirAuthorization={
        "access_token": TOKEN, "token_type": "Bearer"})
    assert post(client, "vcf-patient-view", body).status_code == 200
    assert seen == [False] and len(calls) == 1 and not slot.locked()


@pytest.mark.parametrize("failure, status", [(ValueError("a bug in the core"), 500),
                                             (cds_hooks.InputError("a record the core refuses"), 400)])
def test_the_evaluation_slot_is_released_when_the_evaluation_fails(app, calls, failure, status):
    def fail(options):
        raise failure

    calls.result = fail
    client = app.test_client()
    assert post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch())).status_code == status
    assert not app.extensions["fhir_vcf"].evaluation_slot.locked()
    calls.result = evaluation("eligible")
    assert post(client, "vcf-patient-view", hook_request(prefetch=full_prefetch())).status_code == 200


def test_the_answer_is_json_that_reads_back_as_the_body():
    """`_json` writes with orjson (compact UTF-8) and falls back to the standard library for what
    orjson refuses; either way the bytes are JSON that reads back as the body."""
    body = {"cards": [{"summary": "Vertébroplastie — T12", "detail": "a\n\"b\" \u2028", "n": [1, 2.5, None, True]}],
            "z": {}, "a": []}
    with create_app(Settings(database_url="sqlite://")).app_context():
        answer = cds_hooks._json(body)
        assert answer.mimetype == "application/json"
        assert answer.get_data() == orjson.dumps(body)  # compact, UTF-8 as written, members in order
        assert json.loads(answer.get_data()) == body
        for refused_by_orjson, read_back in [({"x": "\ud800"}, {"x": "\ud800"}),  # a lone surrogate
                                             ({"n": 2 ** 70}, {"n": 2 ** 70}),   # past 64 bits
                                             ({1: "a"}, {"1": "a"})]:            # a key that is not a string
            with pytest.raises(orjson.JSONEncodeError):
                orjson.dumps(refused_by_orjson)
            data = cds_hooks._json(refused_by_orjson).get_data()
            assert data.isascii() and json.loads(data) == read_back

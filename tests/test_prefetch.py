"""CDS Hooks prefetch → record (fhir_vcf.sources.prefetch): the four states per key, fetching,
paging, retries, timeouts, the allowlist. FHIR calls are mocked with `responses`; any call not
registered fails the test (so "no call made" is asserted by construction and by `len(calls)`)."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
import requests
import responses
from cards import EHR

from fhir_vcf.config import Settings
from fhir_vcf.errors import InputError
from fhir_vcf.record import USED_TYPES
from fhir_vcf.service.registry import fhir_client_factory
from fhir_vcf.sources.prefetch import (
    PREFETCH_TEMPLATES,
    ForbiddenServer,
    PrefetchUnavailable,
    check_fhir_server,
    normalise_base,
    plan_prefetch,
    request_record,
    resolve_template,
)

TOKEN = "secret-access-token-abc123"
FACTORY = fhir_client_factory(Settings(fhir_connect_timeout=0.5, fhir_read_timeout=0.5, fhir_max_pages=3))


def bundle(*resources, next_url=None):
    body = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}
    if next_url:
        body["link"] = [{"relation": "next", "url": next_url}]
    return body


def condition(cid="vcf-1", patient="p1"):
    return {
        "resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
        "onsetDateTime": "2025-06-02",
    }


def observation(oid, patient="p1"):
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}, "valueInteger": 8}


def full_prefetch(patient="p1"):
    """Every key present: the Patient, one Condition, every other search an empty Bundle."""
    prefetch = {key: bundle() for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": patient, "gender": "female"}
    prefetch["conditions"] = bundle(condition(patient=patient))
    return prefetch


def build(prefetch, *, server=EHR, token=TOKEN, draft_orders=None, budget=3.0):
    context = {"patientId": "p1", "userId": "Practitioner/dr-1"}
    if draft_orders is not None:
        context["draftOrders"] = draft_orders
    return request_record(context=context, prefetch=prefetch, fhir_server=server, token=token,
                               client_factory=FACTORY, budget=budget)


def refs(record, rtype):
    return sorted(record.ref(r) for r in record.of_type(rtype))


@responses.activate
def test_complete_prefetch_makes_no_call():
    record = build(full_prefetch())
    assert record.patient == "Patient/p1"
    assert refs(record, "Condition") == ["Condition/vcf-1"]
    assert len(responses.calls) == 0


@responses.activate
def test_null_key_is_not_refetched():
    prefetch = full_prefetch()
    prefetch["observations"] = None
    prefetch["carePlans"] = None
    record = build(prefetch)
    assert record.of_type("Observation") == []
    assert len(responses.calls) == 0


@responses.activate
def test_null_keys_need_no_server_at_all():
    prefetch = dict.fromkeys(PREFETCH_TEMPLATES)
    record = build(prefetch, server=None, token=None)
    assert record.patient == "Patient/p1" and not record.resources
    assert len(responses.calls) == 0


@responses.activate
def test_absent_key_is_fetched_with_the_bearer_token():
    prefetch = full_prefetch()
    del prefetch["observations"]
    responses.get(f"{EHR}/Observation", json=bundle(observation("nrs-1")))
    record = build(prefetch)
    assert refs(record, "Observation") == ["Observation/nrs-1"]
    (call,) = responses.calls
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "patient=p1" in call.request.url and "_sort=-date" in call.request.url


@responses.activate
def test_absent_patient_is_read():
    prefetch = full_prefetch()
    del prefetch["patient"]
    responses.get(f"{EHR}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    record = build(prefetch)
    assert record.patient_resource is not None
    assert len(responses.calls) == 1


@responses.activate
def test_operation_outcome_in_place_of_data_is_refetched():
    prefetch = full_prefetch()
    prefetch["conditions"] = {"resourceType": "OperationOutcome",
                              "issue": [{"severity": "error", "code": "timeout"}]}
    responses.get(f"{EHR}/Condition", json=bundle(condition("vcf-2")))
    record = build(prefetch)
    assert refs(record, "Condition") == ["Condition/vcf-2"]
    assert len(responses.calls) == 1


@responses.activate
def test_paged_prefetch_bundle_follows_next_through_fhir_server():
    prefetch = full_prefetch()
    prefetch["observations"] = bundle(observation("o1"), next_url=f"{EHR}/Observation?page=2")
    responses.get(f"{EHR}/Observation", match=[responses.matchers.query_param_matcher({"page": "2"})],
                  json=bundle(observation("o2"), next_url=f"{EHR}/Observation?page=3"))
    responses.get(f"{EHR}/Observation", match=[responses.matchers.query_param_matcher({"page": "3"})],
                  json=bundle(observation("o3")))
    record = build(prefetch)
    assert refs(record, "Observation") == ["Observation/o1", "Observation/o2", "Observation/o3"]
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in responses.calls)


@responses.activate
def test_paged_prefetch_without_a_server_uses_the_pages_sent():
    prefetch = full_prefetch()
    prefetch["observations"] = bundle(observation("o1"), next_url=f"{EHR}/Observation?page=2")
    record = build(prefetch, server=None, token=None)
    assert refs(record, "Observation") == ["Observation/o1"]
    assert len(responses.calls) == 0


@responses.activate
def test_next_link_to_another_host_is_not_followed():
    prefetch = full_prefetch()
    prefetch["observations"] = bundle(observation("o1"), next_url="http://169.254.169.254/latest/meta-data")
    with pytest.raises(PrefetchUnavailable):
        build(prefetch)
    assert len(responses.calls) == 0


@responses.activate
def test_fetched_search_is_paged():
    prefetch = full_prefetch()
    del prefetch["conditions"]
    responses.get(f"{EHR}/Condition", match=[responses.matchers.query_param_matcher({"page": "2"})],
                  json=bundle(condition("vcf-2")))
    responses.get(f"{EHR}/Condition", json=bundle(condition("vcf-1"), next_url=f"{EHR}/Condition?page=2"))
    record = build(prefetch)
    assert refs(record, "Condition") == ["Condition/vcf-1", "Condition/vcf-2"]


@responses.activate
def test_absent_key_without_fhir_server_is_unavailable():
    prefetch = full_prefetch()
    del prefetch["procedures"]
    with pytest.raises(PrefetchUnavailable) as info:
        build(prefetch, server=None, token=None)
    assert info.value.keys == ("procedures",)
    assert len(responses.calls) == 0


@responses.activate
def test_open_server_is_fetched_without_a_token():
    prefetch = full_prefetch()
    del prefetch["procedures"]
    responses.get(f"{EHR}/Procedure", json=bundle())
    build(prefetch, token=None)
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_server_error_is_unavailable():
    prefetch = full_prefetch()
    del prefetch["encounters"]
    responses.get(f"{EHR}/Encounter", status=500, json={"resourceType": "OperationOutcome"})
    with pytest.raises(PrefetchUnavailable) as info:
        build(prefetch)
    assert info.value.keys == ("encounters",)
    assert "500" in str(info.value)


@responses.activate
def test_timeout_is_unavailable():
    prefetch = full_prefetch()
    del prefetch["encounters"]
    responses.get(f"{EHR}/Encounter", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(PrefetchUnavailable) as info:
        build(prefetch)
    assert "timed out" in str(info.value)


@responses.activate
def test_429_then_success_is_retried():
    prefetch = full_prefetch()
    del prefetch["encounters"]
    responses.get(f"{EHR}/Encounter", status=429, headers={"Retry-After": "0"})
    responses.get(f"{EHR}/Encounter", json=bundle({"resourceType": "Encounter", "id": "e1", "status": "finished",
                                                   "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}))
    record = build(prefetch)
    assert refs(record, "Encounter") == ["Encounter/e1"]
    assert len(responses.calls) == 2


@responses.activate
def test_token_is_never_logged_nor_in_errors(caplog):
    caplog.set_level(logging.DEBUG)
    prefetch = full_prefetch()
    del prefetch["encounters"]
    responses.get(f"{EHR}/Encounter", status=503)
    with pytest.raises(PrefetchUnavailable) as info:
        build(prefetch)
    assert TOKEN not in str(info.value)
    assert all(TOKEN not in record.getMessage() and TOKEN not in str(record.__dict__) for record in caplog.records)


@responses.activate
def test_draft_orders_are_merged_as_drafts_and_win_over_stored_copies():
    prefetch = full_prefetch()
    stored = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order",
              "subject": {"reference": "Patient/p1"}, "code": {"text": "old"}}
    prefetch["serviceRequests"] = bundle(stored)
    draft = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order",
             "code": {"text": "kyphoplasty T12"}}
    record = build(prefetch, draft_orders=bundle(draft))
    (sr,) = record.of_type("ServiceRequest")
    assert sr.status == "draft" and sr.code.text == "kyphoplasty T12"
    assert sr.subject.reference == "Patient/p1"


def test_invalid_prefetch_value_is_an_input_error():
    prefetch = full_prefetch()
    prefetch["conditions"] = ["not", "a", "bundle"]
    with pytest.raises(InputError):
        build(prefetch)


def test_invalid_resource_names_its_element():
    prefetch = full_prefetch()
    prefetch["conditions"] = bundle({"resourceType": "Condition", "id": "bad", "subject": {"reference": "Patient/p1"},
                                     "onsetDateTime": "not-a-date"})
    with pytest.raises(InputError) as info:
        build(prefetch)
    assert "Condition/bad" in str(info.value) and "onsetDateTime" in str(info.value)


# --- templates and the allowlist -------------------------------------------------------------------

ALLOWED_TOKENS = {"context.patientId", "context.encounterId", "context.userId", "userPractitionerId",
                  "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


def test_templates_use_only_valid_tokens_and_the_query_subset():
    for key, template in PREFETCH_TEMPLATES.items():
        tokens = set(re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template))
        assert tokens <= ALLOWED_TOKENS, key
        assert "draftOrders" not in template and "selections" not in template
        assert "sort:desc" not in template
        query = template.split("?", 1)[1] if "?" in template else ""
        for param in filter(None, query.split("&")):
            name = param.split("=", 1)[0]
            assert name in {"patient", "_count", "_sort", "subject"}, (key, name)
    covered = {t.split("/")[0].split("?")[0] for t in PREFETCH_TEMPLATES.values()}
    # A template for every type the record keeps (= what the rules read), except Medication: it has
    # no patient to search by, and `_include` is outside the 2.0 query subset. It arrives contained,
    # or in a Bundle beside the orders; otherwise the order's own names are read.
    assert covered == USED_TYPES - {"Medication"}


def test_resolve_template_encodes_and_refuses_missing_tokens():
    assert resolve_template("Patient/{{context.patientId}}", {"patientId": "a b/c"}) == "Patient/a%20b%2Fc"
    assert resolve_template("X?e={{context.encounterId}}", {"patientId": "p"}) is None
    assert resolve_template("P?u={{userPractitionerId}}", {"userId": "Practitioner/dr-1"}) == "P?u=dr-1"


def test_plan_sorts_the_four_states():
    prefetch = {"patient": {"resourceType": "Patient", "id": "p1"}, "conditions": None,
                "observations": {"resourceType": "OperationOutcome", "issue": []}}
    plan = plan_prefetch(prefetch, {"patientId": "p1"})
    assert "conditions" not in plan.to_fetch and "patient" not in plan.to_fetch
    assert "observations" in plan.to_fetch and "procedures" in plan.to_fetch


@pytest.mark.parametrize("url", ["https://EHR.example.org:443/fhir/", "https://ehr.example.org/fhir"])
def test_allowlist_normalises_base_urls(url):
    assert check_fhir_server(url, ["https://ehr.example.org/fhir/"]) == "https://ehr.example.org/fhir"


@pytest.mark.parametrize("url", ["https://ehr.example.org/other", "http://ehr.example.org/fhir",
                                 "https://ehr.example.org.evil.test/fhir", "file:///etc/passwd"])
def test_allowlist_refuses(url):
    with pytest.raises(ForbiddenServer):
        check_fhir_server(url, [EHR])


def test_normalise_base():
    assert normalise_base("HTTP://Host:80//fhir/R4/") == "http://host/fhir/R4"


@responses.activate
def test_whole_fetch_phase_has_a_budget():
    import threading

    release, finished = threading.Event(), threading.Event()

    def slow(request):
        release.wait(5)
        finished.set()
        return 200, {}, json.dumps(bundle())

    prefetch = full_prefetch()
    del prefetch["procedures"]
    responses.add_callback(responses.GET, f"{EHR}/Procedure", callback=slow)
    try:
        with pytest.raises(PrefetchUnavailable) as info:
            build(prefetch, budget=0.05)
        assert info.value.keys == ("procedures",) and "within" in str(info.value)
    finally:
        # let the abandoned fetch finish inside this test's mock, not inside the next test's
        release.set()
        assert finished.wait(5)
        time.sleep(0.05)


@responses.activate
def test_next_link_of_a_fetched_search_to_another_host_is_not_followed():
    """The token goes to fhirServer only: a server's next link elsewhere is refused, not called."""
    prefetch = full_prefetch()
    del prefetch["conditions"]
    responses.get(f"{EHR}/Condition", json=bundle(condition("vcf-1"), next_url="https://collector.example/steal?p=2"))
    stolen = responses.get("https://collector.example/steal", json=bundle(condition("vcf-2")))
    with pytest.raises(PrefetchUnavailable) as info:
        build(prefetch)
    assert info.value.keys == ("conditions",) and "another server" in str(info.value)
    assert stolen.call_count == 0


@responses.activate
def test_fetch_stops_at_the_page_cap_and_says_so(caplog):
    caplog.set_level(logging.WARNING)
    prefetch = full_prefetch()
    del prefetch["observations"]
    for page in range(1, 6):  # an endless history: each page links to the next
        responses.get(f"{EHR}/Observation", match=[responses.matchers.query_param_matcher(
            {"page": str(page)}, strict_match=False)] if page > 1 else [],
            json=bundle(observation(f"o{page}"), next_url=f"{EHR}/Observation?page={page + 1}"))
    record = build(prefetch)
    assert refs(record, "Observation") == ["Observation/o1", "Observation/o2", "Observation/o3"]  # max_pages=3
    assert len(responses.calls) == 3
    assert any("stopped after 3 page(s)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", [502, 503, 504])
@responses.activate
def test_transient_gateway_errors_are_retried(status):
    prefetch = full_prefetch()
    del prefetch["procedures"]
    responses.get(f"{EHR}/Procedure", status=status)
    responses.get(f"{EHR}/Procedure", json=bundle())
    build(prefetch)
    assert [c.response.status_code for c in responses.calls] == [status, 200]


@responses.activate
def test_client_errors_are_not_retried():
    prefetch = full_prefetch()
    del prefetch["procedures"]
    responses.get(f"{EHR}/Procedure", status=403)
    with pytest.raises(PrefetchUnavailable):
        build(prefetch)
    assert len(responses.calls) == 1


@responses.activate
def test_a_fetch_abandoned_at_the_budget_requests_no_further_page():
    """After the call is answered (412), a slow fetch still running sends the token nowhere else."""
    import threading

    release = threading.Event()

    def slow_first_page(request):
        release.wait(5)
        return 200, {}, json.dumps(bundle(condition("vcf-1"), next_url=f"{EHR}/Condition?page=2"))

    prefetch = full_prefetch()
    del prefetch["conditions"]
    second = responses.get(f"{EHR}/Condition", match=[responses.matchers.query_param_matcher({"page": "2"})],
                           json=bundle(condition("vcf-2")))
    responses.add_callback(responses.GET, f"{EHR}/Condition", callback=slow_first_page)
    with pytest.raises(PrefetchUnavailable):
        build(prefetch, budget=0.05)
    release.set()
    for thread in [t for t in threading.enumerate() if t.name.startswith("prefetch")]:
        thread.join(5)
    assert second.call_count == 0


def test_the_record_is_built_holding_the_building_slot_and_fetched_without_it():
    """The service's evaluation slot (one CPU-bound call at a time per worker) is held while the
    record is bound and built, never while a FHIR server is asked (`Services.evaluation_slot`)."""
    import contextlib
    import threading

    slot, seen = threading.Lock(), []

    @contextlib.contextmanager
    def building():
        with slot:
            seen.append("built")
            yield

    prefetch = full_prefetch()
    del prefetch["observations"]
    with responses.RequestsMock() as mock:
        def answer(request):
            seen.append("fetched while the slot is " + ("held" if slot.locked() else "free"))
            return 200, {}, json.dumps(bundle())

        mock.add_callback(responses.GET, f"{EHR}/Observation", callback=answer)
        record = request_record(context={"patientId": "p1"}, prefetch=prefetch, fhir_server=EHR, token=TOKEN,
                                client_factory=FACTORY, building=building())
    assert seen == ["fetched while the slot is free", "built"]
    assert record.patient == "Patient/p1" and not slot.locked()

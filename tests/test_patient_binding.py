"""Issue 10, patient binding: only resources proven to be the context patient's reach the mappers.

Unit tests of `fhir_vcf.sources.binding` on raw entries, then the attacks end to end through the
CDS Hooks service with the real evaluation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import responses
from cards import hook_request

from fhir_vcf.app import create_app
from fhir_vcf.config import Settings
from fhir_vcf.errors import InputError
from fhir_vcf.service.registry import fhir_client_factory
from fhir_vcf.sources.binding import (
    IDENTIFIER_ONLY,
    NO_PATIENT,
    OTHER_PATIENT,
    OTHER_SERVER,
    UNRESOLVED,
    PatientMismatch,
    bind_to_patient,
)
from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES, PrefetchUnavailable, request_record

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EHR = "https://ehr.example.org/fhir"


def entry(resource, full_url=None, source="prefetch.x"):
    rid = resource.get("id")
    return (full_url, resource, f"{resource['resourceType']}/{rid}" if rid else resource["resourceType"], source)


def obs(oid, subject):
    return {"resourceType": "Observation", "id": oid, "status": "final", "code": {"text": "pain"}, "subject": subject}


def kept(binding):
    return [label for _, _, label, _ in binding.entries]


def test_literal_references_to_the_context_patient_are_kept():
    binding = bind_to_patient([
        entry({"resourceType": "Patient", "id": "p1"}),
        entry(obs("a", {"reference": "Patient/p1"})),
        entry(obs("b", {"reference": "Patient/p1/_history/3"})),
        entry(obs("c", {"reference": f"{EHR}/Patient/p1"})),
        entry({"resourceType": "Medication", "id": "m1", "code": {"text": "alendronate"}}),
    ], "p1", fhir_server=EHR)
    assert kept(binding) == ["Patient/p1", "Observation/a", "Observation/b", "Observation/c", "Medication/m1"]
    assert not binding.skipped


def test_a_blank_reference_is_judged_by_its_identifier_each_time():
    """Reasons are worked out once per literal reference, but a blank one says nothing by itself: with an
    identifier it is identifier-only, without one no patient reference, however often it recurs."""
    binding = bind_to_patient([
        entry({"resourceType": "Patient", "id": "p1"}),
        entry(obs("blank-id", {"reference": " ", "identifier": {"system": "urn:mrn", "value": "1"}})),
        entry(obs("blank", {"reference": " "})),
        entry(obs("blank-id-2", {"reference": " ", "identifier": {"system": "urn:mrn", "value": "1"}})),
        entry(obs("mine", {"reference": "Patient/p1"})),
        entry(obs("other", {"reference": "Patient/p2"})),
        entry(obs("mine-2", {"reference": "Patient/p1"})),
        entry(obs("other-2", {"reference": "Patient/p2"})),
    ], "p1", fhir_server=EHR)
    assert kept(binding) == ["Patient/p1", "Observation/mine", "Observation/mine-2"]
    assert binding.skipped == {IDENTIFIER_ONLY: 2, NO_PATIENT: 1, OTHER_PATIENT: 2}


def test_what_cannot_be_proven_is_dropped_and_counted():
    binding = bind_to_patient([
        entry({"resourceType": "Patient", "id": "p1"}),
        entry(obs("id-only", {"identifier": {"system": "urn:mrn", "value": "123"}})),
        entry(obs("other", {"reference": "Patient/p2"})),
        entry(obs("elsewhere", {"reference": "https://other.example/fhir/Patient/p1"})),
        entry(obs("urn", {"reference": "urn:uuid:0c3b8a4e-1111-4aaa-8bbb-222222222222"})),
        entry(obs("display", {"display": "Jane"})),
        entry({"resourceType": "Condition", "id": "no-subject", "code": {"text": "fracture"}}),
        entry(obs("group", {"reference": "Group/g1"})),
    ], "p1", fhir_server=EHR)
    assert kept(binding) == ["Patient/p1"]
    assert binding.skipped == {IDENTIFIER_ONLY: 1, OTHER_PATIENT: 2, OTHER_SERVER: 1, UNRESOLVED: 1, NO_PATIENT: 2}


def test_urn_uuid_references_resolve_to_the_context_patients_full_url():
    patient_url = "urn:uuid:5b0c9d0f-6a3e-4c1f-9a0e-2b7d8c6a4f21"
    binding = bind_to_patient([
        entry({"resourceType": "Patient", "id": "p1"}, patient_url),
        entry(obs("a", {"reference": patient_url})),
    ], "p1")
    assert kept(binding) == ["Patient/p1", "Observation/a"]


@pytest.mark.parametrize("patient, full_url", [
    ({"resourceType": "Patient", "id": "p2"}, None),                                   # another id
    ({"resourceType": "Patient"}, "urn:uuid:5b0c9d0f-6a3e-4c1f-9a0e-2b7d8c6a4f21"),    # no id, a urn only
    ({"resourceType": "Patient"}, f"{EHR}/Patient/p2"),                                # no id, another patient's URL
])
def test_a_patient_that_is_not_the_context_patient_is_refused(patient, full_url):
    with pytest.raises(PatientMismatch):
        bind_to_patient([entry(patient, full_url)], "p1")


def test_an_id_less_patient_whose_full_url_names_the_context_patient_is_kept():
    binding = bind_to_patient([entry({"resourceType": "Patient"}, f"{EHR}/Patient/p1"),
                               entry(obs("a", {"reference": f"{EHR}/Patient/p1"}))], "p1")
    assert kept(binding) == ["Patient", "Observation/a"]


# --- through the prefetch layer ----------------------------------------------------------------------


def full_prefetch(patient):
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset"} for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = patient
    return prefetch


def test_request_record_returns_the_skip_counts():
    prefetch = full_prefetch({"resourceType": "Patient", "id": "p1"})
    prefetch["observations"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": obs("o1", {"reference": "Patient/p1"})},
        {"resource": obs("o2", {"identifier": {"value": "123"}})}]}
    result = request_record(context={"patientId": "p1"}, prefetch=prefetch, fhir_server=None, token=None,
                            client_factory=fhir_client_factory(Settings()))
    assert [result.ref(o) for o in result.of_type("Observation")] == ["Observation/o1"]
    assert result.skipped == {IDENTIFIER_ONLY: 1}


def test_a_prefetched_other_patient_is_a_400_and_a_fetched_one_a_412():
    with pytest.raises(InputError):
        request_record(context={"patientId": "p1"}, prefetch=full_prefetch({"resourceType": "Patient", "id": "p2"}),
                       fhir_server=None, token=None, client_factory=fhir_client_factory(Settings()))
    prefetch = full_prefetch(None)
    del prefetch["patient"]
    with responses.RequestsMock() as mock:
        mock.get(f"{EHR}/Patient/p1", json={"resourceType": "Patient", "id": "p2"})
        with pytest.raises(PrefetchUnavailable, match="another patient"):
            request_record(context={"patientId": "p1"}, prefetch=prefetch, fhir_server=EHR, token="t",
                           client_factory=fhir_client_factory(Settings()))


def test_a_draft_order_for_another_patient_is_refused():
    orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p2"}, "code": {"text": "kyphoplasty L1"}}}]}
    with pytest.raises(InputError, match="draft order"):
        request_record(context={"patientId": "p1", "draftOrders": orders},
                       prefetch=full_prefetch({"resourceType": "Patient", "id": "p1"}), fhir_server=None, token=None,
                       client_factory=fhir_client_factory(Settings()))


# --- end to end: another patient's data never decides the card ---------------------------------------------


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", demo=True))
    return app.test_client()


def eligible_resources():
    """The resources of an eligible sample patient (p-moreau), its own Patient left out."""
    bundle = json.loads((SAMPLES / "eligible-outpatient-worsening.json").read_text())
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]


def as_of(body):
    body["extension"] = {"fhir-vcf": {"asOf": "2025-06-30"}}
    return body


def prefetch_of(resources, patient):
    prefetch = full_prefetch(patient)
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "collection",
                              "entry": [{"resource": r} for r in resources]}
    return prefetch


def decisions(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return [card["extension"]["fhir-vcf"]["decision"] for card in response.json["cards"]]


def test_the_eligible_sample_is_eligible_when_bound_to_its_own_patient(client):
    resources = copy.deepcopy(eligible_resources())
    body = as_of(hook_request(patient="p-moreau", prefetch=prefetch_of(resources, {"resourceType": "Patient",
                                                                                        "id": "p-moreau"})))
    assert decisions(client.post("/cds-services/vcf-patient-view", json=body)) == ["eligible"]


def test_identifier_only_subjects_of_another_patient_do_not_decide_the_card(client):
    """The issue's case: resources with an identifier-only subject were given to the context patient."""
    resources = copy.deepcopy(eligible_resources())
    for resource in resources:
        for element in ("subject", "patient"):
            if element in resource:
                resource[element] = {"identifier": {"system": "urn:oid:1.2.3", "value": "MRN-OTHER"}}
    body = as_of(hook_request(patient="p-victim",
                              prefetch=prefetch_of(resources, {"resourceType": "Patient", "id": "p-victim"})))
    assert decisions(client.post("/cds-services/vcf-patient-view", json=body)) == []  # no fracture of its own


def test_urn_keyed_resources_of_an_id_less_other_patient_are_refused(client):
    """The issue's case: a Patient without an id, keyed by urn:uuid, decided the card."""
    resources = copy.deepcopy(eligible_resources())
    urn = "urn:uuid:7d3c1f0e-0000-4000-8000-000000000001"
    for resource in resources:
        for element in ("subject", "patient"):
            if element in resource:
                resource[element] = {"reference": urn}
    prefetch = prefetch_of(resources, None)
    prefetch["patient"] = {"resourceType": "Bundle", "type": "collection",
                           "entry": [{"fullUrl": urn, "resource": {"resourceType": "Patient", "gender": "female"}}]}
    response = client.post("/cds-services/vcf-patient-view",
                           json=as_of(hook_request(patient="p-victim", prefetch=prefetch)))
    assert response.status_code == 400
    assert "not context.patientId" in response.json["issue"][0]["diagnostics"]


# --- the REST API's patient endpoints read with the same binding ---------------------------------------


def test_the_api_refuses_a_server_that_answers_with_another_patient(tmp_path):
    from api_support import BASE, FakeFhirServer, make_app

    server = FakeFhirServer([{"resourceType": "Patient", "id": "p1"}])
    original = server._get

    def wrong_patient(request):  # the read of Patient/p1 answers with Patient/p2
        if request.url.endswith("/Patient/p1"):
            return server._answer(200, {"resourceType": "Patient", "id": "p2"})
        return original(request)

    server._get = wrong_patient
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        server.install(mock)
        response = make_app(tmp_path, fhir_base_url=BASE).test_client().get("/api/v1/patients/p1/evaluation")
    assert response.status_code == 502 and "not context.patientId" in response.json["detail"]


def test_the_api_sets_aside_what_is_not_the_patients(tmp_path, caplog):
    import logging

    from api_support import BASE, FakeFhirServer, make_app

    caplog.set_level(logging.WARNING, logger="fhir_vcf.sources.prefetch")
    resources = [{"resourceType": "Patient", "id": "p1"},
                 obs("mine", {"reference": "Patient/p1"}),
                 obs("other", {"reference": "Patient/p1", "identifier": {"value": "x"}})]
    server = FakeFhirServer(resources)
    original = server._get

    def with_identifier_only(request):
        status, headers, body = original(request)
        return status, headers, body.replace('"reference": "Patient/p1", "identifier"', '"identifier"')

    server._get = with_identifier_only
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        server.install(mock)
        client = make_app(tmp_path, fhir_base_url=BASE).test_client()
        response = client.get("/api/v1/patients/p1/evaluation?asOf=2025-06-30")
    assert response.status_code == 200
    (warning,) = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert warning.skipped == {IDENTIFIER_ONLY: 1}

"""Demo mode: the read-only FHIR endpoint at /demo/fhir and the start-up banner."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fhir_vcf import create_app
from fhir_vcf.errors import ConfigError
from fhir_vcf.service.demo_fhir import demo_banner, demo_overrides, local_base_url

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FHIR_JSON = "application/fhir+json"


def observation(n: int, patient: str = "d1") -> dict:
    return {
        "resourceType": "Observation",
        "id": f"{patient}-nrs-{n}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"2025-06-{10 + n:02d}",
        "valueInteger": n,
    }


@pytest.fixture
def demo_dir(tmp_path):
    entries = [{"resourceType": "Patient", "id": "d1"}, {"resourceType": "Patient", "id": "d2"}]
    entries += [observation(n) for n in range(1, 6)]
    entries += [observation(9, "d2")]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in entries]}
    (tmp_path / "demo.json").write_text(json.dumps(bundle))
    (tmp_path / "expected.json").write_text("{}")  # like samples/: not a Bundle, skipped
    return tmp_path


@pytest.fixture
def client(demo_dir):
    return create_app({"demo": True, "demo_dir": str(demo_dir), "database_url": "sqlite://"}).test_client()


def relative(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_metadata_is_a_capability_statement(client):
    response = client.get("/demo/fhir/metadata")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    body = response.get_json()
    assert body["resourceType"] == "CapabilityStatement" and body["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(resources) == {"Patient", "Observation", "CarePlan"}  # CarePlan: the write-back
    assert {"code": "create"} in resources["CarePlan"]["interaction"] and resources["CarePlan"]["conditionalCreate"]
    assert {"code": "create"} not in resources["Patient"]["interaction"]


def test_read(client):
    response = client.get("/demo/fhir/Observation/d1-nrs-3")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    assert response.get_json()["valueInteger"] == 3


def test_search_by_patient_and_subject(client):
    body = client.get("/demo/fhir/Observation?patient=d2").get_json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset" and body["total"] == 1
    assert body["entry"][0]["resource"]["id"] == "d2-nrs-9"
    assert body["entry"][0]["fullUrl"] == "http://localhost/demo/fhir/Observation/d2-nrs-9"
    assert client.get("/demo/fhir/Observation?subject=Patient/d1").get_json()["total"] == 5


def test_count_pages_with_next_links(client):
    seen, url, pages = [], "/demo/fhir/Observation?patient=d1&_count=2&_sort=-date", 0
    while url:
        body = client.get(url).get_json()
        assert body["total"] == 5
        seen += [e["resource"]["valueInteger"] for e in body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in body["link"]}
        assert "self" in links
        url = relative(links["next"]) if "next" in links else None
        pages += 1
    assert pages == 3 and seen == [5, 4, 3, 2, 1]


def test_unknown_parameters_are_ignored_and_left_out_of_self(client):
    body = client.get("/demo/fhir/Observation?patient=d1&colour=blue").get_json()
    assert body["total"] == 5
    assert "colour" not in body["link"][0]["url"]


def test_strict_handling_refuses_unknown_parameters(client):
    response = client.get("/demo/fhir/Observation?colour=blue", headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize("query", ["_count=many", "_getpagesoffset=-1", "date=yesterday"])
def test_bad_values_are_400(client, query):
    response = client.get(f"/demo/fhir/Observation?{query}")
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("path", ["/demo/fhir/Patient/nobody", "/demo/fhir/Frobnicator", "/demo/fhir/Frobnicator/1"])
def test_unknown_ids_and_types_are_404_operation_outcomes(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.mimetype == FHIR_JSON
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "not-found"


def test_summary_count_answers_the_total_only(client):
    body = client.get("/demo/fhir/Observation?patient=d1&_summary=count").get_json()
    assert body["total"] == 5 and "entry" not in body


def test_known_type_without_data_is_an_empty_searchset(client):
    body = client.get("/demo/fhir/CarePlan?patient=d1").get_json()
    assert body["total"] == 0 and "entry" not in body


def test_read_only(client):
    response = client.post("/demo/fhir/Patient", json={"resourceType": "Patient"})
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    assert client.delete("/demo/fhir/Patient/d1").status_code == 405


def test_not_registered_without_demo_mode():
    client = create_app({"database_url": "sqlite://"}).test_client()
    assert client.get("/demo/fhir/metadata").status_code == 404


def test_missing_demo_dir_stops_the_start_up(tmp_path):
    with pytest.raises(ConfigError, match="FHIR_VCF_DEMO_DIR"):
        create_app({"demo": True, "demo_dir": str(tmp_path / "absent"), "database_url": "sqlite://"})


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no samples/ folder")
def test_default_serves_the_repository_samples():
    client = create_app({"demo": True, "database_url": "sqlite://"}).test_client()
    body = client.get("/demo/fhir/Patient?_count=100").get_json()
    ids = {e["resource"]["id"] for e in body["entry"]}
    assert {"p-tanaka", "p-two-a-berg", "p-two-b-costa"} <= ids


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no samples/ folder")
def test_ready_made_hook_request():
    client = create_app({"demo": True, "database_url": "sqlite://"}).test_client()
    body = client.get("/demo/fhir/$cds-hooks-request?patient=p-tanaka&hook=order-sign&asOf=2025-06-30").get_json()
    assert body["hook"] == "order-sign" and body["context"]["patientId"] == "p-tanaka"
    assert body["context"]["draftOrders"]["entry"] and body["prefetch"]["patient"]["id"] == "p-tanaka"
    assert body["extension"] == {"fhir-vcf": {"asOf": "2025-06-30"}}
    assert client.get("/demo/fhir/$cds-hooks-request?patient=nobody").status_code == 404


def test_banner_names_every_url_to_try():
    text = demo_banner("http://127.0.0.1:8080/")
    for url in (
        "http://127.0.0.1:8080/cds-services",
        "http://127.0.0.1:8080/demo/fhir",
        "http://127.0.0.1:8080/api/v1/",
        "http://127.0.0.1:8080/metrics",
        '"fhirServer": "http://127.0.0.1:8080/demo/fhir"',
        "$cds-hooks-request",
    ):
        assert url in text


def test_serve_demo_points_the_rest_api_at_the_demo_endpoint(monkeypatch):
    monkeypatch.delenv("FHIR_VCF_FHIR_BASE_URL", raising=False)
    monkeypatch.delenv("FHIR_VCF_DEMO", raising=False)
    assert demo_overrides({"demo": True}, "0.0.0.0", 8080) == {"fhir_base_url": "http://127.0.0.1:8080/demo/fhir"}
    assert demo_overrides({}, "127.0.0.1", 8080) == {}
    monkeypatch.setenv("FHIR_VCF_DEMO", "true")  # the Docker way: demo from the environment
    assert demo_overrides({}, "::", 9000) == {"fhir_base_url": "http://127.0.0.1:9000/demo/fhir"}
    monkeypatch.setenv("FHIR_VCF_FHIR_BASE_URL", "https://ehr.example.org/fhir")
    assert demo_overrides({"demo": True}, "0.0.0.0", 8080) == {}
    assert local_base_url("::1", 80) == "http://[::1]:80"


# --- the CarePlan write-back ----------------------------------------------------------------------------

CAREPLAN = {
    "resourceType": "CarePlan", "status": "draft", "intent": "proposal",
    "subject": {"reference": "Patient/d1"},
    "identifier": [{"system": "urn:fhir-vcf:careplan", "value": "abc"}],
}
CONDITION = {"If-None-Exist": "identifier=urn:fhir-vcf:careplan|abc"}


def test_conditional_create_creates_once_then_answers_the_match(client):
    first = client.post("/demo/fhir/CarePlan", json=CAREPLAN, headers=CONDITION)
    assert first.status_code == 201 and first.mimetype == FHIR_JSON
    created = first.get_json()
    assert created["meta"]["versionId"] == "1" and created["id"]
    assert first.headers["Location"].endswith(f"/demo/fhir/CarePlan/{created['id']}/_history/1")
    again = client.post("/demo/fhir/CarePlan", json=CAREPLAN, headers=CONDITION)
    assert again.status_code == 200 and again.get_json()["id"] == created["id"]  # nothing created
    assert client.get(f"/demo/fhir/CarePlan/{created['id']}").get_json()["identifier"] == CAREPLAN["identifier"]
    found = client.get("/demo/fhir/CarePlan?patient=d1").get_json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == created["id"]


def test_plain_creates_add_and_an_ambiguous_condition_is_412(client):
    plain = {k: v for k, v in CAREPLAN.items() if k != "identifier"}
    assert client.post("/demo/fhir/CarePlan", json=plain).status_code == 201
    assert client.post("/demo/fhir/CarePlan", json=plain).status_code == 201
    ambiguous = client.post("/demo/fhir/CarePlan", json=plain, headers={"If-None-Exist": "patient=d1"})
    assert ambiguous.status_code == 412 and ambiguous.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("body", "headers", "status"), [
    ({k: v for k, v in CAREPLAN.items() if k != "subject"}, {}, 400),  # not a valid FHIR R4 CarePlan
    ({**CAREPLAN, "period": {"start": "yesterday"}}, {}, 400),
    ({**CAREPLAN, "resourceType": "Patient"}, {}, 400),
    (CAREPLAN, {"If-None-Exist": "colour=blue"}, 400),  # a condition the endpoint cannot evaluate
    (CAREPLAN, {"If-None-Exist": "date=yesterday"}, 400),
])
def test_bad_writes_are_refused_with_an_operation_outcome(client, body, headers, status):
    response = client.post("/demo/fhir/CarePlan", json=body, headers=headers)
    assert response.status_code == status and response.get_json()["resourceType"] == "OperationOutcome"
    assert client.get("/demo/fhir/CarePlan").get_json()["total"] == 0


def test_writes_need_json_and_only_careplans_are_written(client):
    assert client.post("/demo/fhir/CarePlan", data="<CarePlan/>", content_type="application/xml").status_code == 415
    refused = client.put("/demo/fhir/CarePlan/x", json=CAREPLAN)
    assert refused.status_code == 405
    assert client.post("/demo/fhir/CarePlan", json=CAREPLAN).headers.get("Allow") is None
    assert client.delete("/demo/fhir/CarePlan").headers["Allow"] == "GET, POST"


def test_every_worker_sees_what_another_wrote(demo_dir, tmp_path):
    """Two apps on one database, as two gunicorn workers: a write on one is read on the other."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    one = create_app({"demo": True, "demo_dir": str(demo_dir), "database_url": url}).test_client()
    two = create_app({"demo": True, "demo_dir": str(demo_dir), "database_url": url}).test_client()
    created = one.post("/demo/fhir/CarePlan", json=CAREPLAN, headers=CONDITION).get_json()
    assert two.get(f"/demo/fhir/CarePlan/{created['id']}").status_code == 200
    assert two.post("/demo/fhir/CarePlan", json=CAREPLAN, headers=CONDITION).status_code == 200


# --- CORS for browsers on this machine ------------------------------------------------------------------

PREFLIGHT = {"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type, authorization"}


@pytest.mark.parametrize("path", ["/cds-services", "/cds-services/vcf-patient-view", "/demo/fhir/CarePlan",
                                  "/cds-services/vcf-patient-view/feedback"])
def test_demo_answers_cors_for_any_origin_from_loopback(client, path):
    preflight = client.options(path, headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    call = client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert call.headers["Access-Control-Allow-Origin"] == "*"


def test_no_cors_for_callers_on_the_network_or_other_paths_or_outside_demo(client):
    remote = client.options("/cds-services/vcf-patient-view", headers=PREFLIGHT,
                            environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert "Access-Control-Allow-Origin" not in remote.headers
    other = client.get("/api/v1/policies", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert "Access-Control-Allow-Origin" not in other.headers
    plain = create_app({"database_url": "sqlite://"}).test_client()
    assert "Access-Control-Allow-Origin" not in plain.options("/cds-services", headers=PREFLIGHT).headers


def test_a_configured_origin_keeps_its_own_answer(demo_dir):
    ehr = "https://ehr-ui.example.org"
    client = create_app({"demo": True, "demo_dir": str(demo_dir), "database_url": "sqlite://",
                         "cors_origins": (ehr,)}).test_client()
    response = client.get("/cds-services", headers={"Origin": ehr})
    assert response.headers["Access-Control-Allow-Origin"] == ehr
    assert response.headers.getlist("Access-Control-Allow-Origin") == [ehr]  # one answer, not two


def test_the_demo_keeps_a_bounded_number_of_written_resources(client, monkeypatch):
    from fhir_vcf.service import demo_fhir

    monkeypatch.setattr(demo_fhir, "MAX_WRITTEN", 2)
    plain = {k: v for k, v in CAREPLAN.items() if k != "identifier"}
    assert [client.post("/demo/fhir/CarePlan", json=plain).status_code for _ in range(3)] == [201, 201, 400]
    assert client.get("/demo/fhir/CarePlan").get_json()["total"] == 2

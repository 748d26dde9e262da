"""REST API (`/api/v1`) and operations endpoints, with the EHR's FHIR server mocked by `responses`."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from api_support import BASE, SAMPLES, TOKEN_URL, FakeFhirServer, make_app, sample_resources
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_vcf.errors import UpstreamError
from fhir_vcf.service import api
from fhir_vcf.service.registry import services
from fhir_vcf.sources.smart_backend import CLIENT_ASSERTION_TYPE, SmartBackendAuth
from fhir_vcf.version import __version__

AS_OF = "2025-06-30"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())
DECISIONS = {"eligible", "not-eligible", "needs-review", "insufficient-data"}

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1948-03-02"}
CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "subject": {"reference": "Patient/p1"},
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
    "onsetDateTime": "2025-06-02",
}


def fake_evaluation(record: Any, *, as_of: date, policy: Any) -> dict[str, Any]:
    """A stand-in for the clinical core where a test is about the transport, not the rules."""
    return {
        "patient": record.patient,
        "asOf": as_of.isoformat(),
        "policy": policy.id,
        "decision": "insufficient-data",
        "technique": "none",
        "levels": [],
        "criteria": [],
        "missing": ["an MRI"],
        "flags": [],
        "resourceCount": sum(len(v) for v in record.resources.values()),
        "carePlan": {
            "resourceType": "CarePlan",
            "id": "proposal",
            "status": "draft",
            "intent": "proposal",
            "subject": {"reference": record.patient},
        },
    }


@pytest.fixture
def fake_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_evaluate", fake_evaluation)


@pytest.fixture
def app(tmp_path: Path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ehr(tmp_path: Path):
    """An app wired to a fake FHIR server (static bearer token) holding patient p1."""
    server = FakeFhirServer([PATIENT, CONDITION])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server.install(rsps)
        app = make_app(tmp_path, fhir_base_url=BASE, fhir_token="static-token")
        yield app.test_client(), server, rsps


def assert_problem(response, status: int, type_suffix: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(body)
    if type_suffix:
        assert body["type"].endswith(type_suffix)
    return body


# --- POST /api/v1/evaluations ---------------------------------------------------------------------


def test_post_bundle_evaluates_each_patient_with_the_real_core(client) -> None:
    body = (SAMPLES / "two-patients.json").read_bytes()
    response = client.post(f"/api/v1/evaluations?asOf={AS_OF}", data=body, content_type="application/fhir+json")
    assert response.status_code == 200, response.get_data(as_text=True)
    evaluations = response.get_json()["evaluations"]
    expected = EXPECTED["two-patients.json"]
    assert {e["patient"] for e in evaluations} == set(expected)
    for evaluation in evaluations:
        assert evaluation["asOf"] == AS_OF
        assert evaluation["policy"] == "cms-lcd-pva"
        assert evaluation["decision"] == expected[evaluation["patient"]]["decision"]


def test_post_single_resource_and_plain_json(client, fake_core) -> None:
    response = client.post(f"/api/v1/evaluations?asOf={AS_OF}", json=PATIENT)
    assert response.status_code == 200
    (evaluation,) = response.get_json()["evaluations"]
    assert evaluation["patient"] == "Patient/p1"
    assert evaluation["asOf"] == AS_OF


def test_post_defaults_as_of_to_today_utc_and_takes_a_policy(client, fake_core) -> None:
    response = client.post("/api/v1/evaluations?policy=cms-lcd-pva", json=PATIENT)
    (evaluation,) = response.get_json()["evaluations"]
    assert evaluation["asOf"] == datetime.now(UTC).date().isoformat()
    assert evaluation["policy"] == "cms-lcd-pva"


def test_post_document_without_patient_data_gives_no_evaluations(client, fake_core) -> None:
    response = client.post("/api/v1/evaluations", json={"resourceType": "Practitioner", "id": "x"})
    assert response.status_code == 200
    assert response.get_json() == {"evaluations": []}


def test_unknown_policy_is_400(client, fake_core) -> None:
    body = assert_problem(client.post("/api/v1/evaluations?policy=acme", json=PATIENT), 400, "unknown-policy")
    assert "cms-lcd-pva" in body["detail"]
    assert body["invalidParams"][0]["name"] == "policy"


@pytest.mark.parametrize("as_of", ["2025-13-01", "20250630", "2025-06-30T00:00:00", "yesterday", "2025-6-3"])
def test_bad_as_of_is_400(client, fake_core, as_of: str) -> None:
    body = assert_problem(client.post(f"/api/v1/evaluations?asOf={as_of}", json=PATIENT), 400, "invalid-parameter")
    assert body["invalidParams"][0]["name"] == "asOf"


def test_invalid_json_is_400(client) -> None:
    response = client.post("/api/v1/evaluations", data=b'{"resourceType": ', content_type="application/fhir+json")
    body = assert_problem(response, 400, "invalid-input")
    assert "invalid JSON" in body["detail"]


def test_deeply_nested_json_is_400_not_500(client) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    response = client.post("/api/v1/evaluations", data=deep, content_type="application/fhir+json")
    body = assert_problem(response, 400, "invalid-input")
    assert "nested too deeply" in body["detail"]


@pytest.mark.parametrize("document", [[PATIENT], {"id": "x"}, "Patient", {"resourceType": 7}])
def test_not_fhir_is_400(client, document: Any) -> None:
    body = assert_problem(client.post("/api/v1/evaluations", json=document), 400, "invalid-input")
    assert "not a FHIR resource" in body["detail"]


def test_invalid_resource_names_resource_and_element(client) -> None:
    bad = dict(CONDITION, onsetDateTime="last spring")
    response = client.post("/api/v1/evaluations", json={"resourceType": "Bundle", "type": "collection",
                                                         "entry": [{"resource": PATIENT}, {"resource": bad}]})
    body = assert_problem(response, 400, "invalid-input")
    assert body["resource"] == "Condition/c1"
    assert body["element"] == "onsetDateTime"


def test_wrong_media_type_is_415(client) -> None:
    response = client.post("/api/v1/evaluations", data=json.dumps(PATIENT), content_type="text/plain")
    assert_problem(response, 415, "unsupported-media-type")
    assert_problem(client.post("/api/v1/evaluations", data=json.dumps(PATIENT)), 415)


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    client = make_app(tmp_path, max_body_bytes=1000).test_client()
    big = {"resourceType": "Patient", "id": "p1", "text": {"status": "generated", "div": "x" * 2000}}
    assert_problem(client.post("/api/v1/evaluations", json=big), 413, "body-too-large")


def test_a_core_failure_is_a_problem_without_traceback(client, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("secret patient detail")

    monkeypatch.setattr(api, "_evaluate", boom)
    body = assert_problem(client.post("/api/v1/evaluations", json=PATIENT), 500, "internal-error")
    assert "secret" not in json.dumps(body)


# --- GET /api/v1/patients/{id}/evaluation ---------------------------------------------------------


def test_patient_evaluation_reads_the_fhir_server(ehr, fake_core) -> None:
    client, server, _ = ehr
    response = client.get(f"/api/v1/patients/p1/evaluation?asOf={AS_OF}")
    assert response.status_code == 200, response.get_data(as_text=True)
    evaluation = response.get_json()
    assert evaluation["patient"] == "Patient/p1"
    assert evaluation["resourceCount"] == 2  # the Patient and its Condition
    assert server.calls["GET Patient/"] == 1
    for rtype in ("Condition", "Observation", "ImagingStudy", "ServiceRequest", "MedicationRequest"):
        assert server.calls[f"GET {rtype}?"] == 1
    assert all(h.get("Authorization") == "Bearer static-token" for h in server.headers)


def test_patient_evaluation_with_the_real_core(tmp_path: Path) -> None:
    resources = [
        r for r in sample_resources("eligible-outpatient-worsening.json") if r["resourceType"] != "Composition"
    ]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    server = FakeFhirServer(resources)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server.install(rsps)
        client = make_app(tmp_path, fhir_base_url=BASE).test_client()
        response = client.get(f"/api/v1/patients/{patient['id']}/evaluation?asOf={AS_OF}")
    assert response.status_code == 200, response.get_data(as_text=True)
    expected = EXPECTED["eligible-outpatient-worsening.json"][f"Patient/{patient['id']}"]
    assert response.get_json()["decision"] == expected["decision"]
    assert response.get_json()["levels"] == expected["levels"]


def test_unknown_patient_is_404(ehr, fake_core) -> None:
    client, _, _ = ehr
    body = assert_problem(client.get("/api/v1/patients/nobody/evaluation"), 404, "not-found")
    assert body["upstreamStatus"] == 404


def test_upstream_500_is_502_naming_the_status(ehr, fake_core) -> None:
    client, server, _ = ehr
    server.fail["Observation"] = 500
    body = assert_problem(client.get("/api/v1/patients/p1/evaluation"), 502, "upstream-error")
    assert body["upstreamStatus"] == 500
    assert "500" in body["detail"]


def test_a_search_404_is_502_not_patient_not_found(ehr, fake_core) -> None:
    client, server, _ = ehr
    server.fail["DeviceRequest"] = 404
    body = assert_problem(client.get("/api/v1/patients/p1/evaluation"), 502)
    assert body["upstreamStatus"] == 404


def test_upstream_timeout_is_504(ehr, fake_core) -> None:
    client, server, _ = ehr
    server.fail["Patient"] = requests.exceptions.ReadTimeout("slow")
    assert_problem(client.get("/api/v1/patients/p1/evaluation"), 504, "upstream-timeout")


def test_upstream_invalid_resource_is_502_naming_it(ehr, fake_core) -> None:
    client, server, _ = ehr
    server.resources.append(dict(CONDITION, id="c2", onsetDateTime="soon"))
    body = assert_problem(client.get("/api/v1/patients/p1/evaluation"), 502)
    assert body["element"] == "onsetDateTime"
    assert body["resource"].startswith("Condition/c2")


def test_no_fhir_server_configured_is_503(client, fake_core) -> None:
    assert_problem(client.get("/api/v1/patients/p1/evaluation"), 503, "fhir-server-not-configured")
    assert_problem(client.post("/api/v1/patients/p1/careplans"), 503, "fhir-server-not-configured")


@pytest.mark.parametrize("bad_id", ["a" * 65, "a%20b", "a_b", "a%2Fb", "%C3%A9"])
def test_invalid_patient_id_is_400_before_any_call(ehr, fake_core, bad_id: str) -> None:
    client, server, _ = ehr
    body = assert_problem(client.get(f"/api/v1/patients/{bad_id}/evaluation"), 400, "invalid-parameter")
    assert body["invalidParams"][0]["name"] == "id"
    assert not server.calls


# --- SMART Backend Services -----------------------------------------------------------------------


def _rsa_key(tmp_path: Path) -> tuple[Path, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "smart.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path, key.public_key()


def test_smart_token_is_fetched_once_and_cached_across_requests(tmp_path: Path, fake_core) -> None:
    key_path, public_key = _rsa_key(tmp_path)
    server = FakeFhirServer([PATIENT, CONDITION])
    forms: list[dict[str, list[str]]] = []

    def token_endpoint(request):
        forms.append(parse_qs(request.body))
        return 200, {}, json.dumps({"access_token": "smart-access", "token_type": "bearer", "expires_in": 300})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server.install(rsps)
        rsps.add_callback(responses.POST, TOKEN_URL, callback=token_endpoint)
        app = make_app(tmp_path, fhir_base_url=BASE, smart_client_id="fhir-vcf", smart_token_url=TOKEN_URL,
                       smart_private_key=str(key_path), smart_key_id="k1", smart_scope="system/*.read")
        client = app.test_client()
        assert client.get("/api/v1/patients/p1/evaluation").status_code == 200
        assert client.get("/api/v1/patients/p1/evaluation").status_code == 200

    assert len(forms) == 1
    form = {k: v[0] for k, v in forms[0].items()}
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "system/*.read"
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    header = jwt.get_unverified_header(form["client_assertion"])
    assert header["alg"] == "RS384" and header["kid"] == "k1"
    claims = jwt.decode(form["client_assertion"], public_key, algorithms=["RS384"], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "fhir-vcf"
    assert 0 < claims["exp"] - time.time() <= 300
    assert claims["jti"]
    assert all(h.get("Authorization") == "Bearer smart-access" for h in server.headers)


def test_fhir_401_drops_the_cached_smart_token(tmp_path: Path, fake_core) -> None:
    key_path, _ = _rsa_key(tmp_path)
    server = FakeFhirServer([PATIENT])
    issued: list[str] = []

    def token_endpoint(request):
        issued.append(f"token-{len(issued) + 1}")
        return 200, {}, json.dumps({"access_token": issued[-1], "expires_in": 3600})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server.install(rsps)
        rsps.add_callback(responses.POST, TOKEN_URL, callback=token_endpoint)
        client = make_app(tmp_path, fhir_base_url=BASE, smart_client_id="fhir-vcf", smart_token_url=TOKEN_URL,
                          smart_private_key=str(key_path)).test_client()
        server.fail["Patient"] = 401  # e.g. the server revoked the token
        assert_problem(client.get("/api/v1/patients/p1/evaluation"), 502)
        del server.fail["Patient"]
        assert client.get("/api/v1/patients/p1/evaluation").status_code == 200
    assert issued == ["token-1", "token-2"]
    assert server.headers[-1]["Authorization"] == "Bearer token-2"


def test_smart_token_is_refreshed_before_expiry_and_assertions_are_unique() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = [1_000_000.0]
    assertions: list[str] = []

    def token_endpoint(request):
        assertions.append(parse_qs(request.body)["client_assertion"][0])
        return 200, {}, json.dumps({"access_token": f"t{len(assertions)}", "expires_in": 300})

    auth = SmartBackendAuth(client_id="c", token_url=TOKEN_URL, private_key=pem, scope="system/*.read",
                            algorithm="ES384", clock=lambda: now[0])
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, TOKEN_URL, callback=token_endpoint)
        assert auth() == "t1"
        now[0] += 200  # well inside the lifetime
        assert auth() == "t1"
        now[0] += 45  # within the refresh margin of the 300 s token
        assert auth() == "t2"
    first, second = (
        jwt.decode(a, key.public_key(), algorithms=["ES384"], audience=TOKEN_URL, options={"verify_exp": False})
        for a in assertions
    )
    assert first["jti"] != second["jti"]
    assert first["exp"] - first["iat"] <= 300


def test_smart_token_endpoint_failure_is_502(tmp_path: Path, fake_core) -> None:
    key_path, _ = _rsa_key(tmp_path)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeFhirServer([PATIENT]).install(rsps)
        rsps.add(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})
        app = make_app(tmp_path, fhir_base_url=BASE, smart_client_id="fhir-vcf", smart_token_url=TOKEN_URL,
                       smart_private_key=str(key_path))
        body = assert_problem(app.test_client().get("/api/v1/patients/p1/evaluation"), 502)
    assert body["upstreamStatus"] == 401


def test_smart_rejects_symmetric_algorithms() -> None:
    from fhir_vcf.errors import ConfigError

    with pytest.raises(ConfigError):
        SmartBackendAuth(client_id="c", token_url=TOKEN_URL, private_key=b"k", scope="s", algorithm="HS256")


def test_smart_token_timeout_is_an_upstream_timeout() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    auth = SmartBackendAuth(client_id="c", token_url=TOKEN_URL, private_key=pem, scope="s", algorithm="ES384")
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TOKEN_URL, body=requests.exceptions.ConnectTimeout())
        with pytest.raises(UpstreamError) as caught:
            auth()
    assert caught.value.timeout


# --- POST /api/v1/patients/{id}/careplans ---------------------------------------------------------


def test_careplan_conditional_create_201_then_200_without_duplicate(ehr, fake_core) -> None:
    client, server, _ = ehr
    first = client.post(f"/api/v1/patients/p1/careplans?asOf={AS_OF}")
    assert first.status_code == 201, first.get_data(as_text=True)
    assert first.headers["Location"] == f"{BASE}/CarePlan/cp-1/_history/1"
    body = first.get_json()
    assert body["created"] is True
    assert body["carePlan"]["id"] == "cp-1"
    assert body["evaluation"]["patient"] == "Patient/p1"

    retry = client.post(f"/api/v1/patients/p1/careplans?asOf={AS_OF}")
    assert retry.status_code == 200
    assert retry.get_json()["created"] is False
    assert retry.get_json()["carePlan"]["id"] == "cp-1"
    assert len(server.created) == 1  # the retry found the first CarePlan

    other_day = client.post("/api/v1/patients/p1/careplans?asOf=2025-07-01")
    assert other_day.status_code == 201  # a different as-of date is a different proposal
    assert len(server.created) == 2


def test_careplan_write_sends_if_none_exist_and_no_id(ehr, fake_core) -> None:
    client, server, _ = ehr
    client.post(f"/api/v1/patients/p1/careplans?asOf={AS_OF}")
    post_headers = server.headers[-1]
    system, value = api.careplan_identifier({}, patient="Patient/p1", policy_id="cms-lcd-pva",
                                            as_of=date.fromisoformat(AS_OF))
    assert post_headers["If-None-Exist"] == f"identifier={system}|{value}"
    assert post_headers["Authorization"] == "Bearer static-token"
    created = server.created[0]
    assert created["id"] == "cp-1"  # assigned by the server, not the proposal's "proposal"
    assert {"system": system, "value": value} in created["identifier"]


def test_careplan_keeps_the_rules_identifier(ehr, monkeypatch: pytest.MonkeyPatch) -> None:
    client, server, _ = ehr

    def with_identifier(record: Any, *, as_of: date, policy: Any) -> dict[str, Any]:
        evaluation = fake_evaluation(record, as_of=as_of, policy=policy)
        evaluation["carePlan"]["identifier"] = [{"system": "https://rules.example/cp", "value": "abc"}]
        return evaluation

    monkeypatch.setattr(api, "_evaluate", with_identifier)
    assert client.post("/api/v1/patients/p1/careplans").status_code == 201
    assert server.headers[-1]["If-None-Exist"] == "identifier=https://rules.example/cp|abc"


def test_careplan_identifier_is_deterministic() -> None:
    as_of = date(2025, 6, 30)
    one = api.careplan_identifier({}, patient="Patient/p1", policy_id="cms-lcd-pva", as_of=as_of)
    assert one == api.careplan_identifier({}, patient="Patient/p1", policy_id="cms-lcd-pva", as_of=as_of)
    assert one != api.careplan_identifier({}, patient="Patient/p2", policy_id="cms-lcd-pva", as_of=as_of)
    assert one != api.careplan_identifier({}, patient="Patient/p1", policy_id="other", as_of=as_of)


def test_no_careplan_proposed_is_409(ehr, monkeypatch: pytest.MonkeyPatch) -> None:
    client, server, _ = ehr

    def without(record: Any, *, as_of: date, policy: Any) -> dict[str, Any]:
        return dict(fake_evaluation(record, as_of=as_of, policy=policy), carePlan=None, decision="not-eligible")

    monkeypatch.setattr(api, "_evaluate", without)
    body = assert_problem(client.post("/api/v1/patients/p1/careplans"), 409, "no-careplan")
    assert body["decision"] == "not-eligible"
    assert server.calls["POST CarePlan"] == 0


def test_careplan_write_failure_is_502(ehr, fake_core) -> None:
    client, server, _ = ehr
    server.fail["CarePlan"] = 412  # e.g. several CarePlans match the identifier
    body = assert_problem(client.post("/api/v1/patients/p1/careplans"), 502)
    assert body["upstreamStatus"] == 412


def test_careplan_for_unknown_patient_is_404_and_writes_nothing(ehr, fake_core) -> None:
    client, server, _ = ehr
    assert_problem(client.post("/api/v1/patients/nobody/careplans"), 404)
    assert server.calls["POST CarePlan"] == 0


# --- policies -------------------------------------------------------------------------------------


def test_policies_list_and_read(client, app) -> None:
    listing = client.get("/api/v1/policies")
    assert listing.status_code == 200
    body = listing.get_json()
    assert body["default"] == "cms-lcd-pva"
    with app.app_context():
        loaded = services().policies
    assert [p["id"] for p in body["policies"]] == sorted(loaded)
    one = client.get("/api/v1/policies/cms-lcd-pva")
    assert one.status_code == 200
    with app.app_context():
        assert one.get_json() == json.loads(json.dumps(loaded["cms-lcd-pva"].to_dict()))


def test_unknown_policy_read_is_404(client) -> None:
    assert_problem(client.get("/api/v1/policies/acme"), 404, "not-found")


# --- operations -----------------------------------------------------------------------------------


def test_healthz(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "version": __version__}


def test_readyz_ok(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["policies"] == "ok"
    assert body["checks"]["database"] in {"ok", "not-configured"}


class _Store:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def ping(self) -> bool:
        if self.fail:
            raise OSError("database is down")
        return True


def test_readyz_503_names_the_database(app, client, monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        monkeypatch.setattr(services(), "store", _Store(fail=True), raising=False)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["database"]
    assert body["checks"] == {"database": "failed", "policies": "ok"}


def test_readyz_503_without_policies(app, client, monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        monkeypatch.setattr(services(), "store", _Store(fail=False), raising=False)
        monkeypatch.setattr(services(), "policies", {})
    body = client.get("/readyz").get_json()
    assert body["failed"] == ["policies"]
    assert body["checks"]["database"] == "ok"


def test_metrics_label_by_url_rule_and_count_decisions(client, fake_core) -> None:
    client.post("/api/v1/evaluations?policy=cms-lcd-pva", json=PATIENT)
    client.get("/api/v1/patients/some-patient-id/evaluation")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'fhir_vcf_http_requests_total{endpoint="/api/v1/evaluations",method="POST",status="200"}' in text
    assert 'endpoint="/api/v1/patients/<path:patient_id>/evaluation"' in text
    assert "some-patient-id" not in text  # raw paths never become labels
    assert 'fhir_vcf_decisions_total{decision="insufficient-data",policy="cms-lcd-pva"}' in text
    assert "fhir_vcf_http_request_duration_seconds_bucket" in text


def test_openapi_document_is_served_from_the_repository_file(client) -> None:
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.data == (Path(__file__).resolve().parent.parent / "openapi.yaml").read_bytes()

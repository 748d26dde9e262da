"""Issue 10: bad input never reaches a 500, every call leaves its audit row, and a database that is down,
locked or hung is a 503 with Retry-After (never a 401, never a hang).

The clinical core is the real one except where a test says otherwise; each test names its attack.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from cards import hook_request
from db_support import database_fixture  # noqa: F401 (the `database` fixture)
from fake_fhir import BlackHole, FreezableProxy
from trust_support import ISSUER, bearer, ec_key, issuers_file, jwks, mint

from fhir_vcf.app import create_app
from fhir_vcf.config import Settings
from fhir_vcf.service.cds_hooks import SERVICES
from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES
from fhir_vcf.store import Store, StoreError, audit, create_store_engine

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PATIENT_VIEW = "/cds-services/vcf-patient-view"
FEEDBACK = "/cds-services/vcf-patient-view/feedback"


def make_app(tmp_path: Path, **overrides):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'hostile.db'}", **overrides)
    app = create_app(settings)
    return app


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    return app.test_client()


def full_prefetch(patient="p1"):
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset"} for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": patient}
    return prefetch


def audit_rows(app) -> list[dict]:
    store = app.extensions["fhir_vcf"].store
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(audit).order_by(audit.c.id))]


def raw(body: dict) -> str:
    return json.dumps(body)


# --- no 500, and the audit row written whatever the input -----------------------------------------------


def _with(body: dict, path: list, value) -> str:
    """The request as JSON text with `value` (raw JSON text) at `path`."""
    marker = "__VALUE__"
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = marker
    return json.dumps(body).replace(f'"{marker}"', value)


HOSTILE = {
    "lone surrogate in patientId": (["context", "patientId"], '"p\\ud800"'),
    "NUL in patientId": (["context", "patientId"], '"p\\u0000"'),
    "5000-digit number": (["context", "encounterId"], "9" * 5000),
    "float overflowing to infinity": (["context", "encounterId"], "1e999"),
    "NaN": (["context", "encounterId"], "NaN"),
    "non-list draftOrders.entry": (["context", "draftOrders"], '{"resourceType": "Bundle", "entry": 5}'),
    "draftOrders.entry of strings": (["context", "draftOrders"], '{"resourceType": "Bundle", "entry": ["x"]}'),
    "prefetch not an object": (["prefetch"], "[1, 2]"),
    "prefetch key a number": (["prefetch", "conditions"], "12"),
    "patientId a number": (["context", "patientId"], "12"),
    "patientId with a slash": (["context", "patientId"], '"../../Patient/p2"'),
    "hookInstance not a UUID": (["hookInstance"], '"not-a-uuid"'),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_hostile_hook_bodies_are_4xx_and_audited(app, client, attack):
    path, value = HOSTILE[attack]
    hook = "order-sign" if path[:2] == ["context", "draftOrders"] else "patient-view"
    body = hook_request(hook, prefetch=full_prefetch())
    if hook == "order-sign":
        body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection"}
    before = len(audit_rows(app))
    service = next(s.id for s in SERVICES.values() if s.hook == hook)
    response = client.post(f"/cds-services/{service}", data=_with(body, path, value), content_type="application/json")
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert response.json["resourceType"] == "OperationOutcome"
    rows = audit_rows(app)
    assert len(rows) == before + 1 and rows[-1]["status"] == response.status_code  # no audit evasion


def test_an_answered_call_is_audited_with_its_cards(app, client):
    response = client.post(PATIENT_VIEW, json=hook_request(prefetch=full_prefetch()))
    assert response.status_code == 200
    (row,) = audit_rows(app)
    assert row["status"] == 200 and row["patient_hash"] and row["hook_instance"]


def test_a_lone_surrogate_still_hashes_for_the_audit(app):
    store = app.extensions["fhir_vcf"].store
    audit_id = store.record_call(hook="patient-view", service_id="x", patient="Patient/p\ud800", status=400)
    assert store.audit_row(audit_id)["patient_hash"] == store.patient_hash("p\ud800")


@pytest.mark.parametrize("value", ['"card\\u0000"', '"\\udc00"', "9" * 5000])
def test_hostile_feedback_is_a_400_not_a_retry_later(client, value):
    """NUL in feedback gave PostgreSQL's error as a 503 "retry later" for a permanent error."""
    item = {"card": "0c3b8a4e-1111-4aaa-8bbb-222222222222", "outcome": "overridden",
            "overrideReason": {"reason": {"code": "x", "display": "__VALUE__"}},
            "outcomeTimestamp": "2025-06-30T10:00:00Z"}
    body = json.dumps({"feedback": [item]}).replace('"__VALUE__"', value)
    response = client.post(FEEDBACK, data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)


@pytest.mark.parametrize("as_of", ["0001-01-01", "1899-12-31", "9999-12-31"])
def test_extreme_as_of_dates_are_a_400(client, as_of):
    body = (SAMPLES / "eligible-outpatient-worsening.json").read_text()
    response = client.post(f"/api/v1/evaluations?asOf={as_of}", data=body, content_type="application/json")
    assert response.status_code == 400 and response.json["invalidParams"][0]["name"] == "asOf"


def test_extreme_as_of_in_a_demo_hook_is_a_400(tmp_path):
    client = make_app(tmp_path, demo=True).test_client()
    body = hook_request(prefetch=full_prefetch())
    body["extension"] = {"fhir-vcf": {"asOf": "0001-01-01"}}
    assert client.post(PATIENT_VIEW, json=body).status_code == 400


def test_extreme_dates_inside_the_record_evaluate(client):
    document = json.loads((SAMPLES / "eligible-outpatient-worsening.json").read_text())
    for entry in document["entry"]:
        resource = entry["resource"]
        for element in ("onsetDateTime", "effectiveDateTime", "recordedDate", "authoredOn"):
            if element in resource:
                resource[element] = "0001-01-01"
    response = client.post("/api/v1/evaluations?asOf=2025-06-30", json=document)
    assert response.status_code == 200


@pytest.mark.parametrize("number", ["9" * 5000, "1e999", "-1e999"])
def test_huge_numbers_in_a_posted_bundle_are_a_400(client, number):
    body = ('{"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"}, '
            f'"valueInteger": {number}}}')
    response = client.post("/api/v1/evaluations", data=body, content_type="application/json")
    assert response.status_code == 400 and "number" in response.json["detail"]


def test_too_many_patients_in_one_request_is_a_413(tmp_path):
    """One unauthenticated request with 60,000 patients held a thread for a minute."""
    client = make_app(tmp_path, max_patients_per_request=50).test_client()
    patients = [{"resource": {"resourceType": "Patient", "id": f"p{i}"}} for i in range(60_000)]
    started = time.monotonic()
    response = client.post("/api/v1/evaluations", json={"resourceType": "Bundle", "type": "collection",
                                                        "entry": patients})
    assert response.status_code == 413 and response.json["limit"] == 50
    assert time.monotonic() - started < 5
    observations = [{"resource": {"resourceType": "Observation", "id": f"o{i}", "status": "final",
                                  "code": {"text": "x"}, "subject": {"reference": f"Patient/q{i}"}}}
                    for i in range(51)]
    response = client.post("/api/v1/evaluations", json={"resourceType": "Bundle", "type": "collection",
                                                        "entry": observations})
    assert response.status_code == 413


# --- the database: down, locked, hung -------------------------------------------------------------------


def lock(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_locked_sqlite_database_is_a_503_with_retry_after(tmp_path):
    app = make_app(tmp_path, database_statement_timeout=0.3)
    client = app.test_client()
    holder = lock(tmp_path / "hostile.db")
    try:
        started = time.monotonic()
        hooked = client.post(PATIENT_VIEW, json=hook_request(prefetch=full_prefetch()))
        fed = client.post(FEEDBACK, json={"feedback": [{"card": "0c3b8a4e-1111-4aaa-8bbb-222222222222",
                                                        "outcome": "overridden",
                                                        "outcomeTimestamp": "2025-06-30T10:00:00Z"}]})
        assert time.monotonic() - started < 3
    finally:
        holder.close()
    for response in (hooked, fed):
        assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
        assert response.json["issue"][0]["code"] == "transient"
    assert "cards" not in hooked.json  # no card leaves without its audit row


def test_a_database_that_is_down_makes_readyz_503(app, client):
    store = app.extensions["fhir_vcf"].store
    store.engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")  # nothing listens on 1
    response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_the_jti_cache_database_down_is_a_503_not_a_401(tmp_path):
    """A database that is down turned every hook into a 401: the EHR would think its key was wrong."""
    key = ec_key()
    app = make_app(tmp_path, trusted_issuers=issuers_file(tmp_path, {ISSUER: {"jwks": jwks(key)}}),
                   jti_cache="database", public_base_url="http://localhost")
    store = app.extensions["fhir_vcf"].store
    store.engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    response = app.test_client().post(PATIENT_VIEW, json=hook_request(prefetch=full_prefetch()),
                                      headers=bearer(mint(key, f"http://localhost{PATIENT_VIEW}")))
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_a_database_that_accepts_and_never_answers_times_out(app, client):
    """A hung database hung /readyz, hooks and feedback: connect and statement timeouts bound it."""
    hole = BlackHole()
    try:
        store = app.extensions["fhir_vcf"].store
        store.engine = create_store_engine(f"postgresql://postgres@127.0.0.1:{hole.port}/test",
                                           connect_timeout=1, statement_timeout=1)
        store._postgres = True
        calls = (("get", "/readyz", None), ("post", PATIENT_VIEW, hook_request(prefetch=full_prefetch())),
                 ("post", FEEDBACK, {"feedback": []}))
        for method, path, body in calls:
            started = time.monotonic()
            response = getattr(client, method)(path, json=body)
            assert response.status_code == 503 and response.headers["Retry-After"], path
            assert time.monotonic() - started < 5, path  # libpq waits at least 2 s to connect
        started = time.monotonic()
        with pytest.raises(StoreError):  # and at start-up: a clear error, not a hang
            Store(f"postgresql://postgres@127.0.0.1:{hole.port}/test", connect_timeout=1, statement_timeout=1)
        assert time.monotonic() - started < 10  # three migration attempts of 2 s
    finally:
        hole.close()


def test_a_postgres_server_that_stops_answering_mid_connection_is_cut_off(database):
    """The pooled connection's server goes silent (a frozen proxy): the watchdog shuts the socket down."""
    if database.kind != "postgresql":
        pytest.skip("a SQLite file does not stop answering; its lock case is test_a_locked_sqlite_database...")
    proxy = FreezableProxy(5432)
    try:
        url = database.url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        store = Store(url, connect_timeout=1, statement_timeout=0.5)
        assert store.ping()
        proxy.freeze()
        time.sleep(0.3)  # every pump has seen it: the pool's pre-ping of the checkout meets the silence
        started = time.monotonic()
        assert store.ping() is False
        with pytest.raises(StoreError):
            store.record_call(hook="patient-view", service_id="x", status=200)
        assert time.monotonic() - started < 8
        proxy.thaw()
        store.dispose()
    finally:
        proxy.close()

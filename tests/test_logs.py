"""Structured JSON logs: one object per line, a request id everywhere, nothing secret or identifying."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from flask import Flask, jsonify, request

from fhir_vcf.logs import REQUEST_ID_HEADER, annotate, gunicorn_logconfig, init_logging, patient_hash, redact

JWT = "eyJhbGciOiJFUzM4NCIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2VociJ9.c2lnbmF0dXJlLXBhcnQ"
log = logging.getLogger("fhir_vcf.test_logs")


@pytest.fixture
def app():
    app = Flask("logs-test")

    @app.get("/api/v1/patients/<pid>/evaluation")
    def evaluation(pid):
        log.info("evaluating %s with Authorization: Bearer %s", f"Patient/{pid}", JWT)
        annotate(decision="eligible", patient=f"Patient/{pid}")  # what the API views do: no body re-read
        return jsonify({"patient": f"Patient/{pid}", "decision": "eligible"})

    @app.post("/cds-services/<sid>")
    def hook(sid):
        annotate(decision="needs-review", hook=request.json["hook"],
                 patient=f"Patient/{request.json['context']['patientId']}")
        log.warning("headers were %s", dict(request.headers))
        return jsonify({"cards": []})

    @app.get("/boom")
    def boom():
        raise RuntimeError("token=abc123 for Patient/p-secret")

    init_logging(app, SimpleNamespace(log_level="INFO"))
    return app


def lines(capsys) -> list[dict]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_every_line_is_json_with_the_request_id(app, capsys):
    response = app.test_client().get("/api/v1/patients/p-123/evaluation")
    rid = response.headers[REQUEST_ID_HEADER]
    records = lines(capsys)
    assert len(records) == 2
    for record in records:
        assert {"time", "level", "logger", "message", "request_id"} <= set(record)
        assert record["request_id"] == rid
    done = records[-1]
    assert done["logger"] == "fhir_vcf.request" and done["status"] == 200
    assert done["endpoint"] == "/api/v1/patients/<pid>/evaluation" and done["method"] == "GET"
    assert done["decision"] == "eligible" and isinstance(done["duration_ms"], float)


def test_incoming_request_id_is_kept_and_echoed(app, capsys):
    response = app.test_client().get("/api/v1/patients/p-1/evaluation", headers={REQUEST_ID_HEADER: "ehr-42.a"})
    assert response.headers[REQUEST_ID_HEADER] == "ehr-42.a"
    assert {r["request_id"] for r in lines(capsys)} == {"ehr-42.a"}


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "semi;colon", "<script>"])
def test_malformed_request_id_is_replaced(app, capsys, bad):
    response = app.test_client().get("/api/v1/patients/p-1/evaluation", headers={REQUEST_ID_HEADER: bad})
    assert response.headers[REQUEST_ID_HEADER] != bad
    assert len(response.headers[REQUEST_ID_HEADER]) == 32


def test_tokens_jwts_and_patient_ids_never_reach_the_log(app, capsys):
    client = app.test_client()
    client.get("/api/v1/patients/p-123/evaluation", headers={"Authorization": f"Bearer {JWT}"})
    client.post("/cds-services/vcf-patient-view", json={"hook": "patient-view", "context": {"patientId": "p-777"}},
                headers={"Authorization": f"Bearer {JWT}"})
    records = lines(capsys)
    text = json.dumps(records)
    assert "eyJ" not in text and "c2lnbmF0dXJl" not in text
    assert "p-123" not in text and "p-777" not in text
    assert patient_hash("Patient/p-123") in text
    hook_line = records[-1]
    assert hook_line["decision"] == "needs-review" and hook_line["hook"] == "patient-view"
    assert hook_line["service"] == "vcf-patient-view" and hook_line["patient_hash"] == patient_hash("p-777")


def test_exceptions_are_logged_redacted(app, capsys):
    app.testing = False
    assert app.test_client().get("/boom").status_code == 500
    text = "\n".join(json.dumps(r) for r in lines(capsys))
    assert "RuntimeError" in text and "abc123" not in text and "p-secret" not in text


def test_redact():
    assert redact(f"Authorization: Bearer {JWT}") == "Authorization: Bearer [REDACTED]"
    assert redact("authorization=Basic dXNlcjpwYXNz") == "authorization=Basic [REDACTED]"
    assert "tok-1" not in redact('{"access_token": "tok-1", "token_type": "Bearer"}')
    assert redact(f"jwt {JWT} end") == "jwt [REDACTED] end"
    assert "Smith" not in redact('{"name": [{"family": "Smith", "given": ["Ann"]}]}')
    assert redact("GET /api/v1/patients/p-9/evaluation") == f"GET /api/v1/patients/{patient_hash('p-9')}/evaluation"
    # urllib3's retry warnings log the FHIR search URL: its patient parameter is an identifier too.
    retry = redact("Retrying ... /fhir/Encounter?patient=p-tanaka&_count=100 and Observation?subject=Patient%2Fp-9")
    assert "p-tanaka" not in retry and "p-9" not in retry
    assert f"?patient={patient_hash('p-tanaka')}&_count=100" in retry
    assert redact("auth: no bearer token") == "auth: no bearer token"
    assert redact("store: postgresql://fv:s3cret@db/fv ready") == "store: postgresql://fv:[REDACTED]@db/fv ready"
    assert patient_hash("Patient/p-9") == patient_hash("p-9") and len(patient_hash("x")) == 13


# Pieces of what each redaction pattern reads, joined at random into lines for the pre-check test.
_PIECES = ("eyJ", "a.b", ".", "-", "_", "Bearer ", "basic\t", "token", "Authorization", ": ", "=", '"', "'",
           "access_token", "API-key", "client_secret", "postgresql://", "u:", "@", "db", '"family"', '"given"',
           " [", "]", "/explanations/", "Patient/", "Patient%2F", "patients/", "patient_id", "PatientId", "?patient=",
           "&subject=", ":exact", "p-9", "#1a2b", " ", "\n", "é", "%", "?", "&", "eyj", "EYJ", "x.y.z",
           "Patient", "patients", "ce78d81d-56c9-4a70-ba03-5aa9c7a47d4d", "POST /cds-services/<service_id> 200",
           "order-select")


def test_the_pre_check_finds_every_line_a_redaction_pattern_changes():
    """`redact` returns a line untouched when one combined search finds nothing (`_MAY_REDACT`): it must
    find a match wherever any of the eleven patterns does, so that skipping them changes nothing."""
    import random

    from fhir_vcf import logs

    patterns = [pattern for pattern, _ in logs._SECRET_PATTERNS] + list(logs._PATIENT_PATTERNS)

    def every_substitution(text: str) -> str:
        for pattern, replacement in logs._SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        for pattern in logs._PATIENT_PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + patient_hash(m.group(2)), text)
        return text

    chooser = random.Random(11)
    lines_ = ["", f"Authorization: Bearer {JWT}", "store: postgresql://fv:s3cret@db/fv ready",
              '{"name": [{"family": "Smith"}]}', "/explanations/tok", "Observation?subject=Patient%2Fp-9"]
    lines_ += ["".join(chooser.choice(_PIECES) for _ in range(chooser.randint(1, 8))) for _ in range(20_000)]
    matched = set()
    for line in lines_:
        found = [i for i, pattern in enumerate(patterns) if pattern.search(line)]
        matched.update(found)
        assert bool(logs._MAY_REDACT.search(line)) == bool(found), line
        assert redact(line) == every_substitution(line), line
    assert matched == set(range(len(patterns)))  # every pattern was exercised
    # What `redact` remembered (lines repeat above, so their second reading came from it): only texts
    # the search finds nothing in.
    assert logs._CLEAN_TEXTS and not any(logs._MAY_REDACT.search(text) for text in logs._CLEAN_TEXTS)


def test_only_texts_with_nothing_to_redact_are_remembered_and_the_memory_is_bounded():
    from fhir_vcf import logs

    secret = f"Authorization: Bearer {JWT}"
    for _ in range(2):  # the second time from memory, where there is one
        assert redact(secret) == "Authorization: Bearer [REDACTED]"
        assert redact("order-select") == "order-select"
    assert "order-select" in logs._CLEAN_TEXTS and secret not in logs._CLEAN_TEXTS
    assert not any(JWT in text for text in logs._CLEAN_TEXTS)
    long_text = "x" * (logs._CLEAN_TEXT_LENGTH + 1)
    assert redact(long_text) == long_text and long_text not in logs._CLEAN_TEXTS
    for i in range(logs._CLEAN_TEXTS_LIMIT + 10):
        redact(f"line {i}")
    assert 0 < len(logs._CLEAN_TEXTS) <= logs._CLEAN_TEXTS_LIMIT


def test_every_extra_is_printed_redacted_never_dropped(capsys):
    """Issue 13.10: a field passed to the logger shows up; its value is redacted, and a field named
    like a secret or a name part shows only [REDACTED]."""
    from fhir_vcf.logs import configure_root

    configure_root("INFO")
    log.info("hello", extra={"status": 201, "family": "Smith", "patient": "Patient/p-5", "hookInstance": "h-1",
                             "cards": 2, "access_token": "tok-9", "where": "Patient/p-6 at ?patient=p_7"})
    (record,) = lines(capsys)
    text = json.dumps(record)
    assert record["status"] == 201 and record["hookInstance"] == "h-1" and record["cards"] == 2
    assert record["family"] == "[REDACTED]" and record["access_token"] == "[REDACTED]"
    assert "Smith" not in text and "tok-9" not in text
    assert record["patient_hash"] == patient_hash("p-5") and "p-5" not in text
    assert "p-6" not in text and "p_7" not in text and patient_hash("p_7") in record["where"]


def test_patient_hashes_are_keyed():
    """An unsalted SHA-256 of an id can be reversed by hashing known ids; the keyed hash cannot."""
    import hashlib

    from fhir_vcf import logs

    before = patient_hash("p-1")
    assert before[1:] != hashlib.sha256(b"p-1").hexdigest()[:12]
    assert before[1:] != hashlib.sha256(b"Patient/p-1").hexdigest()[:12]
    old = logs._patient_key
    try:
        logs.set_patient_key(b"k" * 32)
        assert patient_hash("p-1") != before
        assert patient_hash("p-1")[1:] == logs.keyed_patient_hash(b"k" * 32, "Patient/p-1")[:12]
        assert patient_hash("\ud800") == patient_hash("Patient/\ud800")  # a lone surrogate hashes too
    finally:
        logs.set_patient_key(old)


def test_a_patient_hash_from_the_prepared_key_is_the_plain_hmac():
    """`keyed_patient_hash` copies an HMAC keyed once (`_keyed_mac`): every hash, of any key, in any
    order and from many threads at once, is the plain HMAC of that key and reference."""
    import hashlib
    import hmac
    import threading

    from fhir_vcf import logs

    values = ["p-1", "Patient/p-1", " 123 ", "\ud800", "é" * 300, "", "x/Patient/y"]
    keys = [b"k" * 32, b"", b"s" * 200, b"k" * 32]

    def plain(key: bytes, value: str) -> str:
        message = logs.patient_reference(value).encode("utf-8", "surrogatepass")
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    for _ in range(2):
        for key in keys:
            for value in values:
                assert logs.keyed_patient_hash(key, value) == plain(key, value), (key, value)
    wrong: list[tuple[bytes, str]] = []

    def hash_many() -> None:
        for i in range(300):
            key, value = keys[i % len(keys)], values[i % len(values)]
            if logs.keyed_patient_hash(key, value) != plain(key, value):
                wrong.append((key, value))

    threads = [threading.Thread(target=hash_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


@pytest.mark.parametrize("pid", ["p_secret_1", "p%20secret", "p:secret", "p~secret!x", "P@secret"])
def test_redaction_covers_every_id_character(pid):
    """A patient id runs to the next delimiter, whatever it holds (urllib3 DEBUG lines leaked the part
    after a `_`)."""
    lines_ = [f'"GET /fhir/Condition?patient={pid}&_count=100 HTTP/1.1" 200 512',
              f"send: b'GET /fhir/Patient/{pid} HTTP/1.1'", f"patientId={pid}", f"/api/v1/patients/{pid}/x",
              f"Observation?subject=Patient%2F{pid}"]
    for line in lines_:
        out = redact(line)
        assert "secret" not in out, (line, out)


def test_traceparent_is_accepted_logged_and_propagated(app, capsys):
    from fhir_vcf.logs import trace_headers

    seen = {}

    @app.get("/trace")
    def trace():
        seen.update(trace_headers())
        log.info("inside")
        return jsonify({})

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    app.test_client().get("/trace", headers={"traceparent": parent, "tracestate": "ehr=abc"})
    records = lines(capsys)
    assert {r.get("trace_id") for r in records} == {"0af7651916cd43dd8448eb211c80319c"}
    version, trace_id, span, flags = seen["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert span != "b7ad6b7169203331" and len(span) == 16  # our own parent id for the outgoing call
    assert seen["tracestate"] == "ehr=abc"


@pytest.mark.parametrize("bad", ["garbage", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                 "00-00000000000000000000000000000000-b7ad6b7169203331-01"])
def test_a_bad_traceparent_starts_a_new_trace(app, capsys, bad):
    app.test_client().get("/api/v1/patients/p-1/evaluation", headers={"traceparent": bad})
    (trace,) = {r.get("trace_id") for r in lines(capsys)}
    assert trace and len(trace) == 32 and trace not in bad


def test_threads_a_request_starts_log_its_request_id(app, capsys):
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    @app.get("/threads")
    def threads():
        with ThreadPoolExecutor(2) as pool:
            pool.submit(contextvars.copy_context().run, log.info, "from a fetch thread").result()
        return jsonify({})

    rid = app.test_client().get("/threads").headers[REQUEST_ID_HEADER]
    assert [r["request_id"] for r in lines(capsys)] == [rid, rid]


def test_gunicorn_logconfig_uses_the_json_handler():
    import logging.config

    config = gunicorn_logconfig("WARNING")
    assert config["loggers"]["gunicorn.error"]["handlers"] == ["json"]
    logging.config.dictConfig({k: v for k, v in config.items() if k != "root"})  # leave pytest's root alone
    handler = logging.getLogger("gunicorn.error").handlers[0]
    assert handler.formatter.__class__.__name__ == "JsonFormatter"


def test_the_service_logs_json_with_request_ids(capsys):
    from fhir_vcf import create_app

    client = create_app({"database_url": "sqlite://"}).test_client()
    capsys.readouterr()
    response = client.get("/healthz", headers={REQUEST_ID_HEADER: "trace-7"})
    assert response.headers[REQUEST_ID_HEADER] == "trace-7"
    done = [r for r in lines(capsys) if r["logger"] == "fhir_vcf.request"]
    assert done and done[-1]["request_id"] == "trace-7" and done[-1]["endpoint"] == "/healthz"


def test_a_request_made_inside_another_leaves_no_context_behind(app):
    """A request served inside another one (same app, so the same `g`) must not leak its log context."""
    from fhir_vcf import logs

    @app.get("/outer")
    def outer():
        app.test_client().get("/api/v1/patients/p-1/evaluation")
        return jsonify({"inner_done": logs.current_request_id() is not None})

    with app.app_context():
        assert app.test_client().get("/outer").json == {"inner_done": True}
    assert logs.current_context() is None


def test_clean_by_exact_type_agrees_with_the_general_rule():
    """`_clean` takes str, int, float, bool, None and dict by exact type before its isinstance chain:
    the same answer for every kind of value, subclasses and secret-named keys included."""
    import collections
    import enum
    from collections.abc import Mapping

    from fhir_vcf import logs

    def general(value, name=""):
        if name and logs._SECRET_FIELD.search(name):
            return logs.REDACTED
        if isinstance(value, str):
            return logs.redact(value)
        if isinstance(value, list | tuple | set | frozenset):
            return [general(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): general(v, str(k)) for k, v in value.items()}
        if isinstance(value, int | float | bool) or value is None:
            return value
        return logs.redact(str(value))

    class Level(enum.IntEnum):
        HIGH = 2

    class Text(str):
        pass

    values = ["order-select", "Patient/p-9 at ?patient=p_7", Text("Bearer abc"), logs.OwnId("0af7651916cd43dd"),
              3, 2.5, True, None, Level.HIGH,
              {"routine-result": 33, "token": "x", 7: "Patient/p-1", "family": ["Smith"]},
              collections.OrderedDict(given="Ann", n=1), ["a", ("Patient/p-2", {"k": None})], {"s"}, frozenset(),
              object.__new__(type("Thing", (), {"__str__": lambda self: "patients/p-3"}))]
    for value in values:
        for name in ("", "cards", "access_token", "skipped"):
            assert logs._clean(value, name) == general(value, name), (value, name)
            assert type(logs._clean(value, name)) is type(general(value, name))


def test_the_service_s_own_ids_skip_the_search_only_because_it_would_leave_them_as_they_are(capsys):
    """`OwnId` values (trace ids, log patient hashes, hook instances) are printed without the
    redaction search, new as they are on nearly every line. Sound only while no pattern changes
    such a value: held here on many random ids of every form; the line is the same text with them
    as with plain strings; and a plain string under the same names is still redacted."""
    import uuid

    from fhir_vcf import logs

    for _ in range(500):
        for value in (logs.new_context().trace_id, uuid.uuid4().hex, str(uuid.uuid4()), patient_hash(uuid.uuid4().hex),
                      patient_hash(f"Patient/p-{uuid.uuid4()}")):
            assert redact(str(value)) == value

    ids = {"trace_id": uuid.uuid4().hex, "hookInstance": str(uuid.uuid4()), "patient_hash": patient_hash("p-1")}

    def line(kind: type) -> str:
        record = logging.LogRecord("fhir_vcf.request", logging.INFO, __file__, 1, "POST %s", ("/x",), None)
        record.__dict__.update({name: kind(value) for name, value in ids.items()}, request_id="r-1", created=0.0)
        return logs.JsonFormatter().format(record)

    assert line(logs.OwnId) == line(str)

    logs.configure_root("INFO")
    log.info("hello", extra={"trace_id": f"Bearer {JWT}", "hookInstance": "Patient/p-8"})
    (record,) = lines(capsys)
    assert JWT not in json.dumps(record) and "p-8" not in json.dumps(record)


def test_the_line_encoder_writes_what_json_dumps_wrote():
    """`JsonFormatter` writes with one encoder built at import; each line must be what
    `json.dumps(payload, default=str)` gave: ASCII, a lone surrogate and non-ASCII escaped, numbers
    Python writes itself, anything else as its `str`."""
    import datetime as dt
    import uuid

    from fhir_vcf import logs

    payloads = [
        {"message": "caf\u00e9 \ud800 \u2028", "status": 200, "duration_ms": 3.3, "ok": True, "none": None},
        {"skipped": {"routine-result": 33, "duplicate": 1}, "keys": ["a", "b"], "nan": float("nan")},
        {"when": dt.date(2025, 1, 2), "id": uuid.UUID(int=7), "big": 2**70, "inf": float("-inf")},
        {},
    ]
    for payload in payloads:
        assert logs._LINE_ENCODER.encode(payload) == json.dumps(payload, default=str)

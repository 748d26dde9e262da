"""The `$export` client against a fake Bulk Data server (responses): the flow of the Bulk Data IG
(kick-off 202 + Content-Location, polling with Retry-After / X-Progress / 429, the manifest,
requiresAccessToken, errors as OperationOutcome), SMART token refresh, and resume after a break."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_vcf.cli import main
from fhir_vcf.errors import UpstreamError
from fhir_vcf.sources.bulk_export import STATE_FILE, BulkExportClient, retry_after
from fhir_vcf.sources.smart_backend import SmartBackendAuth

BASE = "https://ehr.example.org/fhir"
STATUS = "https://ehr.example.org/fhir/bulkstatus/job-1"
FILES = "https://ehr.example.org/files"
TOKEN_URL = "https://ehr.example.org/auth/token"
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-01-01"}
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
             "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
             "onsetDateTime": "2025-06-10"}


def ndjson(*resources: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in resources)


def manifest(requires_token: bool = True, error: bool = False) -> dict:
    return {"transactionTime": "2025-06-30T00:00:00Z", "request": f"{BASE}/Patient/$export",
            "requiresAccessToken": requires_token,
            "output": [{"type": "Patient", "url": f"{FILES}/patient_1.ndjson", "count": 1},
                       {"type": "Condition", "url": f"{FILES}/condition_1.ndjson", "count": 1}],
            "error": [{"type": "OperationOutcome", "url": f"{FILES}/err_1.ndjson"}] if error else []}


class Clock:
    """A fake clock: `sleep` advances it, so polling waits are asserted without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def client(clock: Clock, token="secret-token", **kw) -> BulkExportClient:
    return BulkExportClient(BASE, token=token, sleep=clock.sleep, clock=clock, **kw)


def kickoff(rsps, status: int = 202, headers: dict | None = None, **kw) -> None:
    headers = {**({"Content-Location": STATUS} if status == 202 else {}), **(headers or {})}
    rsps.add(responses.GET, f"{BASE}/Patient/$export", status=status, headers=headers, **kw)


def files(rsps) -> None:
    rsps.add(responses.GET, f"{FILES}/patient_1.ndjson", body=ndjson(PATIENT),
             content_type="application/fhir+ndjson")
    rsps.add(responses.GET, f"{FILES}/condition_1.ndjson", body=ndjson(CONDITION),
             content_type="application/fhir+ndjson")
    rsps.add(responses.DELETE, STATUS, status=202)


def test_full_flow_with_retry_after_progress_and_429(tmp_path: Path) -> None:
    clock, progress = Clock(), []
    with responses.RequestsMock() as rsps:
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=202, headers={"Retry-After": "3", "X-Progress": "10% done\x1b[2J"})
        rsps.add(responses.GET, STATUS, status=429, headers={"Retry-After": "7"})
        rsps.add(responses.GET, STATUS, status=202)  # no Retry-After: exponential backoff
        rsps.add(responses.GET, STATUS, status=202)
        rsps.add(responses.GET, STATUS, json=manifest())
        files(rsps)
        result = client(clock, on_progress=progress.append).export(tmp_path, types=["Patient", "Condition"])
        calls = list(rsps.calls)
    assert clock.slept == [3.0, 7.0, 4.0, 8.0]  # server's delays honoured; backoff doubled from 1 s
    assert progress == ["10% done [2J"]  # control characters of the server's text removed
    kick = calls[0].request
    assert kick.headers["Prefer"] == "respond-async" and kick.headers["Accept"] == "application/fhir+json"
    assert parse_qs(kick.url.split("?", 1)[1])["_type"] == ["Patient,Condition"]
    assert all(c.request.headers.get("Authorization") == "Bearer secret-token" for c in calls)
    assert calls[-1].request.method == "DELETE"
    assert [p.name for p in result.files] == ["Patient.000.ndjson", "Condition.001.ndjson"]
    assert json.loads(result.files[0].read_text()) == PATIENT


def test_no_token_on_downloads_unless_required_or_on_another_origin(tmp_path: Path) -> None:
    clock = Clock()
    with responses.RequestsMock() as rsps:
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(requires_token=False))
        files(rsps)
        client(clock).export(tmp_path)
        downloads = [c.request for c in rsps.calls if c.request.url.startswith(FILES)]
    assert downloads and all("Authorization" not in r.headers for r in downloads)
    other = "https://storage.example.net/bucket/p.ndjson"
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, other, body=ndjson(PATIENT))
        client(clock).download(other, tmp_path / "x.ndjson", with_token=True)
        assert "Authorization" not in rsps.calls[0].request.headers  # never hand the token to a third party


def test_export_error_operation_outcome_is_reported(tmp_path: Path) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                              "details": {"text": "An internal timeout has occurred"}}]}
    with responses.RequestsMock() as rsps:
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=500, json=outcome)
        with pytest.raises(UpstreamError, match="answered 500: An internal timeout has occurred") as caught:
            client(Clock()).export(tmp_path)
    assert "secret-token" not in str(caught.value)


def test_transient_status_failure_is_retried(tmp_path: Path) -> None:
    transient = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]}
    clock = Clock()
    with responses.RequestsMock() as rsps:
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=503, json=transient, headers={"Retry-After": "2"})
        rsps.add(responses.GET, STATUS, json=manifest())
        files(rsps)
        client(clock).export(tmp_path)
    assert clock.slept == [2.0]


def test_kickoff_errors(tmp_path: Path) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported",
                                                              "diagnostics": "_type Foo is not supported"}]}
    with responses.RequestsMock() as rsps:
        kickoff(rsps, status=400, json=outcome)
        with pytest.raises(UpstreamError, match=r"kick-off failed: .* answered 400: _type Foo is not supported"):
            client(Clock()).export(tmp_path)
    clock = Clock()
    with responses.RequestsMock() as rsps:  # 429: another export running; wait as asked, then start
        kickoff(rsps, status=429, headers={"Retry-After": "30"})
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest())
        files(rsps)
        client(clock).export(tmp_path / "b")
    assert clock.slept == [30.0]


def test_polling_gives_up_after_max_wait(tmp_path: Path) -> None:
    with responses.RequestsMock() as rsps:
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=202, headers={"Retry-After": "120"})
        with pytest.raises(UpstreamError, match="no manifest after 300 s"):
            client(Clock(), max_wait=300).export(tmp_path)


def test_expired_token_is_refreshed_with_smart_backend_services(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    issued = []

    def token_endpoint(request):
        issued.append(f"t{len(issued) + 1}")
        return 200, {}, json.dumps({"access_token": issued[-1], "expires_in": 3600})

    def status(request):  # the first token has expired on the server's side
        if request.headers["Authorization"] == "Bearer t1":
            return 401, {}, ""
        return 200, {}, json.dumps(manifest())

    auth = SmartBackendAuth(client_id="fhir-vcf", token_url=TOKEN_URL, private_key=pem, scope="system/*.read",
                            algorithm="ES384")
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, TOKEN_URL, callback=token_endpoint)
        kickoff(rsps)
        rsps.add_callback(responses.GET, STATUS, callback=status)
        files(rsps)
        BulkExportClient(BASE, token=auth, sleep=lambda s: None).export(tmp_path)
        used = [c.request.headers.get("Authorization") for c in rsps.calls if c.request.url != TOKEN_URL]
    assert issued == ["t1", "t2"]
    assert used[:3] == ["Bearer t1", "Bearer t1", "Bearer t2"]  # kick-off, refused poll, retried poll


def test_resume_after_interruption(tmp_path: Path) -> None:
    clock = Clock()
    with responses.RequestsMock() as rsps:  # first run: the second file breaks off
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest())
        rsps.add(responses.GET, f"{FILES}/patient_1.ndjson", body=ndjson(PATIENT))
        rsps.add(responses.GET, f"{FILES}/condition_1.ndjson", body=requests.ConnectionError("reset"))
        with pytest.raises(UpstreamError):
            client(clock).export(tmp_path)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["status"] == STATUS and state["done"] == ["output:Patient.000.ndjson"]
    assert "secret-token" not in (tmp_path / STATE_FILE).read_text()
    partial = tmp_path / "Condition.001.ndjson.part"
    partial.write_text(ndjson(CONDITION)[:20])  # what a killed download leaves behind
    with responses.RequestsMock() as rsps:  # second run: no new kick-off, no new poll, one file to finish
        rsps.add(responses.GET, f"{FILES}/condition_1.ndjson", status=206, body=ndjson(CONDITION)[20:])
        rsps.add(responses.DELETE, STATUS, status=202)
        result = client(clock).export(tmp_path)
        assert rsps.calls[0].request.headers["Range"] == "bytes=20-"
        assert len(rsps.calls) == 2
    assert json.loads((tmp_path / "Condition.001.ndjson").read_text()) == CONDITION
    assert not partial.exists() and len(result.files) == 2


@pytest.mark.parametrize("value, seconds", [("120", 120.0), ("Thu, 01 Jan 1970 00:00:10 GMT", 10.0),
                                            ("soon", None), (None, None)])
def test_retry_after_forms(value, seconds) -> None:
    assert retry_after(value, 0.0) == seconds


def test_screen_from_a_server_url(tmp_path: Path, capsys) -> None:
    with responses.RequestsMock() as rsps:
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, json=manifest(requires_token=False, error=True))
        files(rsps)
        rsps.add(responses.GET, f"{FILES}/err_1.ndjson", body=ndjson({"resourceType": "OperationOutcome",
                                                                      "issue": [{"severity": "warning"}]}))
        code = main(["screen", BASE, "--out", str(tmp_path), "--as-of", "2025-06-30", "--workers", "1",
                     "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (evaluation,) = [json.loads(x) for x in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert evaluation["patient"] == "Patient/p1" and evaluation["route"] == "osteoporotic"
    assert "export problems in 1 file" in captured.err


def test_screen_from_a_failing_server_is_one_line(tmp_path: Path, capsys) -> None:
    with responses.RequestsMock() as rsps:
        kickoff(rsps, status=403, json={"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "forbidden", "diagnostics": "client not authorised for export"}]})
        assert main(["screen", BASE, "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "client not authorised for export" in err and "Traceback" not in err


def test_token_never_leaves_the_server_origin_nor_follows_a_redirect(tmp_path: Path) -> None:
    elsewhere = "https://collector.example.net/status/1"
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/Patient/$export", status=202, headers={"Content-Location": elsewhere})
        rsps.add(responses.GET, elsewhere, json=manifest())
        files(rsps)
        rsps.replace(responses.DELETE, STATUS, status=202)
        rsps.add(responses.DELETE, elsewhere, status=202)
        rsps.assert_all_requests_are_fired = False
        client(Clock()).export(tmp_path)
        polled = [c.request for c in rsps.calls if c.request.url.startswith(elsewhere)]
    assert polled and all("Authorization" not in r.headers for r in polled)
    with responses.RequestsMock() as rsps:
        kickoff(rsps)
        rsps.add(responses.GET, STATUS, status=302, headers={"Location": elsewhere})
        with pytest.raises(UpstreamError, match="answered 302"):
            client(Clock()).export(tmp_path / "b")
        assert all(not c.request.url.startswith(elsewhere) for c in rsps.calls)


@pytest.mark.parametrize("raw", [
    b'{"resourceType": "Observation", "id": "o1", "valueQuantity": {"value": 7.25}}',
    b'{"resourceType": "Observation", "valueQuantity": {"value": NaN}}',  # orjson refuses: not JSON
    b'{"resourceType": "Observation", "valueInteger": 123456789012345678901234567890}',  # past 64 bits
    b'{"resourceType": "Observation", "valueString": "\\ud800"}',  # a lone surrogate
])
def test_an_ndjson_line_reads_as_the_standard_library_reads_it(raw):
    """orjson reads the lines; whatever it refuses is read by the standard library, so what is
    accepted (and refused later, by the loader) is as before."""
    from fhir_vcf.sources.bulk_ndjson import parse_line

    assert parse_line(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [
    b'{"resourceType": "Observation", "valueInteger": 1234567890123456789}',  # 19 digits: read by json
    b'{"resourceType": "Observation", "valueInteger": 123456789012345678}',  # 18 digits: by orjson
    b'{"resourceType": "Observation", "id": "a1234567890123456789z"}',
    "{\"resourceType\": \"Observation\", \"valueInteger\": 12345678901234567890123}",
    "{\"resourceType\": \"Observation\", \"id\": \"\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660"
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\"}",  # 19 Arabic-Indic digits, as str
])
def test_the_long_integer_check_is_the_regex_it_replaced(raw):
    """`has_long_digits` (translate + find for bytes) answers exactly as `\\d{19}` did, so the same
    lines go to the standard library, and each line still reads as the standard library reads it."""
    import re

    from fhir_vcf.sources.bulk_ndjson import has_long_digits, parse_line

    pattern = re.compile(rb"\d{19}") if isinstance(raw, bytes) else re.compile(r"\d{19}")
    assert has_long_digits(raw) is (pattern.search(raw) is not None)
    assert parse_line(raw) == json.loads(raw)


def test_the_long_integer_check_agrees_with_the_regex_on_any_bytes():
    import random
    import re

    from fhir_vcf.sources.bulk_ndjson import has_long_digits

    rng = random.Random(11)
    pattern = re.compile(rb"\d{19}")
    alphabet = b"0123456789 ,:{}\"a\xd9\xa1"
    for _ in range(3000):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        raw = raw.replace(b" ", b"1" * rng.randrange(0, 21), 1)
        assert has_long_digits(raw) is (pattern.search(raw) is not None), raw


def test_an_ndjson_line_that_is_not_json_says_where_as_before():
    from fhir_vcf.errors import InputError
    from fhir_vcf.sources.bulk_ndjson import parse_line

    with pytest.raises(InputError, match="Expecting property name enclosed in double quotes at column 2"):
        parse_line(b"{not json")

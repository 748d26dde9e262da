"""`fhir-vcf replay`: the in-memory FHIR query evaluator, request building, checking and output.

Most tests stub the clinical core through the service's seam (`cds_hooks.evaluate_record`) with
contract-shaped evaluations, so they test replay, not the rules; `test_samples_replay_as_expected`
runs the real pipeline over `samples/` against `samples/expected.json`.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import jwt
import pytest
from cards import evaluation
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from fhir_vcf import create_app
from fhir_vcf.replay import Signer, add_replay_parser, build_request, run_replay
from fhir_vcf.service import cds_hooks
from fhir_vcf.sources.memory import MemoryFhir, QueryError
from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
EXPECTED = SAMPLES / "expected.json"
KYPHO = SAMPLES / "eligible-requested-kyphoplasty-t12-l1.json"
TWO = SAMPLES / "two-patients.json"
KEYS = ("file", "patient", "hook", "decision", "expected", "valid", "problems")


def replay(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="fhir-vcf")
    add_replay_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["replay", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run_replay(args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def stub(monkeypatch):
    """The core replaced by a stub: decision per patient from `stub.decisions` (default eligible)."""

    class Stub:
        decisions: dict[str, str] = {}
        calls: list[dict] = []

        def __call__(self, record, **options):
            self.calls.append({"patient": record.patient, **options})
            decision = self.decisions.get(record.patient, "eligible")
            result = evaluation(decision, patient=record.patient)
            result["asOf"] = options["as_of"].isoformat()
            return result

    instance = Stub()
    instance.decisions, instance.calls = {}, []
    monkeypatch.setattr(cds_hooks, "evaluate_record", instance)
    return instance


# --- the in-memory FHIR query evaluator -----------------------------------------------------------


def obs(oid, when, patient="p1", *, field="subject", status="final", code="72514-3"):
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        field: {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
    }


@pytest.fixture
def memory():
    resources = [
        {"resourceType": "Patient", "id": "p1"},
        {"resourceType": "Patient", "id": "p2"},
        obs("o1", "2025-06-01"),
        obs("o2", "2025-06-20T10:00:00Z"),
        obs("o3", "2025-06-10"),
        obs("o4", "2025-06-15", patient="p2"),
        obs("o5", "2025-06-05", status="entered-in-error", code="6301-6"),
        {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/p1"}},
    ]
    return MemoryFhir((None, r) for r in resources)


def ids(bundle):
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_query_patient_and_subject_search(memory):
    assert sorted(ids(memory.query("Observation?patient=p1"))) == ["o1", "o2", "o3", "o5"]
    assert ids(memory.query("Observation?subject=Patient/p2")) == ["o4"]
    assert ids(memory.query("AllergyIntolerance?patient=Patient%2Fp1")) == ["a1"]
    assert memory.query("AllergyIntolerance?patient=p2")["total"] == 0


def test_query_sort_by_date_descending_and_count(memory):
    bundle = memory.query("Observation?patient=p1&_sort=-date&_count=2")
    assert ids(bundle) == ["o2", "o3"]
    assert bundle["total"] == 4
    assert ids(memory.query("Observation?patient=p1&_sort=date")) == ["o1", "o5", "o3", "o2"]


def test_query_token_and_date_filters(memory):
    assert sorted(ids(memory.query("Observation?patient=p1&status=final"))) == ["o1", "o2", "o3"]
    assert ids(memory.query("Observation?code=http://loinc.org|6301-6")) == ["o5"]
    assert ids(memory.query("Observation?patient=p1&date=ge2025-06-10&_sort=date")) == ["o3", "o2"]


def test_query_read_and_missing_read(memory):
    assert memory.query("Patient/p1")["id"] == "p1"
    assert memory.query("Patient/nobody") is None


def test_query_unknown_parameter_is_reported_not_applied(memory):
    result = memory.search("Observation", [("patient", "p1"), ("frobnicate", "x")])
    assert result.ignored == ["frobnicate"]
    assert len(result.matches) == 4


def test_query_bad_count_is_an_error(memory):
    with pytest.raises(QueryError):
        memory.query("Observation?_count=lots")


def test_full_urls_get_ids_and_references_are_rewritten():
    store = MemoryFhir([
        ("urn:uuid:5a1d", {"resourceType": "Patient"}),
        (None, {"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:5a1d"}}),
    ])
    assert store.patients() == ["5a1d"]
    assert ids(store.query("Condition?patient=5a1d")) == ["c1"]
    assert store.read("Condition", "c1")["subject"]["reference"] == "Patient/5a1d"


# --- building requests ----------------------------------------------------------------------------


def service(hook="patient-view"):
    return {"hook": hook, "id": f"svc-{hook}", "prefetch": dict(PREFETCH_TEMPLATES)}


def test_request_fills_every_prefetch_key():
    store = MemoryFhir.from_bundles([json.loads(KYPHO.read_text())])
    body = build_request(store, "p-tanaka", service())
    assert set(body["prefetch"]) == set(PREFETCH_TEMPLATES)
    assert body["prefetch"]["patient"]["id"] == "p-tanaka"
    assert body["prefetch"]["carePlans"] == {"resourceType": "Bundle", "type": "searchset", "total": 0}
    assert body["prefetch"]["conditions"]["total"] >= 2
    assert "fhirServer" not in body and "draftOrders" not in body["context"]


def test_order_hooks_carry_the_draft_augmentation_orders():
    store = MemoryFhir.from_bundles([json.loads(KYPHO.read_text())])
    select = build_request(store, "p-tanaka", service("order-select"))
    entries = select["context"]["draftOrders"]["entry"]
    assert entries and all(e["resource"]["status"] == "draft" for e in entries)
    assert select["context"]["selections"] == [f"ServiceRequest/{e['resource']['id']}" for e in entries]
    sign = build_request(store, "p-tanaka", service("order-sign"))
    assert "selections" not in sign["context"] and sign["context"]["draftOrders"]["entry"]


def test_unsupported_template_parameters_are_reported():
    store = MemoryFhir.from_bundles([json.loads(KYPHO.read_text())])
    svc = {"hook": "patient-view", "id": "x",
           "prefetch": {"obs": "Observation?patient={{context.patientId}}&frobnicate=1",
                        "enc": "Encounter?patient={{context.encounterId}}"}}
    warnings = []
    body = build_request(store, "p-tanaka", svc, warnings=warnings)
    assert body["prefetch"]["obs"]["total"] > 0 and "enc" not in body["prefetch"]
    assert any("frobnicate" in w for w in warnings) and any("prefetch.enc" in w for w in warnings)


# --- running (stubbed core) -----------------------------------------------------------------------


def expectations(tmp_path, decisions):
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({TWO.name: {p: {"decision": d} for p, d in decisions.items()}}))
    return str(path)


def test_matching_expectations_pass(stub, tmp_path):
    stub.decisions = {"Patient/p-two-b-costa": "not-eligible"}
    expect = expectations(tmp_path, {"Patient/p-two-a-berg": "eligible", "Patient/p-two-b-costa": "not-eligible"})
    code, out, _ = replay(str(TWO), "--expect", expect, "--as-of", "2025-06-30")
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "2 passed, 0 failed"
    assert {c["as_of"].isoformat() for c in stub.calls} == {"2025-06-30"}


def test_wrong_expectation_fails_and_names_the_mismatch(stub, tmp_path):
    expect = expectations(tmp_path, {"Patient/p-two-a-berg": "eligible", "Patient/p-two-b-costa": "needs-review"})
    code, out, _ = replay(str(TWO), "--expect", expect)
    assert code == 1
    assert "1 passed, 1 failed" in out
    line = next(x for x in out.splitlines() if "p-two-b-costa" in x)
    assert "decision 'eligible', expected 'needs-review'" in line


def test_silent_on_expects_no_card_on_that_hook_only(tmp_path):
    """A bare Patient: the evaluation says insufficient-data, but patient-view rightly answers no
    card (no vertebral fracture on record). `silentOn` lets an expectation say so; the real service."""
    bare = ROOT / "tests" / "data" / "unseen" / "single-patient-resource.json"
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({bare.name: {"Patient/u-olsen": {
        "decision": "insufficient-data", "asOf": "2025-06-30", "silentOn": ["patient-view"]}}}))
    code, out, err = replay(str(bare), "--expect", str(path), "--format", "json")
    assert code == 0, out + err
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["decision"] is None and line["expected"] == "no card" and line["problems"] == []

    plain = {"decision": "insufficient-data", "asOf": "2025-06-30"}
    path.write_text(json.dumps({bare.name: {"Patient/u-olsen": plain}}))
    code, out, _ = replay(str(bare), "--expect", str(path))
    assert code == 1 and "decision None, expected 'insufficient-data'" in out  # without it, silence fails


def test_silent_on_fails_when_the_service_answers_a_card(stub, tmp_path):
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({TWO.name: {p: {"decision": "eligible", "silentOn": ["patient-view"]}
                                           for p in ("Patient/p-two-a-berg", "Patient/p-two-b-costa")}}))
    code, out, _ = replay(str(TWO), "--expect", str(path))
    assert code == 1 and "0 passed, 2 failed" in out
    assert "1 card(s) with decision 'eligible', expected no card" in out


def test_silent_on_names_only_known_hooks(stub, tmp_path):
    path = tmp_path / "expected.json"
    path.write_text(json.dumps({TWO.name: {"Patient/p-two-a-berg": {"decision": "eligible",
                                                                    "silentOn": ["patient-veiw"]}}}))
    code, _, err = replay(str(TWO), "--expect", str(path))
    assert code == 2 and "silentOn must be a list of hook names" in err and len(err.strip().splitlines()) == 1


def test_unseen_records_replay_as_expected():
    """Every record of tests/data/unseen replays to what its expected.json documents (the bare
    Patient's patient-view: no card, by `silentOn`)."""
    unseen = ROOT / "tests" / "data" / "unseen"
    code, out, err = replay(str(unseen), "--expect", str(unseen / "expected.json"))
    assert code == 0, out + err
    assert out.splitlines()[-1].endswith(" passed, 0 failed")


def test_json_lines_have_the_documented_keys(stub):
    code, out, err = replay(str(TWO), "--format", "json", "--hook", "all")
    assert code == 0, out + err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2  # two-patients has no draft augmentation order: order hooks skipped
    for line in lines:
        assert tuple(line) == KEYS
        assert line["valid"] is True and line["problems"] == [] and line["expected"] is None
        assert line["decision"] == "eligible" and line["hook"] == "patient-view"
    assert "2 passed, 0 failed, 4 skipped" in err


def test_all_hooks_for_a_draft_order(stub):
    code, out, _ = replay(str(KYPHO), "--format", "json", "--hook", "all")
    assert code == 0
    assert [json.loads(line)["hook"] for line in out.splitlines()] == ["patient-view", "order-select", "order-sign"]
    ordered = [c for c in stub.calls if c.get("request")]
    assert ordered and all(c["request"].startswith("ServiceRequest/") for c in ordered)


def test_junit_has_one_testcase_per_row(stub, tmp_path):
    junit = tmp_path / "replay.xml"
    expect = expectations(tmp_path, {"Patient/p-two-a-berg": "not-eligible"})
    code, _, _ = replay(str(TWO), "--expect", expect, "--junit", str(junit))
    assert code == 1
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["Patient/p-two-a-berg patient-view", "Patient/p-two-b-costa patient-view"]
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None


def test_junit_reports_skipped_and_errored_cases_as_such(stub, tmp_path, monkeypatch):
    """An order hook not sent is <skipped>, a call the service answered with an error status is
    <error>, an unusable input file is <error>: none of them passes, none is a failed answer."""
    from fhir_vcf.errors import InputError

    def evaluate(record, **options):
        if record.patient.endswith("p-two-b-costa"):
            raise InputError("the record cannot be read", source="prefetch.conditions")
        return stub(record, **options)

    monkeypatch.setattr(cds_hooks, "evaluate_record", evaluate)
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    junit = tmp_path / "replay.xml"
    expect = expectations(tmp_path, {"Patient/p-two-a-berg": "not-eligible"})
    code, _, _ = replay(str(TWO), str(bad), "--hook", "all", "--expect", expect, "--junit", str(junit))
    assert code == 2  # an unusable input file
    suite = ET.parse(junit).getroot()
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "7", "failures": "1", "errors": "2", "skipped": "4"}
    outcome = {}
    for case in suite.findall("testcase"):
        kinds = [child.tag for child in case if child.tag != "system-out"]
        outcome[(case.get("classname"), case.get("name"))] = kinds[0] if kinds else "passed"
    assert outcome[("two-patients.json", "Patient/p-two-a-berg patient-view")] == "failure"  # wrong decision
    assert outcome[("two-patients.json", "Patient/p-two-b-costa patient-view")] == "error"  # HTTP 400
    assert outcome[("broken.json", "")] == "error"
    skipped = [key for key, kind in outcome.items() if kind == "skipped"]
    assert sorted(name for _, name in skipped) == [f"Patient/{p} {h}" for p in ("p-two-a-berg", "p-two-b-costa")
                                                  for h in ("order-select", "order-sign")]
    error = suite.find("testcase[@name='Patient/p-two-b-costa patient-view']/error")
    assert error is not None and error.get("message").startswith("HTTP 400")


def test_bad_file_exits_2_with_one_line(stub, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    code, out, err = replay(str(bad), str(TWO))
    assert code == 2
    assert err.strip().splitlines() == [f"{bad}: invalid JSON: Expecting property name enclosed in double quotes "
                                        "at line 1 column 2"]
    assert "2 passed" in out  # the good file was still replayed


def test_missing_file_and_bad_expectations_exit_2(stub, tmp_path):
    code, _, err = replay(str(tmp_path / "absent.json"))
    assert code == 2 and err.strip() == f"{tmp_path / 'absent.json'}: no such file"
    wrong = tmp_path / "expected.json"
    wrong.write_text('{"x.json": {"Patient/1": {"levels": []}}}')
    code, _, err = replay(str(TWO), "--expect", str(wrong))
    assert code == 2 and "no decision" in err and len(err.strip().splitlines()) == 1


def test_invalid_cards_are_reported(stub, monkeypatch):
    def broken(evaluations, **_options):
        card = {"uuid": "not-a-uuid", "summary": "x" * 150, "indicator": "loud", "source": {"label": "x"}}
        return {"cards": [card]}

    monkeypatch.setattr(cds_hooks, "render_cards", broken)
    code, out, _ = replay(str(TWO), "--format", "json")
    assert code == 1
    row = json.loads(out.splitlines()[0])
    assert row["valid"] is False
    assert any("uuid" in p for p in row["problems"]) and any("summary" in p for p in row["problems"])
    assert any("indicator" in p for p in row["problems"])


def test_invalid_careplan_is_reported(stub, monkeypatch):
    original = cds_hooks.render_cards

    def bad_plan(evaluations, **options):
        body = original(evaluations, **options)
        body["cards"][0]["suggestions"][0]["actions"][0]["resource"]["subject"] = "Patient/p1"  # not a Reference
        return body

    monkeypatch.setattr(cds_hooks, "render_cards", bad_plan)
    code, out, _ = replay(str(TWO), "--format", "json")
    assert code == 1
    assert any("invalid FHIR R4 CarePlan" in p for p in json.loads(out.splitlines()[0])["problems"])


# --- against a running server, signed -------------------------------------------------------------


@pytest.fixture
def served():
    """The app on 127.0.0.1, an ephemeral port, in a thread; yields (base URL, app)."""
    holder = {}

    def start(app):
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        holder["server"] = server
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    if "server" in holder:
        holder["server"].shutdown()


def test_against_a_running_server(stub, served, tmp_path):
    base = served(create_app({"database_url": "sqlite://"}))
    stub.decisions = {"Patient/p-two-b-costa": "not-eligible"}
    expect = expectations(tmp_path, {"Patient/p-two-a-berg": "eligible", "Patient/p-two-b-costa": "not-eligible"})
    code, out, err = replay(str(TWO), "--against", base, "--expect", expect)
    assert code == 0, out + err
    assert "2 passed, 0 failed" in out


def test_against_a_server_that_requires_jwts(stub, served, tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    pem = tmp_path / "ehr.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    signer = Signer(pem.read_bytes(), "https://ehr.example.org")
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({"https://ehr.example.org": {"jwks": {"keys": [signer.public_jwk]}}}))
    base = served(create_app({"database_url": "sqlite://", "trusted_issuers": str(issuers),
                              "trust_host_header": True}))

    code, out, err = replay(str(TWO), "--against", base)
    assert code == 2 and "answered 401" in err  # unsigned: even discovery is refused
    code, out, err = replay(str(TWO), "--against", base, "--jwt-key", str(pem), "--jwt-issuer",
                            "https://ehr.example.org")
    assert code == 0, out + err


def test_signed_token_has_the_cds_hooks_claims(tmp_path):
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    signer = Signer(pem, "https://ehr.example.org", kid="k1")
    token = signer.token("http://svc/cds-services/vcf-patient-view")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES384" and header["kid"] == "k1" and header["typ"] == "JWT"
    claims = jwt.decode(token, key.public_key(), algorithms=["ES384"],
                        audience="http://svc/cds-services/vcf-patient-view")
    assert claims["iss"] == "https://ehr.example.org"
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"]


def test_unusable_key_exits_2(tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text("not a key")
    code, _, err = replay(str(TWO), "--jwt-key", str(pem), "--jwt-issuer", "x")
    assert code == 2 and err.startswith("fhir-vcf replay: --jwt-key")


# --- the real pipeline ----------------------------------------------------------------------------


def test_samples_replay_as_expected(tmp_path):
    """Every sample through the real service, every hook, as of the samples' date (README)."""
    junit = tmp_path / "junit.xml"
    code, out, err = replay(str(SAMPLES), "--hook", "all", "--as-of", "2025-06-30", "--expect", str(EXPECTED),
                            "--junit", str(junit))
    assert code == 0, out + err
    assert " 0 failed" in out.splitlines()[-1]


def test_expected_as_of_dates_make_the_samples_replay_forever():
    """`fhir-vcf replay samples --expect samples/expected.json` (no --as-of) passes on any day: each
    expectation states the date its decision holds on, and replay evaluates as of that date."""
    code, out, err = replay(str(SAMPLES), "--expect", str(EXPECTED))
    assert code == 0, out + err
    assert " 0 failed" in out.splitlines()[-1]


def test_an_explicit_as_of_overrides_the_expected_date():
    """Replayed a year later, the 2025 fractures are chronic: the mismatch must show, not be hidden."""
    code, out, _ = replay(str(SAMPLES / "eligible-outpatient-worsening.json"), "--as-of", "2026-06-30",
                          "--expect", str(EXPECTED))
    assert code == 1
    assert "expected 'eligible'" in out


def test_replay_is_a_fhir_vcf_subcommand(stub, capsys):
    from fhir_vcf.cli import main

    assert main(["replay", str(TWO), "--format", "json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

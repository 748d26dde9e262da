"""Demo mode serves the sample patients dated as of today, so that a client that sends no as-of date
(every real EHR) gets the decisions samples/expected.json documents, on any day.

The documented decisions are those of expected.json (reasoned from clinical-rules.md, not from the
program). Each check runs on several "todays", including a leap day and a day in another year, by
pinning the service's date (`cds_hooks.today`, the one seam the demo data follows too).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from api_support import make_app
from cards import assert_valid_cards

from fhir_vcf.clinical_time import today_utc
from fhir_vcf.service import cds_hooks
from fhir_vcf.sources.timeshift import shift_resource, shift_value

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())
CASES = sorted((name, patient, e) for name, patients in EXPECTED.items() for patient, e in patients.items())
TODAYS = [today_utc(), date(2028, 2, 29), date(2031, 11, 3)]


# --- moving a record in time ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "days", "moved"), [
    ("2025-06-02", 28, "2025-06-30"),
    ("2025-06-30T10:15:00+02:00", 1, "2025-07-01T10:15:00+02:00"),  # the clock time and the zone stay
    ("2025-06-30T23:59:59.123Z", 366, "2026-07-01T23:59:59.123Z"),
    ("2025-06", 40, "2025-07"),  # a month stays a month
    ("2025", 400, "2026"),  # a year stays a year (it moves with its first day)
    ("2024-02-29", 365, "2025-02-28"),
    ("2025-06-02", -28, "2025-05-05"),
    ("not a date", 5, "not a date"),
    ("2025-02-30", 5, "2025-02-30"),  # not a date either: left as it is
])
def test_a_value_moves_by_whole_days_at_its_own_precision(value: str, days: int, moved: str) -> None:
    assert shift_value(value, days) == moved


def test_every_date_of_a_record_moves_and_nothing_else() -> None:
    condition = {
        "resourceType": "Condition", "id": "2025-06-02",  # an id that looks like a date
        "code": {"coding": [{"system": "http://loinc.org", "code": "1989-3"}], "text": "fracture 2025-06-01"},
        "onsetDateTime": "2025-06-02", "recordedDate": "2025-06-03T09:00:00Z",
        "abatementPeriod": {"start": "2025-06-04", "end": "2025-06-05"},
        "note": [{"time": "2025-06-06T10:00:00Z", "text": "seen 2025-06-06"}],
        "meta": {"lastUpdated": "2025-06-07T00:00:00Z"},
        "extension": [{"url": "x", "valueDateTime": "2025-06-08"}],
        "text": {"status": "generated", "div": "<div>2025-06-02</div>"},
    }
    moved = shift_resource(condition, 10)
    assert moved["onsetDateTime"] == "2025-06-12" and moved["recordedDate"] == "2025-06-13T09:00:00Z"
    assert moved["abatementPeriod"] == {"start": "2025-06-14", "end": "2025-06-15"}
    assert moved["meta"]["lastUpdated"] == "2025-06-17T00:00:00Z"
    assert moved["extension"][0]["valueDateTime"] == "2025-06-18"
    assert moved["id"] == "2025-06-02" and moved["code"] == condition["code"] and moved["text"] == condition["text"]
    assert moved["note"][0]["text"] == "seen 2025-06-06"  # narrative stays as written
    assert condition["onsetDateTime"] == "2025-06-02"  # the original is untouched
    assert shift_resource({"resourceType": "Timing", "event": ["2025-06-01", "2025-06-02"]}, 1)["event"] == [
        "2025-06-02", "2025-06-03"]


# --- the documented decisions, today ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_app(tmp_path_factory.mktemp("demo-dates"), demo=True)


@pytest.mark.parametrize("today", TODAYS, ids=str)
def test_a_client_without_an_as_of_date_sees_every_documented_decision(demo, monkeypatch, today: date) -> None:
    """Every sample patient, as a real EHR calls: no as-of date, the record read from the demo endpoint."""
    monkeypatch.setattr(cds_hooks, "today", lambda: today)
    client = demo.test_client()
    wrong = []
    for name, patient, expected in CASES:
        pid = patient.split("/", 1)[1]
        body = client.get(f"/demo/fhir/$cds-hooks-request?patient={pid}&hook=patient-view").get_json()
        assert "extension" not in body, "a request made as a real EHR makes it names no date"
        response = client.post("/cds-services/vcf-patient-view", json=body)
        cards = assert_valid_cards(response.get_json())
        own = cards[0]["extension"]["fhir-vcf"] if cards else {}
        got = (own.get("decision"), own.get("levels"))
        if got != (expected["decision"], expected["levels"]) or own.get("asOf") != today.isoformat():
            wrong.append((name, patient, got, expected["decision"], expected["levels"]))
    assert wrong == []


def test_the_record_keeps_every_interval(demo, monkeypatch) -> None:
    """p-moreau: onset 2025-06-02, 28 days before the date written for (expected.json's why)."""
    today = date(2030, 1, 15)
    monkeypatch.setattr(cds_hooks, "today", lambda: today)
    client = demo.test_client()
    (entry,) = [e for e in client.get("/demo/fhir/Condition?patient=p-moreau&code=M80.08XA").get_json()["entry"]]
    assert entry["resource"]["onsetDateTime"][:10] == (today - timedelta(days=28)).isoformat()
    written = client.get("/demo/fhir/Patient/p-moreau").get_json()["birthDate"]
    original = next(e["resource"] for e in json.loads((SAMPLES / "eligible-outpatient-worsening.json").read_text())
                    ["entry"] if e["resource"]["resourceType"] == "Patient")["birthDate"]
    assert date.fromisoformat(written) - date.fromisoformat(original) == today - date(2025, 6, 30)  # same age


def test_an_explicit_as_of_date_gets_the_record_as_of_that_date(demo, monkeypatch) -> None:
    monkeypatch.setattr(cds_hooks, "today", lambda: date(2030, 1, 15))
    client = demo.test_client()
    body = client.get("/demo/fhir/$cds-hooks-request?patient=p-moreau&hook=patient-view&asOf=2025-06-30").get_json()
    assert body["extension"] == {"fhir-vcf": {"asOf": "2025-06-30"}}
    onsets = [e["resource"].get("onsetDateTime") for e in body["prefetch"]["conditions"]["entry"]]
    assert "2025-06-02" in onsets  # the file's own date: 2025-06-30 is the date it was written for
    (card,) = assert_valid_cards(client.post("/cds-services/vcf-patient-view", json=body).get_json())
    assert card["extension"]["fhir-vcf"]["decision"] == "eligible"


def test_as_written_serves_the_files_dates(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cds_hooks, "today", lambda: date(2030, 1, 15))
    client = make_app(tmp_path, demo=True, demo_dates="as-written").test_client()
    body = client.get("/demo/fhir/Condition?patient=p-moreau&code=M80.08XA").get_json()
    assert body["entry"][0]["resource"]["onsetDateTime"][:10] == "2025-06-02"


def test_a_folder_without_expectations_is_served_as_written(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "one.json").write_text((SAMPLES / "eligible-outpatient-worsening.json").read_text())
    monkeypatch.setattr(cds_hooks, "today", lambda: date(2030, 1, 15))
    client = make_app(tmp_path, demo=True, demo_dir=str(folder)).test_client()
    body = client.get("/demo/fhir/Condition?patient=p-moreau&code=M80.08XA").get_json()
    assert body["entry"][0]["resource"]["onsetDateTime"][:10] == "2025-06-02"


def test_a_bad_demo_dates_setting_stops_the_start(tmp_path) -> None:
    from fhir_vcf.errors import ConfigError

    with pytest.raises(ConfigError, match="FHIR_VCF_DEMO_DATES"):
        make_app(tmp_path, demo=True, demo_dates="tomorrow")

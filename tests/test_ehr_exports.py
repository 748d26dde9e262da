"""Real-feed shapes (issue 9, items 3-5): where the data hides in EHR exports, and what is set aside.

`samples/ehr-exports/` holds export-shaped Bundles (US Core profiles, searchsets with an
OperationOutcome entry, a contained Medication, mixed UTC offsets), one per shape of the input
profile's "also accept" column: a pain score as a panel component or a LOINC answer code, report
text in `presentedForm` and in DocumentReference attachments, ICD-10-CM codes without the dot or
in lower case, sepsis / bacteremia / surgical-site infection codes, an HL7 v2-0004 patient class.
Their decisions and `skipped` counts were reasoned from clinical-rules.md before the code ran.

Below the replay, each new representation is shown to decide its criterion ALONE: the same record
without it (or with the old reading of it) gets another answer, reasoned from the rules too.
"""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from expected_bundles import DECISIONS, ExpectedFolder
from fhir_builders import coding, concept, encounter, observation, record

from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.mappers import map_record
from fhir_vcf.mappers.codes.icd10cm import spelled
from fhir_vcf.mappers.exclusions import map_exclusions
from fhir_vcf.mappers.symptoms import map_symptoms
from fhir_vcf.record import load_document
from fhir_vcf.rules.policy import load_policies

FOLDER = Path(__file__).resolve().parent.parent / "samples" / "ehr-exports"
EXPORTS = ExpectedFolder(FOLDER)
AS_OF = date(2025, 6, 30)
POLICY = load_policies()["cms-lcd-pva"]


# ---------------------------------------------------------------- the folder replayed through the core


def test_every_export_is_expected_and_the_set_covers_the_decisions():
    EXPORTS.check_the_listing()
    decisions = {e["decision"] for patients in EXPORTS.expected.values() for e in patients.values()}
    assert {"eligible", "not-eligible", "insufficient-data"} <= decisions <= DECISIONS


@pytest.mark.parametrize(("name", "patient"), EXPORTS.cases, ids=[f"{n}:{p}" for n, p in EXPORTS.cases])
def test_export_decision_levels_and_skipped(name, patient):
    EXPORTS.assert_case(name, patient)


def test_the_exports_are_export_shaped():
    """Searchsets with an OperationOutcome entry, US Core profiles, a contained Medication, -04:00 and Z."""
    documents = {name: json.loads((FOLDER / name).read_text()) for name in EXPORTS.files}
    assert {d["type"] for d in documents.values()} == {"searchset", "collection"}
    entries = [e for d in documents.values() for e in d["entry"]]
    outcomes = [e for e in entries if e["resource"]["resourceType"] == "OperationOutcome"]
    assert outcomes and all(e["search"]["mode"] == "outcome" for e in outcomes)
    resources = [e["resource"] for d in documents.values() for e in d["entry"]]
    assert any(r.get("contained") for r in resources)
    assert all("us-core" in p for r in resources for p in r.get("meta", {}).get("profile", []))
    text = "".join((FOLDER / n).read_text() for n in EXPORTS.files)
    assert "-04:00" in text and 'Z"' in text and "-05:00" in text


def test_the_cli_gives_the_expected_decisions(capsys):
    EXPORTS.cli_matches(capsys)


def test_a_cds_hooks_replay_gives_the_expected_decisions():
    """Through the service as an EHR calls it: the prefetch (with its `documentReferences` key) is
    filled from each Bundle, so a report that is only a DocumentReference reaches the record too."""
    import argparse
    import io

    from fhir_vcf.replay.flow import add_replay_parser, run_replay

    parser = argparse.ArgumentParser(prog="fhir-vcf")
    add_replay_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["replay", str(FOLDER), "--expect", str(FOLDER / "expected.json")])
    out, err = io.StringIO(), io.StringIO()
    assert run_replay(args, out, err) == 0, out.getvalue() + err.getvalue()
    assert out.getvalue().strip().splitlines()[-1] == f"{len(EXPORTS.cases)} passed, 0 failed"


# ---------------------------------------------------------------- each representation alone decides


def _document(name: str) -> dict[str, Any]:
    return json.loads((FOLDER / name).read_text())


def _decide(document: dict[str, Any]) -> dict[str, Any]:
    (only,) = [r for r in load_document(document, source="test") if not r.patient.startswith("Patient/other")]
    return evaluate_record(only, as_of=AS_OF, policy=POLICY)


def _status(evaluation: dict[str, Any], cid: str) -> str:
    return next(c["status"] for c in evaluation["criteria"] if c["id"] == cid)


def _resources(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in document["entry"]]


def test_a_panel_component_alone_is_the_inpatient_pain_score():
    document = _document("pain-component-of-panel-inpatient.json")
    assert _status(_decide(document), "I4") == "met"
    panel = next(r for r in _resources(document) if r.get("component"))
    panel["component"] = [c for c in panel["component"] if "coding" not in c["code"]]  # the NRS taken away
    without = _decide(document)
    assert _status(without, "I4") == "unknown" and without["decision"] == "insufficient-data"


def test_loinc_answer_codes_alone_are_the_pain_scores():
    document = _document("pain-loinc-answer-codes-worsening.json")
    got = _decide(document)
    assert _status(got, "I4") == "met"
    assert [p["value"] for p in got["timeline"]["painScores"]] == [6.0, 8.0]
    for r in _resources(document):
        r.pop("valueCodeableConcept", None)
    assert _status(_decide(document), "I4") == "unknown"


def test_the_current_document_alone_shows_acuity_and_its_old_versions_are_not_read():
    document = _document("documentreference-mri-report-current-version.json")
    got = _decide(document)
    assert _status(got, "I3") == "met"
    i3 = next(c for c in got["criteria"] if c["id"] == "I3")
    assert i3["evidence"] == ["DocumentReference/ehr-docref-mri-v2"]
    current = copy.deepcopy(document)
    current["entry"] = [e for e in current["entry"] if e["resource"]["id"] != "ehr-docref-mri-v2"]
    without = _decide(current)
    assert _status(without, "I3") == "unknown" and without["decision"] == "insufficient-data"
    # Were the superseded version read, its "without marrow edema, chronic" would speak: it must not.
    assert without["skipped"]["superseded"] == 1 and without["skipped"]["entered-in-error"] == 1


def test_a_progress_note_document_alone_gives_the_roland_morris_score():
    document = _document("documentreference-clinic-note-rdq.json")
    assert _decide(document)["decision"] == "eligible"
    document["entry"] = [e for e in document["entry"] if e["resource"]["resourceType"] != "DocumentReference"]
    assert _status(_decide(document), "I4") != "met"


def test_presented_form_text_alone_excludes():
    document = _document("report-presentedform-discitis.json")
    assert _status(_decide(document), "X2") == "present"
    document["entry"] = [e for e in document["entry"] if not e["resource"]["id"].endswith("mri-thoracic")]
    assert _decide(document)["decision"] == "eligible"


@pytest.mark.parametrize("code", ["M80.08XA", "M8008XA", "m80.08xa", "m8008xa"])
def test_every_spelling_of_the_fracture_code_takes_the_covered_route(code):
    document = _document("icd10cm-without-dot-lower-case.json")
    vcf = next(r for r in _resources(document) if r["id"] == "ehr-icd-vcf")
    vcf["code"]["coding"][0]["code"] = code
    got = _decide(document)
    assert got["decision"] == "eligible" and got["route"] == "osteoporotic"


@pytest.mark.parametrize(("name", "condition"), [
    ("x2-sepsis-a41-9.json", "ehr-sepsis-sepsis"),
    ("x2-bacteremia-snomed.json", "ehr-bacteremia-bacteremia"),
    ("x2-surgical-site-infection-t81.json", "ehr-ssi-ssi"),
])
def test_a_systemic_or_surgical_site_infection_code_alone_excludes(name, condition):
    document = _document(name)
    got = _decide(document)
    assert _status(got, "X2") == "present"
    assert next(c for c in got["criteria"] if c["id"] == "X2")["evidence"] == [f"Condition/{condition}"]
    document["entry"] = [e for e in document["entry"] if e["resource"]["id"] != condition]
    assert _decide(document)["decision"] == "eligible"


def test_a_v2_patient_class_alone_makes_the_stay_inpatient():
    document = _document("encounter-class-v2-0004-inpatient.json")
    got = _decide(document)
    assert _status(got, "I4") == "met" and got["timeline"]["painScores"][0]["setting"] == "hospitalized"
    stay = next(r for r in _resources(document) if r["id"] == "ehr-v2class-adm")
    stay["class"]["system"] = "urn:example:local-patient-class"  # the same "I" in a vocabulary nobody knows
    assert _status(_decide(document), "I4") == "unknown"


def test_the_later_visit_is_after_the_as_of_date_and_counted():
    got = EXPORTS.evaluations("searchset-outcome-contained-medication-later-visit.json")["Patient/ehr-export"]
    assert [p["value"] for p in got["timeline"]["painScores"]] == [6.0, 7.0]
    later = evaluate_record(
        next(iter(load_document(_document("searchset-outcome-contained-medication-later-visit.json"), source="t"))),
        as_of=date(2025, 7, 10), policy=POLICY)
    assert "after-as-of" not in later["skipped"] and later["timeline"]["painScores"][-1]["value"] == 3.0


# ---------------------------------------------------------------- pain scores: the mapper's rules


def _scores(*resources: dict[str, Any]):
    return map_symptoms(record(*resources), as_of=AS_OF, episode_start=date(2025, 6, 1))["pain_scores"]


def _answer(id: str, code: str, display: str | None, *, when: str = "2025-06-10") -> dict[str, Any]:
    out = observation(id, coding("loinc", "72514-3"), effective=when)
    out["valueCodeableConcept"] = concept(coding("loinc", code, display))
    return out


@pytest.mark.parametrize(("code", "display", "value"), [
    ("LA6111-4", "0", 0.0), ("LA6114-8", "3", 3.0), ("LA10137-0", "5", 5.0), ("LA10140-4", "8", 8.0),
    ("LA13942-0", "10", 10.0),
    ("LA10140-4", None, 8.0),  # a listed code needs no display
    ("LA99999-9", "7", 7.0),  # a code not listed: its numeric display (input profile)
])
def test_loinc_answer_codes_are_read(code, display, value):
    (score,) = _scores(_answer("a", code, display))
    assert score.value == value and score.scale == "NRS"


@pytest.mark.parametrize(("code", "display"), [
    ("LA6114-8", "10"),  # LL2335-9 says LA6114-8 is "3": a contradiction is not read
    ("LA99999-9", "severe"),  # no number
    ("LA99999-9", "12"),  # off the 0-10 scale
])
def test_unreadable_or_contradictory_answers_give_no_score(code, display):
    assert _scores(_answer("a", code, display)) == ()


def test_an_ordinal_value_extension_gives_the_number():
    obs = observation("o", coding("loinc", "72514-3"), effective="2025-06-10")
    answer = coding("urn:example:pain", "severe", "Severe")
    answer["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 8}]
    obs["valueCodeableConcept"] = concept(answer)
    (score,) = _scores(obs)
    assert score.value == 8.0


def test_each_pain_component_of_a_panel_is_a_score_and_other_components_are_not():
    panel = observation("panel", coding("loinc", "38212-7", "Pain assessment panel"), effective="2025-06-10T08:00:00Z")
    panel["component"] = [
        {"code": concept(text="Pain location"), "valueString": "low back"},
        {"code": concept(coding("loinc", "72514-3")), "valueInteger": 8},
        {"code": concept(coding("loinc", "38214-3")), "valueQuantity": {"value": 65, "unit": "mm", "code": "mm"}},
        {"code": concept(coding("loinc", "8480-6")), "valueQuantity": {"value": 140, "unit": "mm[Hg]"}},
    ]
    found = _scores(panel)
    assert [(s.reference, s.value, s.scale) for s in found] == [("Observation/panel", 8.0, "NRS"),
                                                                ("Observation/panel", 6.5, "VAS")]


# ---------------------------------------------------------------- patient class (HL7 v2 table 0004)


V2 = "http://terminology.hl7.org/CodeSystem/v2-0004"


@pytest.mark.parametrize(("system", "code", "setting"), [
    (V2, "I", "hospitalized"), (V2, "E", "ambulatory"), (V2, "O", "ambulatory"), (V2, "P", "ambulatory"),
    (V2, "R", "ambulatory"), (V2, "i", "hospitalized"), ("http://hl7.org/fhir/v2/0004", "I", "hospitalized"),
    (V2, "B", "unknown"), (V2, "U", "unknown"), (V2, "N", "unknown"),
    (V2, "IMP", "unknown"),  # an ActCode in the v2 system: not guessed
    (None, "I", "unknown"),  # a bare "I": v2 only with its system
    (None, "IMP", "hospitalized"),  # a bare code is ActCode (the R4 binding), as before
])
def test_patient_class_setting(system, code, setting):
    stay = encounter("e", "AMB", start="2025-06-09", end="2025-06-12")
    stay["class"] = {"code": code, **({"system": system} if system else {})}
    obs = observation("n", coding("loinc", "72514-3"), effective="2025-06-10", value=9, encounter="Encounter/e")
    (score,) = _scores(stay, obs)
    assert score.setting == setting


# ---------------------------------------------------------------- ICD-10-CM spelling and X2 codes


@pytest.mark.parametrize(("raw", "canonical"), [
    ("M8008XA", "M80.08XA"), ("m80.08xa", "M80.08XA"), ("D65", "D65"), ("r7881", "R78.81"), ("A419", "A41.9"),
    ("T8141XA", "T81.41XA"), ("not a code", "NOT A CODE"),
])
def test_icd10cm_is_spelled_once(raw, canonical):
    assert spelled(raw) == canonical


def _condition(code: str, system: str = "icd", *, status: str = "active") -> dict[str, Any]:
    return {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
            "clinicalStatus": concept(coding("http://terminology.hl7.org/CodeSystem/condition-clinical", status)),
            "code": concept(coding(system, code))}


@pytest.mark.parametrize(("code", "system"), [
    ("A40.0", "icd"), ("A41.9", "icd"), ("A419", "icd"), ("a41.51", "icd"), ("R65.20", "icd"), ("R65.21", "icd"),
    ("R78.81", "icd"), ("R7881", "icd"), ("T81.41XA", "icd"), ("T81.44XA", "icd"), ("T81.4XXA", "icd"),
    ("91302008", "snomed"), ("5758002", "snomed"), ("433202001", "snomed"),
])
def test_systemic_and_surgical_site_infection_codes_are_x2(code, system):
    fact = map_exclusions(record(_condition(code, system)), as_of=AS_OF, sex="female")["infection"]
    assert fact.status == "present"


@pytest.mark.parametrize(("code", "status"), [("A41.9", "resolved"), ("R78.8", "active"), ("T81.3", "active"),
                                              ("R65.10", "active")])
def test_not_x2_resolved_sepsis_and_neighbouring_codes(code, status):
    """Resolved sepsis is history; R78.8- other than R78.81, T81.3 (wound disruption) and R65.1 (SIRS of
    non-infectious origin) are not infections."""
    fact = map_exclusions(record(_condition(code, status=status)), as_of=AS_OF, sex="female")["infection"]
    assert fact.status == "absent"


# ---------------------------------------------------------------- documents and attachments


def _doc(id: str, text: str | None, *, content_type: str = "text/plain", status: str = "current",
         doc_status: str | None = None, date: str = "2025-06-20T15:00:00Z", url: bool = False) -> dict[str, Any]:
    attachment: dict[str, Any] = {"contentType": content_type}
    if url:
        attachment["url"] = "Binary/b1"
    elif text is not None:
        attachment["data"] = base64.b64encode(text.encode("latin-1" if "latin" in content_type else "utf-8")).decode()
    out = {"resourceType": "DocumentReference", "id": id, "status": status, "subject": {"reference": "Patient/p1"},
           "type": concept(coding("loinc", "11506-3", "Progress note")), "date": date,
           "content": [{"attachment": attachment}]}
    if doc_status:
        out["docStatus"] = doc_status
    return out


def test_a_clinic_note_document_is_read_by_the_exclusions():
    rec = record(_doc("note", "Assessment: cord compression at T12 on today's exam."))
    assert map_exclusions(rec, as_of=AS_OF, sex="female")["myelopathy"].status == "present"


def test_a_documents_date_is_its_context_period_else_its_date():
    doc = _doc("note", "Roland-Morris 19/24", date="2025-07-20T10:00:00Z")
    facts = map_record(record(doc), as_of=AS_OF)
    assert facts.skipped.get("after-as-of") == 1 and facts.rdq.status == "unknown"
    doc["context"] = {"period": {"start": "2025-06-20T09:00:00-04:00"}}  # the visit, signed a month later
    facts = map_record(record(doc), as_of=AS_OF)
    assert "after-as-of" not in facts.skipped and facts.rdq.value == 19


def test_a_charset_is_honoured():
    doc = _doc("note", "Roland-Morris 21/24, café", content_type="text/plain; charset=latin-1")
    assert map_record(record(doc), as_of=AS_OF).rdq.value == 21


@pytest.mark.parametrize(("doc", "reason"), [
    (_doc("d", "RDQ 20", status="superseded"), "superseded"),
    (_doc("d", "RDQ 20", status="entered-in-error"), "entered-in-error"),
    (_doc("d", "RDQ 20", doc_status="entered-in-error"), "entered-in-error"),
    (_doc("d", "RDQ 20", content_type="application/pdf"), "document-without-readable-text"),
    (_doc("d", "RDQ 20", content_type="text/html"), "document-without-readable-text"),
    (_doc("d", None, url=True), "document-without-readable-text"),
])
def test_documents_set_aside_are_counted_and_unread(doc, reason):
    rec = record(doc)
    assert rec.of_type("DocumentReference") == [] and rec.skipped == Counter({reason: 1})
    assert map_record(rec, as_of=AS_OF).rdq.status == "unknown"


def test_attachments_beside_the_text_are_counted_each():
    doc = _doc("d", "RDQ 20")
    doc["content"] += [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0="}},
                       {"attachment": {"contentType": "text/plain", "url": "Binary/b2"}}]
    rec = record(doc)
    assert rec.skipped == Counter({"unsupported-attachment-type": 1, "attachment-not-inline": 1})
    assert map_record(rec, as_of=AS_OF).rdq.value == 20


# ---------------------------------------------------------------- every skipped resource accounted for


def test_the_loader_counts_what_it_used_to_drop_silently():
    eie = observation("x", coding("loinc", "72514-3"), effective="2025-06-10", value=9, status="entered-in-error")
    cancelled = {"resourceType": "ServiceRequest", "id": "s", "status": "cancelled", "intent": "order",
                 "subject": {"reference": "Patient/p1"}, "code": concept(text="DXA")}
    refuted = _condition("A41.9")
    refuted["verificationStatus"] = concept(coding("http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                   "refuted"))
    unread = {"resourceType": "Coverage", "id": "cov", "status": "active", "beneficiary": {"reference": "Patient/p1"},
              "payor": [{"display": "Medicare"}]}
    later = observation("n", coding("loinc", "72514-3"), effective="2025-07-02", value=3)
    got = evaluate_record(record(eie, cancelled, refuted, unread, later), as_of=AS_OF, policy=POLICY)
    assert got["skipped"] == {"after-as-of": 1, "cancelled": 1, "entered-in-error": 1, "refuted": 1,
                              "type-not-read": 1}


def test_nothing_skipped_is_an_empty_object():
    assert evaluate_record(record(), as_of=AS_OF, policy=POLICY)["skipped"] == {}


def test_set_aside_resources_are_counted_on_their_own_patient():
    """Two patients in one file: each record counts only what names it."""
    other = {"resourceType": "Patient", "id": "p2"}
    eie = observation("x", coding("loinc", "72514-3"), effective="2025-06-10", value=9, status="entered-in-error")
    eie2 = {**eie, "id": "y", "subject": {"reference": "Patient/p2"}}
    practitioner = {"resourceType": "Practitioner", "id": "dr"}
    records = load_document({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": r} for r in ({"resourceType": "Patient", "id": "p1"}, other, eie, eie, eie2, practitioner)]},
        source="t")
    counts = {r.patient: dict(r.skipped) for r in records}
    assert counts == {"Patient/p1": {"entered-in-error": 2}, "Patient/p2": {"entered-in-error": 1}}


def test_a_cds_hooks_record_reports_another_patients_resources_with_the_loaders_own():
    """Resources of another patient (set aside by the patient binding), a duplicate, an entered-in-error
    one and an OperationOutcome of the search: all in the evaluation's `skipped`."""
    from fhir_vcf.config import Settings
    from fhir_vcf.service.registry import fhir_client_factory
    from fhir_vcf.sources.prefetch import PREFETCH_TEMPLATES, request_record

    def pain(oid: str, subject: str, **kw: Any) -> dict[str, Any]:
        out = observation(oid, coding("loinc", "72514-3"), effective="2025-06-10", value=8, **kw)
        return {**out, "subject": {"reference": subject}}

    prefetch: dict[str, Any] = {key: {"resourceType": "Bundle", "type": "searchset"} for key in PREFETCH_TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1"}
    prefetch["observations"] = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": pain("o1", "Patient/p1")}, {"resource": pain("o1", "Patient/p1")},
        {"resource": pain("o2", "Patient/p2")}, {"resource": pain("o3", "Patient/p1", status="entered-in-error")},
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing"}]},
         "search": {"mode": "outcome"}}]}
    bound = request_record(context={"patientId": "p1"}, prefetch=prefetch, fhir_server=None, token=None,
                           client_factory=fhir_client_factory(Settings()))
    got = evaluate_record(bound, as_of=AS_OF, policy=POLICY)
    assert got["skipped"] == {"duplicate": 1, "entered-in-error": 1, "other-patient": 1, "type-not-read": 1}


def test_openapi_documents_every_skip_reason():
    """The contract names the field and each reason the code can give (openapi.yaml, Evaluation.skipped)."""
    import yaml

    from fhir_vcf import record as loader
    from fhir_vcf.sources.binding import SKIP_REASONS

    schema = yaml.safe_load((FOLDER.parent.parent / "openapi.yaml").read_text())["components"]["schemas"]
    skipped = schema["Evaluation"]["properties"]["skipped"]
    assert skipped["additionalProperties"]["type"] == "integer"
    reasons = {value for name, value in vars(loader).items() if name.isupper() and isinstance(value, str)
               and value.replace("-", "").isalpha() and value.islower()}
    assert {"entered-in-error", "superseded", "after-as-of", "type-not-read"} <= reasons
    for reason in reasons | set(SKIP_REASONS):
        assert f"`{reason}`" in skipped["description"], reason

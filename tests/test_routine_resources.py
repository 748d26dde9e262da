"""Routine resources (vital signs and everyday labs, chronic prescriptions, chronic problems) are set
aside from the JSON, unvalidated and counted (issue 11).

The screen is only safe if it never sets aside what a mapper reads. So: its codes are none of the
codes the mappers hold (ICD-10-CM prefixes included); none of its names gives any fact when read;
anything the file does not vouch for is read; and on every bundle of the repository, the evaluation
with the screen is the evaluation without it (decisions, criteria, evidence, missing documentation),
apart from the `skipped` counts.
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from fhir_vcf import record as loader
from fhir_vcf.errors import InputError
from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.mappers import codes as codes_package
from fhir_vcf.record import (
    ROUTINE_PRESCRIPTION,
    ROUTINE_PROBLEM,
    ROUTINE_RESULT,
    load_document,
    routine_reason,
)
from fhir_vcf.rules.policy import load_policies
from fhir_vcf.sources.files import bundle_files

ROOT = Path(__file__).resolve().parent.parent
ROUTINE = yaml.safe_load((ROOT / "fhir_vcf" / "routine-resources.yaml").read_text())
REASONS = (ROUTINE_RESULT, ROUTINE_PRESCRIPTION, ROUTINE_PROBLEM)
POLICY = load_policies()["cms-lcd-pva"]
AS_OF = date(2025, 6, 30)
BASE = ROOT / "samples" / "eligible-outpatient-worsening.json"
FOLDERS = [ROOT / "samples", ROOT / "samples" / "ehr-exports", *(p for p in (ROOT / "tests" / "data").iterdir()
                                                               if p.is_dir() and p.name != "assertion")]
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def heart_rate(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation", "id": "hr-1", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
                 "text": "Heart rate"},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-06-20T09:05:00Z",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    resource.update(changes)
    return resource


def lisinopril(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "MedicationRequest", "id": "rx-1", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "314076",
                                                  "display": "lisinopril 10 MG Oral Tablet"}]},
        "subject": {"reference": "Patient/p1"}, "authoredOn": "2025-01-10",
        "dosageInstruction": [{"text": "10 mg by mouth once daily"}],
    }
    resource.update(changes)
    return resource


def hypertension(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Condition", "id": "htn-1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                  "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": ICD, "code": "I10", "display": "Essential (primary) hypertension"},
                            {"system": "http://snomed.info/sct", "code": "38341003"}],
                 "text": "Essential (primary) hypertension"},
        "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2019-03-01",
    }
    resource.update(changes)
    return resource


def blood_pressure(systolic_code: str = "8480-6") -> dict[str, Any]:
    panel = heart_rate(id="bp-1", code={"coding": [{"system": "http://loinc.org", "code": "85354-9"}],
                                        "text": "Blood pressure panel"},
                       component=[
                           {"code": {"coding": [{"system": "http://loinc.org", "code": systolic_code}]},
                            "valueQuantity": {"value": 128, "unit": "mm[Hg]"}},
                           {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                            "valueQuantity": {"value": 80, "unit": "mm[Hg]"}},
                       ])
    del panel["valueQuantity"]
    return panel


def test_the_usual_routine_resources_are_recognised_with_their_reason():
    assert routine_reason(heart_rate()) == ROUTINE_RESULT
    assert routine_reason(heart_rate(code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}],
                                         "text": "  heart   RATE "})) == ROUTINE_RESULT
    assert routine_reason(blood_pressure()) == ROUTINE_RESULT
    assert routine_reason(lisinopril()) == ROUTINE_PRESCRIPTION
    assert routine_reason(hypertension()) == ROUTINE_PROBLEM


@pytest.mark.parametrize("make, change", [
    (heart_rate, {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}],
                           "text": "Heart rate: septic picture"}}),
    (heart_rate, {"code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}], "text": "Heart rate"}}),
    (heart_rate, {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"},
                                      {"system": "http://loinc.org", "code": "6301-6"}]}}),
    (heart_rate, {"code": {"coding": [{"system": "http://example.org/local", "code": "8867-4"}]}}),
    (heart_rate, {"code": {"text": "Heart rate"}}),
    (heart_rate, {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "extension": []}]}}),
    (heart_rate, {"note": [{"text": "patient febrile, blood cultures drawn"}]}),
    (heart_rate, {"valueString": "72"}),
    (heart_rate, {"bodySite": {"text": "L1"}}),
    (heart_rate, {"derivedFrom": [{"reference": "ImagingStudy/mri"}]}),
    (heart_rate, {"extension": [{"url": "http://example.org/x", "valueString": "x"}]}),
    (heart_rate, {"modifierExtension": [{"url": "http://example.org/x", "valueString": "x"}]}),
    (lisinopril, {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "314076",
                                                            "display": "lisinopril and acetaminophen"}]}}),
    (lisinopril, {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "161"}]}}),
    (lisinopril, {"medicationCodeableConcept": {"text": "lisinopril"}}),
    (lisinopril, {"medicationReference": {"reference": "Medication/m1"}, "medicationCodeableConcept": None}),
    (lisinopril, {"note": [{"text": "also taking ibuprofen"}]}),
    (lisinopril, {"reasonCode": [{"text": "back pain"}]}),
    (lisinopril, {"doNotPerform": True}),
    (hypertension, {"bodySite": [{"text": "L1"}]}),
    (hypertension, {"note": [{"text": "on warfarin"}]}),
    (hypertension, {"code": {"coding": [{"system": ICD, "code": "I10"}], "text": "Hypertension; osteoporosis"}}),
    (hypertension, {"code": {"coding": [{"system": ICD, "code": "I10"}, {"system": ICD, "code": "M81.0"}]}}),
    (hypertension, {"onsetString": "since the fracture"}),
    (hypertension, {"resourceType": "AllergyIntolerance"}),
], ids=lambda v: v.__name__ if callable(v) else next(iter(v)))
def test_anything_the_file_does_not_vouch_for_is_read(make: Callable[..., dict[str, Any]], change: dict[str, Any]):
    resource = {k: v for k, v in make(**change).items() if v is not None}
    assert routine_reason(resource) is None


def test_a_panel_with_a_component_no_routine_code_names_is_read():
    """A pain score may come as a component of a panel (input profile, "pain score")."""
    assert routine_reason(blood_pressure(systolic_code="72514-3")) is None
    panel = blood_pressure()
    panel["component"][0]["valueString"] = "8"
    assert routine_reason(panel) is None


def _strings_held(module_names: list[str]) -> set[str]:
    """Every string in the upper-case constants of the named `fhir_vcf.mappers.codes` modules."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list | tuple | set | frozenset):
            for v in value:
                walk(v)

    for name in module_names:
        module = importlib.import_module(f"{codes_package.__name__}.{name}")
        for constant, value in vars(module).items():
            if constant.isupper():
                walk(value)
    return found


def test_no_routine_code_is_a_code_the_mappers_read():
    held = _strings_held([info.name for info in pkgutil.iter_modules(codes_package.__path__)])
    assert {"72514-3", "6301-6", "82810-3", "38267-1", "161", "11289", "M8008"} <= held  # the walk sees them
    routine = [c for spec in ROUTINE.values() for c in spec["codes"]]
    assert not {c["code"] for c in routine} & held
    # ICD-10-CM families are matched by prefix (M80.0-, the O chapter, D68.-): no routine code starts one.
    prefixes = {h.replace(".", "").upper() for h in _strings_held(["icd10cm"]) if re.fullmatch(r"[A-Za-z][\w.]*", h)}
    assert {"O", "M80", "D68"} <= prefixes
    for code in (c["code"].replace(".", "") for c in routine if c["system"] == ICD):
        assert not any(code.startswith(p) for p in prefixes), code


def test_a_routine_resource_is_counted_unvalidated_and_an_invalid_one_no_longer_fails_the_record():
    bundle = json.loads(BASE.read_text())
    (before,) = load_document(copy.deepcopy(bundle), source="test")
    patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    subject = {"reference": f"Patient/{patient}"}
    bundle["entry"] += [{"resource": heart_rate(subject=subject)},
                        {"resource": heart_rate(id="hr-2", subject=subject, valueQuantity={"value": "not a number"})},
                        {"resource": lisinopril(subject=subject, authoredOn="not a date")},
                        {"resource": hypertension(subject=subject)}]
    (record,) = load_document(bundle, source="test")
    assert record.skipped[ROUTINE_RESULT] == before.skipped[ROUTINE_RESULT] + 2
    assert record.skipped[ROUTINE_PRESCRIPTION] == before.skipped[ROUTINE_PRESCRIPTION] + 1
    assert record.skipped[ROUTINE_PROBLEM] == before.skipped[ROUTINE_PROBLEM] + 1
    assert "Observation/hr-1" not in record.index and "Condition/htn-1" not in record.index
    evaluated = evaluate_record(record, as_of=AS_OF, policy=POLICY)
    assert evaluated["skipped"][ROUTINE_RESULT] == before.skipped[ROUTINE_RESULT] + 2
    # The same invalid result with a note is read, so its error is reported, naming the element.
    bundle["entry"][-3]["resource"]["note"] = [{"text": "irregular"}]
    with pytest.raises(InputError, match="valueQuantity"):
        load_document(bundle, source="test")


def _evaluations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for record in load_document(document, source="test"):
        got = evaluate_record(record, as_of=AS_OF, policy=POLICY)
        got.pop("skipped")
        found[record.patient] = got
    return found


@pytest.fixture
def screen_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    def read_everything() -> None:
        monkeypatch.setattr(loader, "routine_reason", lambda data: None)
    yield read_everything


def _named(rtype: str, i: int, system: str, code: str, name: str, subject: dict[str, str]) -> dict[str, Any]:
    """A resource of `rtype` coded `code`, with `name` as both display and text."""
    concept = {"coding": [{"system": system, "code": code, "display": name}], "text": name}
    if rtype == "Observation":
        return heart_rate(id=f"routine-{i}", subject=subject, code=concept)
    if rtype == "MedicationRequest":
        return lisinopril(id=f"routine-{i}", subject=subject, medicationCodeableConcept=concept)
    return hypertension(id=f"routine-{i}", subject=subject, code=concept)


def test_no_listed_name_gives_any_fact(screen_off):
    """Every name of the file, as the display and text of its code, read by every mapper (screen off):
    the evaluation is that of the bundle without them. (All at once: a name that gives a fact changes
    the evaluation whether it is alone or not.)"""
    bundle = json.loads(BASE.read_text())
    patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    before = _evaluations(copy.deepcopy(bundle))
    added = 0
    for rtype, spec in ROUTINE.items():
        for c in spec["codes"]:
            for name in c["names"]:
                added += 1
                bundle["entry"].append({"resource": _named(rtype, added, c["system"], c["code"], name,
                                                           {"reference": f"Patient/{patient}"})})
    screen_off()
    (record,) = load_document(copy.deepcopy(bundle), source="test")
    assert sum(len(record.of_type(t)) for t in ROUTINE) >= added  # read, not set aside
    assert _evaluations(bundle) == before


def _bundles() -> list[Path]:
    return [p for folder in FOLDERS for p in bundle_files([folder])]


def test_the_screen_changes_no_evaluation_of_any_bundle_here(screen_off):
    """Every bundle of the samples and test data, with and without the screen: the same evaluations
    (decision, criteria, evidence, missing documentation, timeline), whatever `skipped` counts."""
    documents = {p: json.loads(p.read_text()) for p in _bundles()}
    assert len(documents) > 100
    screened = {p: _evaluations(copy.deepcopy(d)) for p, d in documents.items()}
    set_aside = sum(r.skipped[reason] for d in documents.values()
                    for r in load_document(copy.deepcopy(d), source="t") for reason in REASONS)
    assert set_aside > 50  # the bundles here do carry routine resources
    screen_off()
    for path, document in documents.items():
        assert _evaluations(document) == screened[path], path.name


def _noise_as_before(data: Any) -> str | None:
    """`record._noise_in_json` as it was before its fast path for a resource without verificationStatus."""
    from collections.abc import Mapping

    status = data.get("status")
    if status == "entered-in-error":
        return loader.ENTERED_IN_ERROR
    if status == "cancelled":
        return loader.CANCELLED
    verification = data.get("verificationStatus")
    coding = verification.get("coding") if isinstance(verification, Mapping) else None
    codes = {c.get("code") for c in coding if isinstance(c, Mapping) and isinstance(c.get("code"), str)} \
        if isinstance(coding, list) else set()
    if "entered-in-error" in codes:
        return loader.ENTERED_IN_ERROR
    if "refuted" in codes:
        return loader.REFUTED
    return None


def _coded_as_before(concept: Any, routine: Any) -> bool:
    """`record._routinely_coded` as it was before it stopped building a union for one coding."""
    if type(concept) is not dict or not concept.keys() <= loader._CONCEPT_KEYS:
        return False
    codings = concept.get("coding")
    if type(codings) is not list or not codings:
        return False
    names: frozenset[str] = frozenset()
    for coding in codings:
        if type(coding) is not dict or not coding.keys() <= loader._CODING_KEYS:
            return False
        found = routine.names.get((coding.get("system"), coding.get("code")))
        display = coding.get("display")
        if found is None or (display is not None and (type(display) is not str
                                                      or loader._key_of_name(display) not in found)):
            return False
        names |= found
    text = concept.get("text")
    return text is None or (type(text) is str and loader._key_of_name(text) in names)


def test_the_screens_fast_paths_answer_as_before(monkeypatch):
    """The noise check (no verificationStatus: nothing to read) and the routine check (one coding: no
    union of names) give the answers they gave before, on every resource of every bundle here, the
    realistic records and the edge cases around them (status, verificationStatus and coding shapes)."""
    resources = [e["resource"] for p in _bundles() for e in json.loads(p.read_text()).get("entry", [])
                 if isinstance(e.get("resource"), dict)]
    resources += [heart_rate(), blood_pressure(), lisinopril(), hypertension()]
    for verification in (None, "refuted", [], {}, {"coding": None}, {"coding": [None, "refuted", {"code": 1}]},
                         {"coding": [{"code": "refuted"}]}, {"coding": [{"code": "entered-in-error"}]},
                         {"coding": [{"code": "confirmed"}, {"code": "refuted"}]}):
        resources.append(hypertension(verificationStatus=verification))
    for status in ("entered-in-error", "cancelled", "final", None, 3):
        resources.append(heart_rate(status=status))
    two_codings = {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}, {"system": ICD, "code": "I10"}]}
    resources += [hypertension(code={**two_codings, "text": text})
                  for text in ("Essential hypertension", "Hypertensive disorder", "x", 1, None)]
    now = [(loader._noise_in_json(r), routine_reason(r)) for r in resources]
    monkeypatch.setattr(loader, "_noise_in_json", _noise_as_before)
    monkeypatch.setattr(loader, "_routinely_coded", _coded_as_before)
    before = [(loader._noise_in_json(r), routine_reason(r)) for r in resources]
    assert now == before
    answers = {answer for pair in now for answer in pair}
    assert {None, loader.ENTERED_IN_ERROR, loader.CANCELLED, loader.REFUTED, *REASONS} <= answers


class _Text(str):
    """A str subclass: the screen asks `type(...) is str`, so it must not read as the plain text."""


class _Coding(dict):
    """A dict subclass: the screen asks `type(...) is dict`, so it must not read as the plain coding."""


def test_a_concept_met_again_is_screened_exactly_as_when_screened_each_time():
    """`_routinely_coded` remembers its answer by the concept's JSON text (`_Routine.coded`): on every
    concept the screen reaches in every bundle here and the realistic records, and at the edges (what
    Python calls equal and orjson writes apart, null and NaN, subclasses, key order, an integer past 64
    bits), screening three times in turn from memory gives what the screen gives each time without it."""
    resources = [e["resource"] for p in _bundles() for e in json.loads(p.read_text()).get("entry", [])
                 if isinstance(e.get("resource"), dict)]
    resources += [heart_rate(), blood_pressure(), lisinopril(), hypertension()]
    coding = {"system": "http://loinc.org", "code": "8867-4"}
    edges: list[Any] = [1, 1.0, True, "1", None, float("nan"), 10**30, "Heart rate", _Text("Heart rate"), "Pulse"]
    for value in edges + edges[::-1]:
        resources.append(heart_rate(code={"coding": [{**coding, "display": value}]}))
        resources.append(heart_rate(code={"coding": [{**coding, "display": "Heart rate"}], "text": value}))
    resources += [heart_rate(code={"coding": [_Coding(coding)]}), heart_rate(code={"coding": [coding]}),
                  heart_rate(code={"text": "Heart rate", "coding": [{"code": "8867-4", "system": "http://loinc.org"}]}),
                  heart_rate(code={"coding": [coding], "text": "Heart rate"}), heart_rate(code={"coding": [coding, 1]})]
    routines = [(loader._ROUTINE[r["resourceType"]], r) for r in resources if r.get("resourceType") in loader._ROUTINE]
    concepts = [(routine, r.get(routine.concept)) for routine, r in routines]
    concepts += [(routine, c.get("code")) for routine, r in routines for c in r.get("component") or ()
                 if isinstance(c, dict)]
    assert len(concepts) > 1000
    for routine in loader._ROUTINE.values():
        routine.coded.clear()  # nothing met before
    remembered = [[loader._routinely_coded(concept, routine) for routine, concept in concepts] for _ in range(3)]
    each_time = [type(concept) is dict and loader._coded(concept, routine) for routine, concept in concepts]
    assert remembered == [each_time] * 3
    assert True in each_time and False in each_time
    assert sum(len(routine.coded) for routine in loader._ROUTINE.values()) > 20  # the second and third from memory


def test_concepts_met_are_remembered_boundedly(monkeypatch):
    monkeypatch.setattr(loader, "_CODED_LIMIT", 5)
    routine = loader._ROUTINE["Observation"]
    routine.coded.clear()
    for i in range(23):
        assert not loader._routinely_coded({"coding": [{"system": "http://loinc.org", "code": f"x{i}"}]}, routine)
    assert 0 < len(routine.coded) <= 5

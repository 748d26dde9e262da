"""Routine results (vital signs, everyday labs) are set aside from the JSON, unvalidated (issue 11).

The screen is only safe if it never sets aside what a mapper reads. So: its codes are none of the
codes the mappers hold; none of its names gives any fact when read; anything the file does not vouch
for is read; and on every bundle of the repository, the evaluation with the screen is the evaluation
without it (decisions, criteria, evidence, missing documentation), apart from the `skipped` counts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from fhir_vcf import record as loader
from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.mappers import codes as codes_package
from fhir_vcf.record import ROUTINE_RESULT, load_document, routine_result
from fhir_vcf.rules.policy import load_policies
from fhir_vcf.sources.files import bundle_files

ROOT = Path(__file__).resolve().parent.parent
ROUTINE = yaml.safe_load((ROOT / "fhir_vcf" / "routine-results.yaml").read_text())
POLICY = load_policies()["cms-lcd-pva"]
AS_OF = date(2025, 6, 30)
BASE = ROOT / "samples" / "eligible-outpatient-worsening.json"
FOLDERS = [ROOT / "samples", ROOT / "samples" / "ehr-exports", *(p for p in (ROOT / "tests" / "data").iterdir()
                                                               if p.is_dir() and p.name != "assertion")]


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


def blood_pressure(systolic_code: str = "8480-6") -> dict[str, Any]:
    return heart_rate(
        id="bp-1",
        code={"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "Blood pressure panel"},
        valueQuantity=None,
        component=[
            {"code": {"coding": [{"system": "http://loinc.org", "code": systolic_code}]},
             "valueQuantity": {"value": 128, "unit": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "unit": "mm[Hg]"}},
        ],
    ) | {"valueQuantity": None}


def _without_nones(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v is not None}


def test_the_usual_vital_signs_and_a_blood_pressure_panel_are_routine():
    assert routine_result(heart_rate())
    assert routine_result(heart_rate(code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}))
    assert routine_result(heart_rate(code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}],
                                           "text": "  heart   RATE "}))
    assert routine_result(_without_nones(blood_pressure()))


@pytest.mark.parametrize("change", [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate: septic picture"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}], "text": "Heart rate"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"},
                         {"system": "http://loinc.org", "code": "6301-6"}]}},
    {"code": {"coding": [{"system": "http://example.org/local", "code": "8867-4"}]}},
    {"code": {"text": "Heart rate"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "extension": []}]}},
    {"note": [{"text": "patient febrile, blood cultures drawn"}]},
    {"valueString": "72"},
    {"bodySite": {"text": "L1"}},
    {"derivedFrom": [{"reference": "ImagingStudy/mri"}]},
    {"extension": [{"url": "http://example.org/x", "valueString": "x"}]},
    {"modifierExtension": [{"url": "http://example.org/x", "valueString": "x"}]},
    {"resourceType": "Condition"},
], ids=lambda c: next(iter(c)))
def test_anything_the_file_does_not_vouch_for_is_read(change):
    assert not routine_result(heart_rate(**change))


def test_a_panel_with_a_component_no_routine_code_names_is_read():
    """A pain score may come as a component of a panel (input profile, "pain score")."""
    assert not routine_result(_without_nones(blood_pressure(systolic_code="72514-3")))
    panel = _without_nones(blood_pressure())
    panel["component"][0]["valueString"] = "8"
    assert not routine_result(panel)


def _codes_the_mappers_hold() -> set[str]:
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

    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(codes_package.__path__):
        module = importlib.import_module(f"{codes_package.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.isupper():
                walk(value)
    return found


def test_no_routine_code_is_a_code_the_mappers_read():
    held = _codes_the_mappers_hold()
    assert {"72514-3", "6301-6", "82810-3", "38267-1"} <= held  # the walk sees the codes it must
    assert not {c["code"] for c in ROUTINE["codes"]} & held


def test_a_routine_result_is_counted_unvalidated_and_an_invalid_one_no_longer_fails_the_record():
    bundle = json.loads(BASE.read_text())
    (before,) = load_document(copy.deepcopy(bundle), source="test")
    patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    bundle["entry"].append({"resource": heart_rate(subject={"reference": f"Patient/{patient}"})})
    bundle["entry"].append({"resource": heart_rate(id="hr-2", subject={"reference": f"Patient/{patient}"},
                                                   valueQuantity={"value": "not a number"})})
    (record,) = load_document(bundle, source="test")
    assert record.skipped[ROUTINE_RESULT] == before.skipped[ROUTINE_RESULT] + 2
    assert "Observation/hr-1" not in record.index
    evaluated = evaluate_record(record, as_of=AS_OF, policy=POLICY)
    assert evaluated["skipped"][ROUTINE_RESULT] == before.skipped[ROUTINE_RESULT] + 2
    # The same invalid result with a note is read, so its error is reported, naming the element.
    bundle["entry"][-1]["resource"]["note"] = [{"text": "irregular"}]
    from fhir_vcf.errors import InputError

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
def screen_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def read_everything() -> None:
        monkeypatch.setattr(loader, "routine_result", lambda data: False)
    yield read_everything


def _names() -> list[tuple[str, str]]:
    return [(c["code"], name) for c in ROUTINE["codes"] for name in c["names"]]


def test_no_listed_name_gives_any_fact(screen_off):
    """Every name of the file, as the text of its code, read by every mapper (screen off): the
    evaluation is that of the bundle without it. (One bundle with all of them, then each alone would
    be redundant: a name that gives a fact changes the evaluation in either case.)"""
    bundle = json.loads(BASE.read_text())
    patient = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    before = _evaluations(copy.deepcopy(bundle))
    for i, (code, name) in enumerate(_names()):
        bundle["entry"].append({"resource": heart_rate(
            id=f"routine-{i}", subject={"reference": f"Patient/{patient}"},
            code={"coding": [{"system": "http://loinc.org", "code": code, "display": name}], "text": name})})
    screen_off()
    (record,) = load_document(copy.deepcopy(bundle), source="test")
    assert len(record.of_type("Observation")) >= len(_names())  # read, not set aside
    assert _evaluations(bundle) == before


def _bundles() -> list[Path]:
    return [p for folder in FOLDERS for p in bundle_files([folder])]


def test_the_screen_changes_no_evaluation_of_any_bundle_here(screen_off):
    """Every bundle of the samples and test data, with and without the screen: the same evaluations
    (decision, criteria, evidence, missing documentation, timeline), whatever `skipped` counts."""
    documents = {p: json.loads(p.read_text()) for p in _bundles()}
    assert len(documents) > 100
    screened = {p: _evaluations(copy.deepcopy(d)) for p, d in documents.items()}
    set_aside = sum(r.skipped[ROUTINE_RESULT] for d in documents.values()
                    for r in load_document(copy.deepcopy(d), source="t"))
    assert set_aside > 50  # the bundles here do carry routine results
    screen_off()
    for path, document in documents.items():
        assert _evaluations(document) == screened[path], path.name

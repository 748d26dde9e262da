"""Replay every sample Bundle through the real core and compare with samples/expected.json.

The expected decisions were reasoned from docs clinical-rules.md (each has a "why"), not copied from
the core's output: a failure here means the core or the sample is wrong, never "update expected".
The coverage tests make sure the samples keep exercising every decision and every exclusion.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_vcf.sources.files import bundle_files, load_file

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = json.loads((SAMPLES / "expected.json").read_text())
AS_OF = date(2025, 6, 30)  # every sample is written for this date
FILES = [p.name for p in bundle_files([SAMPLES])]
DECISIONS = {"eligible", "not-eligible", "needs-review", "insufficient-data"}
EXCLUSIONS = [f"X{n}" for n in range(1, 12)]


@cache
def evaluations(name: str) -> dict[str, dict[str, Any]]:
    """patient → evaluation object, for one sample file (computed once per test session)."""
    from fhir_vcf.evaluation import evaluate_records
    from fhir_vcf.rules.policy import load_policies

    policy = load_policies()["cms-lcd-pva"]
    results = evaluate_records(load_file(SAMPLES / name), as_of=AS_OF, policy=policy)
    return {e["patient"]: e for e in results}


# ---------------------------------------------------------------- static: the samples and expected.json agree


def test_expected_lists_every_sample_and_nothing_else():
    assert sorted(EXPECTED) == sorted(FILES)
    assert len(FILES) >= 14


@pytest.mark.parametrize("name", FILES)
def test_expected_lists_every_patient_of_the_sample(name):
    records = load_file(SAMPLES / name)
    assert sorted(r.patient for r in records) == sorted(EXPECTED[name])
    for patient, expected in EXPECTED[name].items():
        assert expected["decision"] in DECISIONS, patient
        assert isinstance(expected["levels"], list) and expected["levels"], patient
        assert expected.get("why"), f"{name} {patient}: say why"


def test_samples_use_several_bundle_types_and_one_holds_two_patients():
    types = {json.loads((SAMPLES / n).read_text())["type"] for n in FILES}
    assert {"collection", "searchset", "transaction"} <= types
    assert any(len(patients) == 2 for patients in EXPECTED.values())


def test_expected_covers_every_decision():
    assert {e["decision"] for patients in EXPECTED.values() for e in patients.values()} == DECISIONS


# ---------------------------------------------------------------- replay through the core


@pytest.mark.parametrize("name", FILES)
def test_sample_decision_and_levels(name):
    actual = evaluations(name)
    assert sorted(actual) == sorted(EXPECTED[name])
    for patient, expected in EXPECTED[name].items():
        got = actual[patient]
        summary = {c["id"]: c["status"] for c in got.get("criteria", [])}
        context = f"{name} {patient}: expected {expected['decision']} ({expected['why']}); criteria {summary}"
        assert got["decision"] == expected["decision"], context
        assert got["levels"] == expected["levels"], context
        if "technique" in expected:
            assert got["technique"] == expected["technique"], context
        assert got["asOf"] == AS_OF.isoformat()


def test_samples_together_exercise_every_decision():
    seen = {e["decision"] for name in FILES for e in evaluations(name).values()}
    assert seen == DECISIONS


@pytest.mark.parametrize("exclusion", EXCLUSIONS)
def test_samples_together_exercise_every_exclusion(exclusion):
    """Each exclusion is found present in at least one sample, read from the evaluation's criteria."""
    where = [
        name
        for name in FILES
        for e in evaluations(name).values()
        for c in e.get("criteria", [])
        if c["id"] == exclusion and c["status"] == "present"
    ]
    assert where, f"no sample has {exclusion} present"

"""Replay every sample Bundle through the real core and compare with samples/expected.json.

The expected decisions were reasoned from docs clinical-rules.md (each has a "why"), not copied from
the core's output: a failure here means the core or the sample is wrong, never "update expected".
The coverage tests make sure the samples keep exercising every decision and every exclusion.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from expected_bundles import DECISIONS, ExpectedFolder

from fhir_vcf.sources.files import load_file

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SAMPLES = ExpectedFolder(SAMPLES_DIR)
EXPECTED = SAMPLES.expected
FILES = SAMPLES.files
evaluations = SAMPLES.evaluations
EXCLUSIONS = [f"X{n}" for n in range(1, 12)]


# ---------------------------------------------------------------- static: the samples and expected.json agree


def test_expected_lists_every_sample_and_nothing_else():
    SAMPLES.check_the_listing()
    assert len(FILES) >= 14


@pytest.mark.parametrize("name", FILES)
def test_expected_lists_every_patient_of_the_sample(name):
    records = load_file(SAMPLES_DIR / name)
    assert sorted(r.patient for r in records) == sorted(EXPECTED[name])
    for patient, expected in EXPECTED[name].items():
        assert expected["decision"] in DECISIONS, patient
        assert isinstance(expected["levels"], list) and expected["levels"], patient
        assert expected.get("why"), f"{name} {patient}: say why"


def test_samples_use_several_bundle_types_and_one_holds_two_patients():
    types = {json.loads((SAMPLES_DIR / n).read_text())["type"] for n in FILES}
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
        context = SAMPLES.context(name, patient)
        assert got["decision"] == expected["decision"], context
        assert got["levels"] == expected["levels"], context
        if "technique" in expected:
            assert got["technique"] == expected["technique"], context
        assert got["asOf"] == expected["asOf"]


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

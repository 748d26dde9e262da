"""Replay realistic EHR-export bundles (tests/data/realistic) and compare with their expected.json.

The bundles look like what an EHR really exports (Synthea-style transactions with urn:uuid references,
vendor searchsets), full of resources the rules never read, long sectioned radiology reports with the
usual abbreviations, several encounters, product-level RxNorm codes, resolved old fractures and a
`meta.lastUpdated` after the as-of date. Each expectation was reasoned from clinical-rules.md and
input-profile.md before the core ran (tests/data/realistic/make_fixtures.py rewrites the folder).
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_vcf.sources.files import load_file

REALISTIC = Path(__file__).resolve().parent / "data" / "realistic"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = json.loads((REALISTIC / "expected.json").read_text())
AS_OF = date(2025, 6, 30)
FILES = sorted(p.name for p in REALISTIC.glob("*.json") if p.name != "expected.json")
CASES = [(name, patient) for name in FILES for patient in EXPECTED.get(name, {})]


@cache
def evaluations(name: str) -> dict[str, dict[str, Any]]:
    from fhir_vcf.evaluation import evaluate_records
    from fhir_vcf.rules.policy import load_policies

    policy = load_policies()["cms-lcd-pva"]
    return {e["patient"]: e for e in evaluate_records(load_file(REALISTIC / name), as_of=AS_OF, policy=policy)}


def test_every_fixture_is_expected_and_the_set_covers_every_decision():
    assert sorted(EXPECTED) == FILES
    assert len(FILES) >= 20
    decisions = {e["decision"] for patients in EXPECTED.values() for e in patients.values()}
    assert decisions == {"eligible", "not-eligible", "needs-review", "insufficient-data"}
    for name, patients in EXPECTED.items():
        assert sorted(evaluations(name)) == sorted(patients), name
        for patient, expected in patients.items():
            assert expected.get("why"), f"{name} {patient}: say why"


@pytest.mark.parametrize(("name", "patient"), CASES, ids=[f"{n}:{p}" for n, p in CASES])
def test_realistic_decision_and_levels(name, patient):
    expected = EXPECTED[name][patient]
    got = evaluations(name)[patient]
    summary = {c["id"]: c["status"] for c in got["criteria"]}
    context = (f"{name} {patient}: expected {expected['decision']} ({expected['why']}); got {got['decision']} "
               f"({got['decisionReason']}); criteria {summary}; missing {got['missing']}")
    assert got["decision"] == expected["decision"], context
    assert got["levels"] == expected["levels"], context
    for word in expected.get("missing", ()):
        assert any(word.lower() in item.lower() for item in got["missing"]), (context, got["missing"])


def test_meta_last_updated_after_the_as_of_date_hides_nothing():
    """Every resource says lastUpdated 2025-07-14: were it read as a date, every record would be empty."""
    got = evaluations("synthea-inpatient-l1-nrs9.json")["Patient/rx-abbott"]
    assert got["decision"] == "eligible"
    evidence = {ref for c in got["criteria"] for ref in c["evidence"]}
    assert any(ref.startswith("Observation/") for ref in evidence)


def test_the_cli_gives_the_same_decisions_and_levels(capsys):
    """The product promise, on the realistic exports: `fhir-vcf evaluate <dir> --as-of 2025-06-30 --format json`."""
    from fhir_vcf.cli import main

    code = main(["evaluate", str(REALISTIC), "--as-of", AS_OF.isoformat(), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    got = {e["patient"]: (e["decision"], e["levels"]) for e in map(json.loads, out.splitlines())}
    want = {p: (e["decision"], e["levels"]) for patients in EXPECTED.values() for p, e in patients.items()}
    assert got == want

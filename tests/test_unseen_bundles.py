"""Replay bundles the core was never written against (tests/data/unseen) and compare with their expected.json.

The fixtures vary what samples/ does not: the "also accept" column of the input profile for every
fact (onsetPeriod / onsetString / recordedDate, "Th12" / "T-12" / ranges / lists, display-only series
body sites, report text only, SNOMED edema, VAS in mm, Encounter found by period, the old ActCode URI,
brand names, CMS HCPCS URI, T-score Observations, ...), every boundary of the clinical rules, and the
three Bundle shapes (transaction with urn:uuid, searchset with absolute URLs, a bare resource).
Each expectation was reasoned from docs clinical-rules.md / input-profile.md before the core ran.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_vcf.sources.files import load_file

UNSEEN = Path(__file__).resolve().parent / "data" / "unseen"
EXPECTED: dict[str, dict[str, dict[str, Any]]] = json.loads((UNSEEN / "expected.json").read_text())
AS_OF = date(2025, 6, 30)
FILES = sorted(p.name for p in UNSEEN.glob("*.json") if p.name != "expected.json")
CASES = [(name, patient) for name in FILES for patient in EXPECTED.get(name, {})]


@cache
def evaluations(name: str) -> dict[str, dict[str, Any]]:
    from fhir_vcf.evaluation import evaluate_records
    from fhir_vcf.rules.policy import load_policies

    policy = load_policies()["cms-lcd-pva"]
    return {e["patient"]: e for e in evaluate_records(load_file(UNSEEN / name), as_of=AS_OF, policy=policy)}


def test_expected_lists_every_fixture_and_each_says_why():
    assert sorted(EXPECTED) == FILES
    assert len(FILES) >= 20
    for name, patients in EXPECTED.items():
        assert sorted(evaluations(name)) == sorted(patients), name
        for patient, expected in patients.items():
            assert expected["decision"] in {"eligible", "not-eligible", "needs-review", "insufficient-data"}
            assert expected.get("why"), f"{name} {patient}: say why"


@pytest.mark.parametrize(("name", "patient"), CASES, ids=[f"{n}:{p}" for n, p in CASES])
def test_unseen_decision_and_levels(name, patient):
    expected = EXPECTED[name][patient]
    got = evaluations(name)[patient]
    summary = {c["id"]: c["status"] for c in got["criteria"]}
    context = f"{name} {patient}: expected {expected['decision']} ({expected['why']}); got {got['decision']} " \
              f"({got['decisionReason']}); criteria {summary}"
    assert got["decision"] == expected["decision"], context
    assert got["levels"] == expected["levels"], context
    if "technique" in expected:
        assert got["technique"] == expected["technique"], context
    if "request_technique" in expected:
        assert got["request"]["technique"] == expected["request_technique"], context
    if "flag" in expected:
        assert any(expected["flag"].lower() in f.lower() for f in got["flags"]), (context, got["flags"])
    if "message" in expected:
        said = " ".join([got["decisionReason"], *got["missing"]])
        assert expected["message"] in said, (context, said)


def test_the_cli_gives_the_same_decisions_and_levels(capsys):
    """The product promise: `fhir-vcf evaluate <dir> --as-of 2025-06-30 --format json` on these bundles."""
    from fhir_vcf.cli import main

    code = main(["evaluate", str(UNSEEN), "--as-of", AS_OF.isoformat(), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    got = {e["patient"]: (e["decision"], e["levels"]) for e in map(json.loads, out.splitlines())}
    want = {p: (e["decision"], e["levels"]) for patients in EXPECTED.values() for p, e in patients.items()}
    assert got == want

"""A folder of Bundle files with an expected.json beside it, replayed through the real core.

Three folders use it: samples/ (the demo and the README's examples), tests/data/unseen (the "also
accept" forms of the input profile and every rule boundary) and tests/data/realistic (EHR exports).
Each expectation states its decision, levels, as-of date and why, reasoned from the clinical rules
before the core ran: a failure means the core or the bundle is wrong, never "update expected.json".
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from fhir_vcf.sources.files import bundle_files, load_file

DECISIONS = {"eligible", "not-eligible", "needs-review", "insufficient-data"}


class ExpectedFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.expected: dict[str, dict[str, dict[str, Any]]] = json.loads((folder / "expected.json").read_text())
        self.files = [p.name for p in bundle_files([folder])]
        self.cases = [(name, patient) for name in self.files for patient in self.expected.get(name, {})]
        self.evaluations = cache(self._evaluate)

    def _evaluate(self, name: str) -> dict[str, dict[str, Any]]:
        """patient → evaluation object for one file, as of each patient's expected date."""
        from fhir_vcf.evaluation import evaluate_record
        from fhir_vcf.rules.policy import load_policies

        policy = load_policies()["cms-lcd-pva"]
        found = {}
        for record in load_file(self.folder / name):
            as_of = date.fromisoformat(self.expected.get(name, {}).get(record.patient, {}).get("asOf", "2025-06-30"))
            found[record.patient] = evaluate_record(record, as_of=as_of, policy=policy)
        return found

    def context(self, name: str, patient: str) -> str:
        """What a failing assertion should say: the expectation, its reason, and what the core said."""
        expected, got = self.expected[name][patient], self.evaluations(name)[patient]
        summary = {c["id"]: c["status"] for c in got["criteria"]}
        return (f"{name} {patient}: expected {expected['decision']} ({expected.get('why')}); got {got['decision']} "
                f"({got['decisionReason']}); criteria {summary}; missing {got['missing']}")

    def assert_case(self, name: str, patient: str) -> None:
        """The decision and levels as expected, and each optional expectation the entry states."""
        expected, got = self.expected[name][patient], self.evaluations(name)[patient]
        context = self.context(name, patient)
        assert (got["decision"], got["levels"]) == (expected["decision"], expected["levels"]), context
        for words in expected.get("missing", ()):
            assert any(words.lower() in item.lower() for item in got["missing"]), (context, got["missing"])
        if "skipped" in expected:
            assert got["skipped"] == expected["skipped"], context
        if "technique" in expected:
            assert got["technique"] == expected["technique"], context
        if "request_technique" in expected:
            assert got["request"]["technique"] == expected["request_technique"], context
        if "flag" in expected:
            assert any(expected["flag"].lower() in f.lower() for f in got["flags"]), (context, got["flags"])
        if "message" in expected:
            said = " ".join([got["decisionReason"], *got["missing"]])
            assert expected["message"] in said, (context, said)

    def check_the_listing(self) -> None:
        """expected.json names every file and every patient in it, each with a decision, asOf and why."""
        assert sorted(self.expected) == sorted(self.files)
        for name, patients in self.expected.items():
            assert sorted(self.evaluations(name)) == sorted(patients), name
            for patient, expected in patients.items():
                assert expected["decision"] in DECISIONS, f"{name} {patient}"
                assert expected.get("asOf"), f"{name} {patient}: say as of when"
                assert expected.get("why"), f"{name} {patient}: say why"

    def cli_matches(self, capsys: Any) -> None:
        """`fhir-vcf evaluate <folder> --as-of 2025-06-30 --format json` gives the expected decisions."""
        from fhir_vcf.cli import main

        code = main(["evaluate", str(self.folder), "--as-of", "2025-06-30", "--format", "json"])
        assert code == 0
        lines = capsys.readouterr().out.splitlines()
        got = {e["patient"]: (e["decision"], e["levels"]) for e in map(json.loads, lines)}
        want = {p: (e["decision"], e["levels"]) for patients in self.expected.values() for p, e in patients.items()}
        assert got == want

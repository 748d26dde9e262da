"""Replay realistic EHR-export bundles (tests/data/realistic) and compare with their expected.json.

The bundles look like what an EHR really exports (Synthea-style transactions with urn:uuid references,
vendor searchsets), full of resources the rules never read, long sectioned radiology reports with the
usual abbreviations, several encounters, product-level RxNorm codes, resolved old fractures and a
`meta.lastUpdated` after the as-of date. Each expectation was reasoned from clinical-rules.md and
input-profile.md before the core ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from expected_bundles import DECISIONS, ExpectedFolder

REALISTIC = ExpectedFolder(Path(__file__).resolve().parent / "data" / "realistic")


def test_every_fixture_is_expected_and_the_set_covers_every_decision():
    REALISTIC.check_the_listing()
    assert len(REALISTIC.files) >= 20
    assert {e["decision"] for patients in REALISTIC.expected.values() for e in patients.values()} == DECISIONS


@pytest.mark.parametrize(("name", "patient"), REALISTIC.cases, ids=[f"{n}:{p}" for n, p in REALISTIC.cases])
def test_realistic_decision_and_levels(name, patient):
    REALISTIC.assert_case(name, patient)


def test_meta_last_updated_after_the_as_of_date_hides_nothing():
    """Every resource says lastUpdated 2025-07-14: were it read as a date, every record would be empty."""
    got = REALISTIC.evaluations("synthea-inpatient-l1-nrs9.json")["Patient/rx-abbott"]
    assert got["decision"] == "eligible"
    evidence = {ref for c in got["criteria"] for ref in c["evidence"]}
    assert any(ref.startswith("Observation/") for ref in evidence)


def test_the_cli_gives_the_same_decisions_and_levels(capsys):
    """The product promise, on the realistic exports: `fhir-vcf evaluate <dir> --as-of 2025-06-30 --format json`."""
    REALISTIC.cli_matches(capsys)

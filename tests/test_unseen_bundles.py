"""Replay bundles the core was never written against (tests/data/unseen) and compare with their expected.json.

The fixtures vary what samples/ does not: the "also accept" column of the input profile for every
fact (onsetPeriod / onsetString / recordedDate, "Th12" / "T-12" / ranges / lists, display-only series
body sites, report text only, SNOMED edema, VAS in mm, Encounter found by period, the old ActCode URI,
brand names, CMS HCPCS URI, T-score Observations, ...), every boundary of the clinical rules, and the
three Bundle shapes (transaction with urn:uuid, searchset with absolute URLs, a bare resource).
Each expectation was reasoned from clinical-rules.md / input-profile.md before the core ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from expected_bundles import ExpectedFolder

UNSEEN = ExpectedFolder(Path(__file__).resolve().parent / "data" / "unseen")
# A third round, shaped like EHR exports, each record at its own as-of date (README beside it).
EXPORTS = ExpectedFolder(Path(__file__).resolve().parent / "data" / "unseen-exports")


def test_expected_lists_every_fixture_and_each_says_why():
    UNSEEN.check_the_listing()
    assert len(UNSEEN.files) >= 20


@pytest.mark.parametrize(("name", "patient"), UNSEEN.cases, ids=[f"{n}:{p}" for n, p in UNSEEN.cases])
def test_unseen_decision_and_levels(name, patient):
    UNSEEN.assert_case(name, patient)


def test_the_cli_gives_the_same_decisions_and_levels(capsys):
    """The product promise: `fhir-vcf evaluate <dir> --as-of 2025-06-30 --format json` on these bundles."""
    UNSEEN.cli_matches(capsys)


def test_the_export_shaped_round_lists_every_record_and_says_why():
    EXPORTS.check_the_listing()
    assert len(EXPORTS.files) == 24


@pytest.mark.parametrize(("name", "patient"), EXPORTS.cases, ids=[n for n, _ in EXPORTS.cases])
def test_export_shaped_decision_and_levels(name, patient):
    EXPORTS.assert_case(name, patient)

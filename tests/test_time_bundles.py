"""Replay tiny export-shaped bundles whose answer turns on time (tests/data/dates) against their expected.json.

Mixed UTC offsets near midnight, partial onsets straddling 42 and 84 days, an onset age, an onset period
with an end only, pain scores and INRs hours apart in different offsets (issue 9, items 1, 2 and 5).
Each expectation was reasoned from clinical-rules.md (I1, I4, X6) and the input profile's "Dates and
times" before the core ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from expected_bundles import ExpectedFolder

DATES = ExpectedFolder(Path(__file__).resolve().parent / "data" / "dates")


def test_expected_lists_every_fixture_and_each_says_why():
    DATES.check_the_listing()


@pytest.mark.parametrize(("name", "patient"), DATES.cases, ids=[f"{n}:{p}" for n, p in DATES.cases])
def test_time_decides_as_the_rules_say(name, patient):
    DATES.assert_case(name, patient)


def test_the_cli_gives_the_same_decisions(capsys):
    DATES.cli_matches(capsys)


def test_a_range_onset_is_drawn_as_a_range_on_the_timeline():
    onset = DATES.evaluations("onset-april-2025-straddles-84.json")["Patient/partial-april"]["timeline"]["onset"]
    assert onset == [{"date": "2025-04-01", "dateTo": "2025-04-30", "written": "2025-04", "levels": ["T12"],
                      "references": ["Condition/vcf"]}]


def test_a_range_onset_reads_as_a_range_and_draws_no_windows():
    from fhir_vcf.outputs.timeline import timeline_items

    evaluation = DATES.evaluations("onset-age-80-straddles-84.json")["Patient/age-80"]
    assert "windows" not in evaluation["timeline"]  # acute/subacute spans from an unknown day would mislead
    onset = [what for _, what, _ in timeline_items(evaluation) if what.startswith("Symptom onset")]
    assert onset == ["Symptom onset T12, between 2025-03-01 and 2026-02-28 (age 80 years)"]

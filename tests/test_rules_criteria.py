"""Inclusion criteria I1-I5 under cms-lcd-pva, with the boundaries of clinical-rules.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from factories import AS_OF, absent, eligible, ev, fracture, per_level, request, score, two_levels
from rules_support import crit, run

from fhir_vcf.clinical_time import DayRange
from fhir_vcf.facts import Fact, FractureFacts, Status

# ---------------------------------------------------------------- I1 fracture age


@pytest.mark.parametrize(("days", "status", "word"), [
    (0, "met", "acute"), (41, "met", "acute"), (42, "met", "subacute"), (84, "met", "subacute"),
    (85, "not-met", "chronic"), (200, "not-met", "chronic"),
])
def test_i1_age_boundaries(days, status, word):
    onset = AS_OF - timedelta(days=days)
    j = run(eligible(**per_level(("T12",), onset=onset)))
    c = crit(j, "I1")
    assert c.status == status
    assert f"onset {onset.isoformat()}, {days} days before the as-of date: {word}" in c.reason
    assert j.decision == ("eligible" if status == "met" else "not-eligible")


def test_i1_reason_matches_the_contract_example():
    assert crit(run(eligible()), "I1").reason == "onset 2025-06-02, 28 days before the as-of date: acute"


def test_i1_recorded_date_is_judged_but_flagged():
    facts = eligible(fractures=(fracture("T12", onset_element="recordedDate"),))
    j = run(facts)
    assert crit(j, "I1").status == "met"
    assert any("onset taken from the recorded date" in f for f in j.flags)
    assert "recorded date 2025-06-02" in crit(j, "I1").reason


def test_i1_recorded_date_from_fact_note():
    onset = {"T12": Fact.present(DayRange.day(date(2025, 6, 2)), note="recorded date used, no onset documented")}
    j = run(eligible(onset=onset))
    assert any("recorded date" in f for f in j.flags)


def test_i1_conflict_gives_needs_review():
    onset = {"T12": Fact.conflict("radiograph 2025-01-10 shows the fracture before the onset",
                                  ev("DiagnosticReport/xr", "effectiveDateTime"))}
    j = run(eligible(onset=onset))
    assert crit(j, "I1").status == "conflict"
    assert "DiagnosticReport/xr" in crit(j, "I1").references
    assert j.decision == "needs-review"


def test_i1_unknown_onset_is_missing_data():
    j = run(eligible(onset={"T12": Fact.unknown()}))
    assert crit(j, "I1").status == "unknown"
    assert j.decision == "insufficient-data"
    assert any("onset date of the T12 fracture" in m for m in j.missing)


def test_i1_onset_after_as_of_is_a_conflict():
    j = run(eligible(**per_level(("T12",), onset=AS_OF + timedelta(days=3))))
    assert crit(j, "I1").status == "conflict"


def test_i1_judged_per_level_one_chronic_level_fails_the_request():
    facts = two_levels(onset={"T12": Fact.present(DayRange.day(date(2025, 6, 2))),
                              "L1": Fact.present(DayRange.day(date(2025, 3, 1)))})
    c = crit(run(facts), "I1")
    assert c.status == "not-met"
    assert "T12: onset 2025-06-02" in c.reason and "L1: onset 2025-03-01, 121 days" in c.reason


# ---------------------------------------------------------------- I2 level


def _at(level: str, **kw) -> FractureFacts:
    return eligible(fractures=(fracture(level),), **per_level((level,)), **kw)


def test_i2_t3_is_inside_with_a_flag():
    j = run(_at("T3"))
    assert crit(j, "I2").status == "met"
    assert "T1-T4 level: may trigger focused medical review" in j.flags
    assert j.decision == "eligible"


@pytest.mark.parametrize("level", ["C7", "S1"])
def test_i2_cervical_and_sacral_are_not_met(level):
    j = run(_at(level))
    assert crit(j, "I2").status == "not-met"
    assert f"{level} outside T1-L5" in crit(j, "I2").reason
    assert j.decision == "not-eligible"
    assert j.levels == (level,)


def test_i2_requested_level_without_a_documented_fracture():
    facts = eligible(request=request("T12", "L2"), **per_level(("T12", "L2")))
    c = crit(run(facts), "I2")
    assert c.status == "not-met"
    assert "L2 requested but no fracture documented at L2" in c.reason


def test_i2_requested_level_with_an_unlevelled_fracture_is_unknown():
    facts = eligible(fractures=(fracture("T12", levels=()),), request=request("T12"))
    c = crit(run(facts), "I2")
    assert c.status == "unknown"


def test_i2_no_level_at_all_is_unknown():
    j = run(eligible(fractures=(fracture("T12", levels=()),), onset={}, acuity={}, height_loss={}))
    assert crit(j, "I2").status == "unknown"
    assert j.decision == "insufficient-data"
    assert j.levels == ()


# ---------------------------------------------------------------- I3 acuity


def test_i3_increased_uptake_is_met():
    facts = eligible(**per_level(("T12",), acuity="increased-uptake"))
    c = crit(run(facts), "I3")
    assert c.status == "met" and "increased uptake" in c.reason


def test_i3_mri_without_edema_is_not_met():
    j = run(eligible(acuity={"T12": Fact.absent(ev("DiagnosticReport/mri"), value="no-edema")}))
    assert crit(j, "I3").status == "not-met"
    assert j.decision == "not-eligible"


def test_i3_radiograph_only_is_unknown_with_the_fix():
    j = run(eligible(acuity={"T12": Fact(Status.UNKNOWN, "radiograph-only", (ev("ImagingStudy/xr"),))}))
    c = crit(j, "I3")
    assert c.status == "unknown"
    assert c.reason == "radiograph/CT shows the fracture, not its acuity: MRI with STIR or bone scan needed"
    assert j.decision == "insufficient-data"
    assert "MRI with STIR or bone scan showing acuity at T12" in j.missing


def test_i3_advanced_imaging_that_states_no_acuity_says_so_and_asks_for_the_report_statement():
    """An MRI of T12 is on file but nothing states edema or its absence: "no MRI" would be false and
    "get an MRI" the wrong request; the clinician needs the report's statement on marrow edema."""
    fact = Fact.unknown("advanced imaging of T12 with no statement of marrow edema or uptake: MR 2025-06-05",
                        ev("ImagingStudy/mri"))
    j = run(eligible(acuity={"T12": fact}))
    c = crit(j, "I3")
    assert c.status == "unknown" and "no MRI" not in c.reason
    assert "ImagingStudy/mri" in c.reason
    assert any("marrow edema" in m and "ImagingStudy/mri" in m and "T12" in m for m in j.missing), j.missing


def test_i3_conflict():
    j = run(eligible(acuity={"T12": Fact.conflict("MRI edema but report says healed")}))
    assert crit(j, "I3").status == "conflict"
    assert j.decision == "needs-review"


def test_i3_unassigned_finding_is_named():
    facts = two_levels(acuity={"T12": Fact.present("marrow-edema"), "L1": Fact.unknown()},
                       acuity_unassigned=(Fact.present("marrow-edema", ev("DiagnosticReport/mri-2")),))
    j = run(facts)
    assert crit(j, "I3").status == "unknown"
    assert any("DiagnosticReport/mri-2" in m for m in j.missing)


# ---------------------------------------------------------------- I4 symptoms

D1, D2, D3 = date(2025, 6, 5), date(2025, 6, 15), date(2025, 6, 25)


def _scores(*values: float, setting: str = "ambulatory") -> tuple:
    days = [D3 - timedelta(days=10 * (len(values) - 1 - i)) for i in range(len(values))]
    return tuple(score(v, d, setting=setting) for v, d in zip(values, days, strict=True))


@pytest.mark.parametrize(("value", "status"), [(7, "not-met"), (8, "met"), (10, "met")])
def test_i4a_hospitalized_threshold(value, status):
    j = run(eligible(pain_scores=_scores(value, setting="hospitalized")))
    assert crit(j, "I4").status == status


def test_i4a_hospitalized_5_to_7_meets_neither_path_even_when_worsening():
    j = run(eligible(pain_scores=_scores(5, 6, setting="hospitalized")))
    assert crit(j, "I4").status == "not-met"
    assert j.decision == "not-eligible"


@pytest.mark.parametrize(("values", "status"), [((3, 4), "not-met"), ((4, 5), "met"), ((2, 9), "met")])
def test_i4b_outpatient_threshold_with_worsening(values, status):
    assert crit(run(eligible(pain_scores=_scores(*values))), "I4").status == status


def test_i4b_worsening_compares_within_one_scale():
    scores = (score(6, D1, scale="NRS"), score(8, D2, scale="VAS"), score(7, D3, scale="NRS"))
    c = crit(run(eligible(pain_scores=scores)), "I4")
    assert c.status == "met" and "worsening (6 -> 7)" in c.reason


def _stable(**kw) -> FractureFacts:
    """NRS 7 -> 7 (stable), no supporting finding unless given."""
    base = dict(pain_scores=_scores(7, 7), kyphosis=absent(), progression=absent(),
                rdq=Fact.present(10), **per_level(("T12",), height=20.0))
    base.update(kw)
    return eligible(**base)


def test_i4b_stable_with_two_supporting_findings_is_met():
    facts = _stable(kyphosis=Fact.present(True), rdq=Fact.present(19))
    c = crit(run(facts), "I4")
    assert c.status == "met" and "2 supporting findings" in c.reason


@pytest.mark.parametrize(("height", "status"), [(25.0, "not-met"), (26.0, "met")])
def test_i4b_height_loss_boundary(height, status):
    facts = _stable(kyphosis=Fact.present(True), **per_level(("T12",), height=height))
    assert crit(run(facts), "I4").status == status


@pytest.mark.parametrize(("rdq", "status"), [(17, "not-met"), (18, "met")])
def test_i4b_rdq_boundary(rdq, status):
    facts = _stable(progression=Fact.present(True), rdq=Fact.present(rdq))
    assert crit(run(facts), "I4").status == status


def test_i4b_improved_with_one_supporting_finding_is_not_met():
    facts = _stable(pain_scores=_scores(8, 6), kyphosis=Fact.present(True))
    c = crit(run(facts), "I4")
    assert c.status == "not-met"
    assert "improved (8 -> 6)" in c.reason


def test_i4b_unknown_supporting_that_could_tip_is_unknown():
    facts = _stable(kyphosis=Fact.present(True), rdq=Fact.unknown())
    j = run(facts)
    assert crit(j, "I4").status == "unknown"
    assert j.decision == "insufficient-data"
    assert any("Roland-Morris" in m for m in j.missing)


def test_i4b_missing_says_how_many_of_the_open_supporting_findings_are_needed():
    """Two needed, none documented, three open: three separate bullets would read as "all three";
    the clinician must see that any two of them (or a worsening score) will do."""
    facts = _stable(progression=Fact.unknown(), kyphosis=Fact.unknown(), rdq=Fact.unknown(),
                    **per_level(("T12",), height=None))
    j = run(facts)
    assert crit(j, "I4").status == "unknown"
    (ask,) = [m for m in j.missing if "Roland-Morris" in m]
    assert "2 of" in ask and "kyphotic" in ask and "height loss" in ask


def test_i4b_single_score_leaves_worsening_open():
    j = run(_stable(pain_scores=_scores(7)))
    assert crit(j, "I4").status == "unknown"
    assert any("repeat pain score (LOINC 72514-3)" in m for m in j.missing)


def test_i4b_score_at_5_with_nsm_unknown_is_unknown():
    j = run(eligible(pain_scores=_scores(4, 5), nsm=Fact.unknown()))
    assert crit(j, "I4").status == "unknown"
    assert any("non-surgical management" in m for m in j.missing)


def test_i4b_nsm_absent_is_not_met():
    assert crit(run(eligible(nsm=Fact.absent())), "I4").status == "not-met"


def test_i4_no_pain_score_is_unknown():
    j = run(eligible(pain_scores=()))
    assert crit(j, "I4").status == "unknown"
    assert "a pain score (LOINC 72514-3, NRS 0-10) after the fracture" in j.missing


def test_i4_observation_stay_where_paths_disagree_needs_review():
    j = run(eligible(pain_scores=_scores(5, 6, setting="observation")))
    assert crit(j, "I4").status == "conflict"
    assert "observation stay (OBSENC)" in crit(j, "I4").reason
    assert j.decision == "needs-review"


def test_i4_observation_stay_goes_to_review_even_when_both_paths_are_met():
    """Input profile: OBSENC → needs review. Only a score that fails both paths is decided."""
    j = run(eligible(pain_scores=_scores(8, 9, setting="observation")))
    assert crit(j, "I4").status == "conflict"
    assert j.decision == "needs-review"
    assert crit(run(eligible(pain_scores=_scores(3, setting="observation"))), "I4").status == "not-met"


def test_i4_setting_unknown_and_paths_disagree_is_unknown():
    j = run(eligible(pain_scores=_scores(5, 6, setting="unknown")))
    assert crit(j, "I4").status == "unknown"
    assert any("encounter" in m for m in j.missing)


# ---------------------------------------------------------------- I5 continuum of care


@pytest.mark.parametrize("name", ["dxa", "osteoporosis_program"])
@pytest.mark.parametrize("fact", [Fact.unknown(), Fact.absent()])
def test_i5_missing_half_is_insufficient_data_not_a_denial(name, fact):
    j = run(eligible(**{name: fact}))
    assert crit(j, "I5").status == "unknown"
    assert j.decision == "insufficient-data"
    expected = "DXA referral" if name == "dxa" else "osteoporosis treatment or education program"
    assert any(expected in m for m in j.missing)


def test_i5_names_the_dxa_code():
    assert "a DXA referral or result (CPT 77080)" in run(eligible(dxa=Fact.unknown())).missing


# ---------------------------------------------------------------- commercial NSM duration (policy data)


def _commercial(**kw) -> FractureFacts:
    base = eligible(pain_scores=_scores(7, 8))
    return replace(base, **kw)


def test_commercial_nsm_duration_unprovable_is_unknown():
    j = run(_commercial(), "commercial-strict")
    assert crit(j, "I4").status == "unknown"
    assert any("start date of non-surgical management (28 days required)" in m for m in j.missing)


@pytest.mark.parametrize(("days", "status"), [(27, "not-met"), (28, "met")])
def test_commercial_nsm_duration_when_the_start_is_known(days, status):
    facts = _commercial(nsm_start=Fact.present(DayRange.day(AS_OF - timedelta(days=days))))
    assert crit(run(facts, "commercial-strict"), "I4").status == status


@pytest.mark.parametrize(
    ("first", "last", "status"),
    # 28 days of NSM required (commercial-strict); as of 2025-06-30.
    [(date(2025, 5, 1), date(2025, 5, 31), "met"),  # 30-60 days: enough on every day
     (date(2025, 6, 1), date(2025, 6, 30), "unknown"),  # 0-29 days: the exact start decides
     (date(2025, 6, 10), date(2025, 6, 20), "not-met")],  # 10-20 days: too short on every day
)
def test_commercial_nsm_duration_from_a_start_known_as_a_range(first, last, status):
    facts = _commercial(nsm_start=Fact.present(DayRange(first, last, "a month")))
    j = run(facts, "commercial-strict")
    assert crit(j, "I4").status == status, crit(j, "I4").reason
    if status == "unknown":
        assert any("exact start date of non-surgical management" in m for m in j.missing), j.missing

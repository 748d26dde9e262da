"""Decision precedence, levels, technique advice, and policies that differ by data only."""

from __future__ import annotations

import pytest
from factories import absent, eligible, ev, fracture, per_level, request, score, two_levels
from rules_support import crit, run

from fhir_vcf.facts import Fact

# ---------------------------------------------------------------- precedence


def test_not_met_beats_conflict_and_unknown():
    facts = eligible(infection=Fact.present(True), pregnancy=Fact.conflict("male"), dxa=Fact.unknown())
    j = run(facts)
    assert j.decision == "not-eligible"
    assert "X2 present" in j.decision_reason
    assert j.missing == ()


def test_conflict_beats_unknown():
    j = run(eligible(pregnancy=Fact.conflict("male"), dxa=Fact.unknown()))
    assert j.decision == "needs-review"
    assert "a DXA referral or result (CPT 77080)" in j.missing


def test_unknown_only_is_insufficient_with_every_missing_item():
    j = run(eligible(dxa=Fact.unknown(), acuity={"T12": Fact.unknown()}, pain_scores=()))
    assert j.decision == "insufficient-data"
    assert set(j.missing) >= {"a DXA referral or result (CPT 77080)",
                              "MRI with STIR or bone scan showing acuity at T12",
                              "a pain score (LOINC 72514-3, NRS 0-10) after the fracture"}


def test_eligible_has_nothing_missing():
    j = run(eligible())
    assert j.decision == "eligible" and j.missing == ()


def test_every_criterion_has_the_contract_fields():
    j = run(two_levels(dxa=Fact.unknown()))
    for c in j.criteria:
        assert c.id and c.title and c.reason and c.source, c
        assert c.kind in {"inclusion", "exclusion", "scope"}
        allowed = {"present", "absent", "unknown", "conflict"} if c.kind == "exclusion" else {
            "met", "not-met", "unknown", "conflict"}
        assert c.status in allowed


# ---------------------------------------------------------------- levels


def test_levels_come_from_the_request_head_to_foot():
    facts = two_levels(request=request("L1", "T12"))
    assert run(facts).levels == ("T12", "L1")


def test_levels_fall_back_to_fracture_levels():
    assert run(two_levels(request=None)).levels == ("T12", "L1")


def test_request_without_levels_is_judged_on_fracture_levels_with_a_flag():
    j = run(eligible(request=request(count=1)))
    assert j.levels == ("T12",)
    assert any("names no level" in f for f in j.flags)


# ---------------------------------------------------------------- technique


def test_kyphoplasty_for_height_loss_over_25():
    j = run(eligible(kyphosis=absent(), **per_level(("T12",), height=30.0)))
    assert j.technique == "kyphoplasty" and "T12 30 % > 25 %" in j.technique_reason


@pytest.mark.parametrize("progression", [absent(), Fact.unknown()])
def test_vertebroplasty_for_a_simple_fracture(progression):
    j = run(eligible(kyphosis=absent(), progression=progression, **per_level(("T12",), height=25.0)))
    assert j.technique == "vertebroplasty"
    assert "no height restoration needed" in j.technique_reason


@pytest.mark.parametrize("finding", ["kyphosis", "progression"])
def test_kyphosis_or_progression_favours_kyphoplasty_even_with_little_height_loss(finding):
    facts = eligible(**{"kyphosis": absent(), "progression": absent(), finding: Fact.present(True)},
                     **per_level(("T12",), height=20.0))
    assert run(facts).technique == "kyphoplasty"


def test_either_when_the_record_does_not_favour_one():
    j = run(eligible(kyphosis=Fact.unknown(), height_loss={}))
    assert j.technique == "either" and "height loss not documented at T12" in j.technique_reason


def test_none_when_not_eligible():
    j = run(eligible(infection=Fact.present(True)))
    assert j.technique == "none" and j.technique_reason


def test_vertebra_plana_is_flagged():
    j = run(eligible(vertebra_plana=Fact.present(True, ev("Observation/plana"))))
    assert any("vertebra plana" in f for f in j.flags)


def test_requested_technique_differing_from_advice_is_flagged():
    facts = eligible(request=request("T12", technique="vertebroplasty"))
    j = run(facts)
    assert j.technique == "kyphoplasty"
    assert "vertebroplasty requested; the record favours kyphoplasty" in j.flags


# ---------------------------------------------------------------- policies differ by data only


def test_commercial_outpatient_threshold_is_7():
    facts = eligible(pain_scores=(score(5, eligible().pain_scores[0].when.day),
                                  score(6, eligible().pain_scores[1].when.day)))
    assert run(facts).decision == "eligible"
    assert crit(run(facts, "commercial-strict"), "I4").status == "not-met"


def test_commercial_range_is_t5_to_l5():
    facts = eligible(fractures=(fracture("T4"),), **per_level(("T4",)))
    assert crit(run(facts), "I2").status == "met"
    assert crit(run(facts, "commercial-strict"), "I2").status == "not-met"


@pytest.mark.parametrize(("value", "decision"), [(7, "eligible"), (6, "not-eligible")])
def test_nice_severe_pain_without_trend_or_continuum(value, decision):
    facts = eligible(pain_scores=(score(value, eligible().pain_scores[1].when.day),), dxa=Fact.unknown(),
                     kyphosis=absent(), height_loss={})
    j = run(facts, "nice-ta279")
    assert j.decision == decision
    assert all(c.id != "I5" for c in j.criteria)


def test_nice_has_no_malignant_route():
    facts = eligible(fractures=(fracture("T12", kind="pathologic", code="M84.58XA"),),
                     malignancy=Fact.present(("C90.00",)))
    assert run(facts).route == "malignant"
    assert run(facts, "nice-ta279").decision == "needs-review"


def test_nice_has_no_deleted_cpt_route_but_lcd_has():
    facts = eligible(request=request("T12", cpt=("22520",), deleted=("22520",)))
    assert run(facts).decision == "needs-review"
    assert run(facts, "nice-ta279").decision == "eligible"


def test_old_healed_fracture_is_flagged_not_decided():
    j = run(eligible(healed=Fact.present(True, ev("Condition/old", "code", "Z87.310"))))
    assert j.decision == "eligible"
    assert any("old healed vertebral fracture" in f and "Condition/old" in f for f in j.flags)


def test_missing_lists_the_fracture_first_when_there_is_none():
    j = run(eligible(fractures=(), onset={}, acuity={}, height_loss={}, pain_scores=(), dxa=Fact.unknown()))
    assert j.decision == "insufficient-data"
    assert j.missing[0].startswith("a documented vertebral compression fracture")
    assert "a pain score (LOINC 72514-3, NRS 0-10) after the fracture" in j.missing


def test_judge_is_deterministic():
    facts = two_levels(dxa=Fact.unknown())
    assert run(facts) == run(facts)


def test_nice_sets_no_level_limit():
    levels = ("T11", "T12", "L1", "L2")
    facts = eligible(fractures=tuple(fracture(lv) for lv in levels), **per_level(levels), request=request(*levels),
                     pain_scores=(score(8, eligible().pain_scores[1].when.day),))
    assert run(facts).decision == "not-eligible"
    j = run(facts, "nice-ta279")
    assert all(c.id != "X4" for c in j.criteria)
    assert j.decision == "eligible"


def test_a_source_conflict_says_what_to_resolve():
    j = run(eligible(pregnancy=Fact.conflict("pregnancy coded on a male patient")))
    assert j.decision == "needs-review"
    assert any(m.startswith("resolve X3 (pregnancy)") and "male" in m for m in j.missing)

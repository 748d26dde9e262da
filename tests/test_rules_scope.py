"""S1 coding routes: osteoporotic, malignant (A56572), review, traumatic, deleted CPT, no fracture."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import AS_OF, absent, eligible, ev, fracture, per_level, request
from rules_support import crit, run

from fhir_vcf.facts import Fact


@pytest.mark.parametrize("code", ["M80.08XA", "M80.88XA", "M80.08XS", "M80.88XS"])
def test_osteoporotic_codes_take_the_osteoporotic_route(code):
    j = run(eligible(fractures=(fracture("T12", code=code),)))
    assert crit(j, "S1").status == "met"
    assert j.route == "osteoporotic" and j.decision == "eligible"


def test_sequela_still_needs_onset_and_imaging_acuity():
    j = run(eligible(fractures=(fracture("T12", code="M80.08XS"),), acuity={"T12": Fact.unknown()}))
    assert "sequela" in crit(j, "S1").reason
    assert j.decision == "insufficient-data"


@pytest.mark.parametrize("seventh", ["D", "G", "K", "P"])
def test_m80_subsequent_encounter_needs_review(seventh):
    j = run(eligible(fractures=(fracture("T12", code=f"M80.08X{seventh}"),)))
    c = crit(j, "S1")
    assert c.status == "conflict" and c.review
    assert f"7th character {seventh}" in c.reason
    assert j.route == "review" and j.decision == "needs-review"


def _malignant(**kw):
    base = dict(fractures=(fracture("T12", kind="pathologic", code="M84.58XA"),), osteoporosis=absent(),
                malignancy=Fact.present(("C90.00",), ev("Condition/myeloma", "code", "C90.00")),
                myeloma=Fact.present(True))
    base.update(kw)
    return eligible(**base)


def test_malignant_route_sets_aside_age_continuum_and_nrs_thresholds():
    facts = _malignant(**per_level(("T12",), onset=AS_OF - timedelta(days=200)), dxa=Fact.unknown(),
                       osteoporosis_program=Fact.unknown(), pain_scores=(eligible().pain_scores[0],))
    j = run(facts)
    assert j.route == "malignant"
    assert crit(j, "I1").applied is False and crit(j, "I1").status == "met"
    assert crit(j, "I5").applied is False
    assert crit(j, "I4").status == "met" and "A56572" in crit(j, "I4").source
    assert j.decision == "eligible"


def test_malignant_route_still_needs_pain_unresponsive_to_medical_therapy():
    assert run(_malignant(nsm=Fact.unknown())).decision == "insufficient-data"
    assert run(_malignant(nsm=Fact.absent())).decision == "not-eligible"


def test_malignant_route_still_applies_exclusions_and_acuity():
    assert run(_malignant(infection=Fact.present(True))).decision == "not-eligible"
    assert run(_malignant(acuity={"T12": Fact.absent(value="no-edema")})).decision == "not-eligible"


def test_m84_with_an_unlisted_neoplasm_needs_review():
    j = run(_malignant(malignancy=Fact.present(("C79.52",))))
    assert j.route == "review" and "not in the malignant group" in crit(j, "S1").reason


def test_m84_without_a_neoplasm_needs_review():
    j = run(_malignant(malignancy=absent(), myeloma=absent()))
    assert j.decision == "needs-review" and "without a neoplasm code" in crit(j, "S1").reason


def test_neoplasm_without_the_m84_pair_needs_review():
    facts = eligible(fractures=(fracture("L2", kind="compression", code="42942008", system="snomed"),),
                     **per_level(("L2",)), malignancy=Fact.present(("C79.51",)))
    j = run(facts)
    assert j.decision == "needs-review"
    assert "C79.51" in crit(j, "S1").reason and "M84.58XA" in crit(j, "S1").reason


def test_a_neoplasm_under_review_is_not_denied_on_a_window_the_malignant_route_sets_aside():
    """Myeloma coded without the M84.58X- pair, onset 120 days ago: the osteoporotic age window says
    chronic, the malignant route (A56572) has no window. Recoding decides, so: review, not denial."""
    facts = eligible(fractures=(fracture("L2", kind="pathologic", code="pathologic fracture", system="text"),),
                     **per_level(("L2",), onset=AS_OF - timedelta(days=120)), malignancy=Fact.present(("C90.00",)),
                     myeloma=Fact.present(True))
    j = run(facts)
    assert j.route == "review"
    assert j.decision == "needs-review"
    assert crit(j, "I1").status == "conflict"
    assert "osteoporotic route not-met" in crit(j, "I1").reason


def test_a_neoplasm_under_review_is_still_denied_by_what_both_routes_refuse():
    """An exclusion both routes apply (discitis) still denies."""
    facts = eligible(fractures=(fracture("L2", kind="pathologic", code="pathologic fracture", system="text"),),
                     **per_level(("L2",)), malignancy=Fact.present(("C90.00",)), myeloma=Fact.present(True),
                     infection=Fact.present(True, ev("Condition/discitis")))
    j = run(facts)
    assert j.decision == "not-eligible" and crit(j, "X2").status == "present"


def test_m48_with_osteoporosis_needs_review():
    j = run(eligible(fractures=(fracture("T12", kind="collapsed-nec", code="M48.56XA"),)))
    assert j.decision == "needs-review"
    assert "should" in crit(j, "S1").reason or "code M80.08XA" in crit(j, "S1").reason


@pytest.mark.parametrize("kind", ["hemangioma", "other"])
def test_non_osteoporotic_non_malignant_indications_need_review(kind):
    j = run(eligible(fractures=(fracture("T12", kind=kind, code="D18.09"),)))
    assert j.decision == "needs-review" and j.route == "review"


def test_traumatic_without_osteoporosis_is_not_eligible():
    j = run(eligible(fractures=(fracture("L1", kind="traumatic", code="S32.010A"),), **per_level(("L1",)),
                     osteoporosis=absent()))
    assert crit(j, "S1").status == "not-met"
    assert j.route == "traumatic" and j.decision == "not-eligible"


def test_traumatic_code_with_osteoporosis_needs_review():
    j = run(eligible(fractures=(fracture("L1", kind="traumatic", code="S32.010A"),), **per_level(("L1",))))
    assert j.decision == "needs-review"


def test_snomed_compression_with_osteoporosis_is_osteoporotic():
    facts = eligible(fractures=(fracture("T12", kind="compression", code="42942008", system="snomed"),))
    j = run(facts)
    assert j.route == "osteoporotic" and j.decision == "eligible"


def test_text_only_osteoporotic_fracture_is_osteoporotic():
    facts = eligible(fractures=(fracture("T12", kind="osteoporotic", code=""),))
    assert run(facts).decision == "eligible"


def test_plain_compression_fracture_without_etiology_needs_review():
    facts = eligible(fractures=(fracture("T12", kind="compression", code="42942008", system="snomed"),),
                     osteoporosis=absent())
    j = run(facts)
    assert j.decision == "needs-review" and "etiology undocumented" in crit(j, "S1").reason


def test_deleted_cpt_on_the_request_needs_review_with_the_code_named():
    j = run(eligible(request=request("T12", cpt=("22520",), deleted=("22520",))))
    assert j.decision == "needs-review"
    # The fracture's own coding is not what is wrong: the reason names its route, then the order's code.
    assert crit(j, "S1").reason == ("osteoporotic route: M80.08XA; CPT 22520 on the request was deleted: "
                                    "order 22510-22515 instead")
    assert j.missing == ("a coding/scope review: M80.08XA; CPT 22520 on the request was deleted: "
                         "order 22510-22515 instead",)


def test_no_fracture_at_all_is_insufficient_data():
    j = run(eligible(fractures=(), onset={}, acuity={}, height_loss={}))
    assert j.decision == "insufficient-data"
    assert j.missing[0].startswith("a documented vertebral compression fracture")
    assert j.levels == () and j.technique == "none"


def test_an_unrelated_traumatic_fracture_at_another_level_does_not_decide():
    fractures = (fracture("T12"), fracture("L4", kind="traumatic", code="S32.040A"))
    facts = eligible(fractures=fractures, request=request("T12"))
    assert run(facts).decision == "eligible"

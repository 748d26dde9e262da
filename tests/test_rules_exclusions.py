"""Exclusions X1-X11: kinds, statuses, the level limit and its myeloma waiver, INR, anticoagulants."""

from __future__ import annotations

import pytest
from factories import absent, eligible, ev, fracture, per_level, request
from rules_support import crit, policy, run

from fhir_vcf.facts import Coding, Fact, Method

FACT_EXCLUSIONS = {
    "X1": "pain_elsewhere", "X2": "infection", "X3": "pregnancy", "X5": "cement_allergy", "X6": "coagulopathy",
    "X7": "instability", "X8": "myelopathy", "X9": "neurologic_deficit", "X10": "neural_impingement",
    "X11": "retropulsion",
}


def test_the_baseline_has_every_exclusion_absent():
    j = run(eligible())
    assert [c.id for c in j.criteria if c.kind == "exclusion"] == [f"X{n}" for n in range(1, 12)]
    assert all(c.status == "absent" for c in j.criteria if c.kind == "exclusion")


@pytest.mark.parametrize(("xid", "fact"), FACT_EXCLUSIONS.items())
def test_each_exclusion_present_makes_not_eligible(xid, fact):
    j = run(eligible(**{fact: Fact.present(True, ev(f"Condition/{fact}", "code", "coded"))}))
    c = crit(j, xid)
    assert c.status == "present"
    assert f"Condition/{fact}" in c.references
    assert j.decision == "not-eligible"
    assert j.technique == "none"


@pytest.mark.parametrize(("xid", "kind"), [("X1", "absolute"), ("X3", "absolute"), ("X4", "relative"),
                                           ("X11", "relative")])
def test_kind_is_labelled(xid, kind):
    assert crit(run(eligible()), xid).exclusion_kind == kind


def test_conflicting_exclusion_needs_review():
    j = run(eligible(sex="male", pregnancy=Fact.conflict("pregnancy code on a male patient", ev("Condition/preg"))))
    assert crit(j, "X3").status == "conflict"
    assert j.decision == "needs-review"


def test_unknown_exclusion_is_missing_data():
    j = run(eligible(instability=Fact.unknown()))
    assert crit(j, "X7").status == "unknown"
    assert j.decision == "insufficient-data"
    assert any("spinal instability" in m for m in j.missing)


# ---------------------------------------------------------------- X4 level count


def _levels(*levels: str, **kw):
    return eligible(fractures=tuple(fracture(lv) for lv in levels), **per_level(levels),
                    request=request(*levels), **kw)


def test_x4_three_levels_is_absent_four_is_present():
    assert crit(run(_levels("T11", "T12", "L1")), "X4").status == "absent"
    j = run(_levels("T11", "T12", "L1", "L2"))
    assert crit(j, "X4").status == "present"
    assert "4 levels requested: more than 3" in crit(j, "X4").reason
    assert j.decision == "not-eligible"


def test_x4_counts_cpt_add_on_quantity_when_levels_are_fewer():
    facts = eligible(request=request("T12", count=4))
    assert crit(run(facts), "X4").status == "present"


def test_x4_commercial_limit_is_two():
    assert crit(run(_levels("T12", "L1", "L2"), "commercial-strict"), "X4").status == "present"


def _malignant(*levels: str, neoplasm: str = "C90.00"):
    fractures = tuple(fracture(lv, kind="pathologic", code="M84.58XA") for lv in levels)
    cancer = Fact.present((neoplasm,), ev("Condition/cancer", "code", neoplasm))
    return eligible(fractures=fractures, **per_level(levels), request=request(*levels),
                    osteoporosis=absent(), malignancy=cancer,
                    myeloma=Fact.present(True) if neoplasm.startswith("C90") else absent())


def test_x4_waived_for_myeloma_on_the_malignant_route():
    j = run(_malignant("T10", "T11", "T12", "L1"))
    assert j.route == "malignant"
    c = crit(j, "X4")
    assert c.status == "absent" and "waived for C90.00" in c.reason
    assert j.decision == "eligible"


def test_x4_not_waived_for_metastasis():
    j = run(_malignant("T10", "T11", "T12", "L1", neoplasm="C79.51"))
    assert j.route == "malignant"
    assert crit(j, "X4").status == "present"


def test_x4_myeloma_does_not_waive_off_the_malignant_route():
    j = run(_levels("T11", "T12", "L1", "L2", myeloma=Fact.present(True)))
    assert crit(j, "X4").status == "present"


# ---------------------------------------------------------------- X6 coagulation


@pytest.mark.parametrize(("inr", "status"), [(1.5, "absent"), (1.6, "present"), (2.6, "present"), (1.0, "absent")])
def test_x6_inr_limit_comes_from_the_policy(inr, status):
    c = crit(run(eligible(inr=Fact.present(inr, ev("Observation/inr")))), "X6")
    assert c.status == status
    if status == "present":
        assert f"INR {inr:g} > 1.5" in c.reason


def test_x6_normal_inr_settles_an_unknown_coagulopathy():
    assert crit(run(eligible(coagulopathy=Fact.unknown(), inr=Fact.present(1.1))), "X6").status == "absent"


def test_x6_nothing_known_is_unknown_with_the_inr_named():
    j = run(eligible(coagulopathy=Fact.unknown(), inr=Fact.unknown()))
    assert crit(j, "X6").status == "unknown"
    assert any("6301-6" in m for m in j.missing)


def test_anticoagulant_alone_is_a_flag_not_an_exclusion():
    j = run(eligible(anticoagulants=Fact.present(("warfarin",), ev("MedicationRequest/warfarin"))))
    assert crit(j, "X6").status == "absent"
    assert j.decision == "eligible"
    assert "on anticoagulant (warfarin): plan peri-procedural management" in j.flags


def test_x6_limit_lives_in_the_policy():
    assert policy().exclusion("coagulation").limit.value == 1.5


def test_commercial_vertebra_plana_exclusion_is_data():
    facts = eligible(vertebra_plana=Fact.present(True, ev("Observation/plana")))
    assert crit(run(facts, "commercial-strict"), "X12").status == "present"
    lcd = run(facts)
    assert all(c.id != "X12" for c in lcd.criteria)
    assert any("vertebra plana" in f for f in lcd.flags)


def test_unused_coding_is_ignored():
    # a SNOMED code on the fracture alongside ICD-10-CM does not change exclusions
    fr = fracture("T12")
    fr = type(fr)(**{**fr.__dict__, "codes": (*fr.codes, Coding("snomed", "42942008"))})
    assert run(eligible(fractures=(fr,))).decision == "eligible"
    assert fr.method is Method.CODE

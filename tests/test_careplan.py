"""The evaluation object (public contract) and its proposed CarePlan (validated with the R4B model)."""

from __future__ import annotations

import hashlib
import json

import pytest
from factories import absent, eligible, fracture, per_level, request, two_levels
from fhir.resources.R4B.careplan import CarePlan
from rules_support import policy, run

from fhir_vcf.facts import Fact, FractureFacts
from fhir_vcf.outputs import render_evaluation
from fhir_vcf.outputs.careplan import careplan_identifier

CPT = "http://www.ama-assn.org/go/cpt"
CONTRACT = {"patient", "asOf", "policy", "decision", "technique", "levels", "criteria", "missing", "flags",
            "carePlan"}


def evaluate(facts: FractureFacts, name: str = "cms-lcd-pva") -> dict:
    return render_evaluation(run(facts, name), facts, policy(name))


def _empties(node, path="$"):
    if node in ("", [], {}, None):
        yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _empties(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _empties(v, f"{path}[{i}]")


def _cpt_codes(plan: dict) -> list[str]:
    return [c["code"] for a in plan.get("activity", []) for c in a["detail"]["code"].get("coding", [])
            if c["system"] == CPT]


CASES = {
    "eligible": two_levels(),
    "not-eligible": eligible(infection=Fact.present(True)),
    "needs-review": eligible(pregnancy=Fact.conflict("pregnancy code on a male patient")),
    "insufficient-data": eligible(acuity={"T12": Fact.unknown()}, pain_scores=(), dxa=Fact.unknown()),
    "no-fracture": eligible(fractures=(), onset={}, acuity={}, height_loss={}),
    "either": eligible(kyphosis=Fact.unknown(), height_loss={}),
    "anticoagulated": eligible(anticoagulants=Fact.present(("apixaban",))),
}


@pytest.mark.parametrize("case", CASES)
def test_careplan_validates_and_has_no_empty_values(case):
    e = evaluate(CASES[case])
    plan = e["carePlan"]
    CarePlan.model_validate(plan)
    assert list(_empties(plan)) == []
    assert plan["status"] == "draft" and plan["intent"] == "proposal"
    assert plan["subject"] == {"reference": "Patient/123"}
    assert plan["activity"]
    for activity in plan["activity"]:
        detail = activity["detail"]
        assert detail["kind"] == "ServiceRequest" and detail["status"] == "not-started"
        assert detail["description"] and detail["code"]["text"]
    json.dumps(e)


@pytest.mark.parametrize("case", CASES)
def test_evaluation_has_the_contract_fields(case):
    e = evaluate(CASES[case])
    assert set(e) >= CONTRACT
    assert e["patient"] == "Patient/123" and e["asOf"] == "2025-06-30" and e["policy"] == "cms-lcd-pva"
    assert e["decision"] in {"eligible", "not-eligible", "needs-review", "insufficient-data"}
    assert e["technique"] in {"kyphoplasty", "vertebroplasty", "either", "none"}
    assert e["techniqueReason"]
    for c in e["criteria"]:
        assert set(c) >= {"id", "title", "kind", "status", "reason", "evidence", "source"}
        assert isinstance(c["evidence"], list)
        if c["kind"] == "exclusion":
            assert c["exclusionKind"] in {"absolute", "relative"}


def test_identifier_is_deterministic_from_patient_policy_and_date():
    plan = evaluate(eligible())["carePlan"]
    expected = hashlib.sha256(b"Patient/123|cms-lcd-pva|2025-06-30").hexdigest()[:32]
    assert plan["identifier"] == [{"system": "urn:fhir-vcf:careplan", "value": expected}]
    assert careplan_identifier("Patient/123", "cms-lcd-pva", "2025-06-30") == expected
    assert evaluate(eligible(dxa=Fact.unknown()))["carePlan"]["identifier"] == plan["identifier"]
    assert evaluate(eligible(), "nice-ta279")["carePlan"]["identifier"] != plan["identifier"]


def test_addresses_the_fractures_and_cites_evidence():
    plan = evaluate(two_levels())["carePlan"]
    assert plan["addresses"] == [{"reference": "Condition/vcf-t12"}, {"reference": "Condition/vcf-l1"}]
    support = [r["reference"] for r in plan["supportingInfo"]]
    assert "Observation/edema-t12" in support and "ServiceRequest/dxa" in support
    assert "Patient/123" not in support


def test_kyphoplasty_t12_l1_is_22513_plus_22515():
    e = evaluate(two_levels())
    assert e["technique"] == "kyphoplasty"
    assert _cpt_codes(e["carePlan"])[:2] == ["22513", "22515"]
    assert "85610" in _cpt_codes(e["carePlan"])  # PT/INR before the procedure


@pytest.mark.parametrize(("levels", "technique", "codes"), [
    (("L2",), "kyphoplasty", ["22514"]),
    (("T12",), "vertebroplasty", ["22510"]),
    (("L1", "L2"), "vertebroplasty", ["22511", "22512"]),
    (("T11", "T12", "L1"), "kyphoplasty", ["22513", "22515", "22515"]),
])
def test_cpt_by_technique_region_and_level_count(levels, technique, codes):
    height = 30.0 if technique == "kyphoplasty" else 20.0
    facts = eligible(fractures=tuple(fracture(lv) for lv in levels), **per_level(levels, height=height),
                     kyphosis=Fact.present(True) if technique == "kyphoplasty" else absent(),
                     progression=absent(), request=request(*levels, technique=technique))
    e = evaluate(facts)
    assert e["decision"] == "eligible" and e["technique"] == technique
    assert _cpt_codes(e["carePlan"])[: len(codes)] == codes


def test_either_uses_the_ordered_technique_or_names_both_code_sets():
    ordered = evaluate(eligible(kyphosis=Fact.unknown(), height_loss={}, request=request("T12",
                                                                                         technique="vertebroplasty")))
    assert ordered["technique"] == "either"
    assert _cpt_codes(ordered["carePlan"])[0] == "22510"
    unspecified = evaluate(eligible(kyphosis=Fact.unknown(), height_loss={}))
    first = unspecified["carePlan"]["activity"][0]["detail"]
    assert "coding" not in first["code"]
    assert "22510" in first["description"] and "22513" in first["description"]


def test_eligible_plan_has_pre_procedure_checks_and_bone_health():
    texts = [a["detail"]["code"]["text"] for a in evaluate(eligible(
        anticoagulants=Fact.present(("apixaban",))))["carePlan"]["activity"]]
    assert any("PT/INR" in t for t in texts)
    assert any("Allergy check" in t for t in texts)
    assert any("Osteoporosis treatment" in t for t in texts)
    assert "DXA bone density evaluation" in texts  # referral on record: complete it


def test_not_eligible_plan_is_conservative_care_and_osteoporosis_care():
    plan = evaluate(eligible(infection=Fact.present(True), dxa=Fact.unknown()))["carePlan"]
    texts = [a["detail"]["code"]["text"] for a in plan["activity"]]
    assert texts[0].startswith("Conservative management")
    assert "DXA bone density referral" in texts
    assert not [c for c in _cpt_codes(plan) if c.startswith("225")]


def test_insufficient_data_plan_is_the_missing_work_up():
    e = evaluate(CASES["insufficient-data"])
    plan = e["carePlan"]
    codes = [(c["system"], c["code"]) for a in plan["activity"] for c in a["detail"]["code"].get("coding", [])]
    assert (CPT, "72146") in codes  # MRI thoracic spine (T12) with STIR
    assert ("http://loinc.org", "72514-3") in codes
    assert (CPT, "77080") in codes
    assert len(plan["activity"]) == len(e["missing"])


def test_needs_review_plan_asks_for_a_spine_team_review():
    plan = evaluate(CASES["needs-review"])["carePlan"]
    assert plan["activity"][0]["detail"]["code"]["text"] == "Spine team review"


def test_request_is_echoed_and_flags_are_listed():
    e = evaluate(two_levels(anticoagulants=Fact.present(("warfarin",))))
    assert e["request"]["reference"] == "ServiceRequest/sr-1" and e["request"]["levels"] == ["T12", "L1"]
    assert "on anticoagulant (warfarin): plan peri-procedural management" in e["flags"]
    assert e["route"] == "osteoporotic"


@pytest.mark.parametrize("name", ["cms-lcd-pva", "commercial-strict", "nice-ta279"])
@pytest.mark.parametrize("case", CASES)
def test_every_builtin_policy_gives_a_valid_plan(name, case):
    e = evaluate(CASES[case], name)
    CarePlan.model_validate(e["carePlan"])
    assert list(_empties(e["carePlan"])) == []
    assert e["policy"] == name


def test_text_evidence_is_marked_as_text():
    from factories import ev

    from fhir_vcf.facts import Method
    facts = eligible(acuity={"T12": Fact.present("marrow-edema", ev("DiagnosticReport/mri", "conclusion",
                                                                     "'STIR hyperintense'", Method.TEXT))})
    i3 = next(c for c in evaluate(facts)["criteria"] if c["id"] == "I3")
    assert i3["evidenceDetail"] == [{"reference": "DiagnosticReport/mri", "element": "conclusion", "method": "text",
                                     "found": "'STIR hyperintense'"}]


def test_careplan_prune_agrees_with_the_rule_as_first_written():
    """The CarePlan is pruned by `outputs.prune.prune_empty` (the cards' rule, with its fast path for
    plain members), which answers on every kind of value as the plan's own comprehension did
    (subclasses, tuples, zeros and falses, NaN, nested empties)."""
    import collections
    import enum

    from cards import random_trees

    from fhir_vcf.outputs.prune import prune_empty

    def reference(value):
        if isinstance(value, dict):
            pruned = {k: reference(v) for k, v in value.items()}
            return {k: v for k, v in pruned.items() if v not in ("", [], {}, None)}
        if isinstance(value, list):
            pruned = [reference(v) for v in value]
            return [v for v in pruned if v not in ("", [], {}, None)]
        return value

    class Text(str):
        pass

    class Number(enum.IntEnum):
        ZERO = 0

    class Items(list):
        pass

    leaves = [None, "", "x", Text(""), Text("y"), 0, 0.0, False, True, 3, float("nan"), Number.ZERO, (), ("",),
              [], {}, Items(), Items([None, "a"]), collections.OrderedDict(), collections.OrderedDict(a="", b=[1])]
    for value in random_trees(leaves, seed=5):
        assert repr(prune_empty(value)) == repr(reference(value))

"""Evaluation → cards (fhir_vcf.outputs.cards) and the card validator (fhir_vcf.outputs.card_rules)."""

from __future__ import annotations

import copy
import uuid

import pytest
from cards import assert_valid_cards, evaluation, has_criteria_table, random_trees, validate_cards

from fhir_vcf.outputs.card_rules import DETAIL_MAX
from fhir_vcf.outputs.cards import DETAIL_LIMIT, EXPLANATION_LABEL, CardSource, OrderContext, render_card, render_cards

SOURCE = CardSource(
    label="fhir-vcf: Medicare LCD L34106",
    url="https://www.cms.gov/medicare-coverage-database/view/lcd.aspx?lcdid=34106",
    guideline_url="https://www.cms.gov/medicare-coverage-database/view/lcd.aspx?lcdid=34106",
    criteria_url="https://vcf.example.org/api/v1/policies/cms-lcd-pva",
)


def one(ev, order=None):
    body = render_cards([(ev, order)], source=SOURCE)
    (card,) = assert_valid_cards(body)
    return card


def test_eligible_patient_card_is_info_and_concise_with_flags_and_careplan():
    card = one(evaluation("eligible", flags=("T1-T4 level: may trigger focused medical review",)))
    assert card["indicator"] == "info"
    assert "eligible" in card["summary"] and "T12, L1" in card["summary"]
    assert not has_criteria_table(card["detail"])  # the table lives on the explanation page
    assert len(card["detail"]) <= DETAIL_LIMIT
    assert card["detail"].startswith("**Decision:** eligible")
    assert "**Flags**" in card["detail"] and "focused medical review" in card["detail"]
    (suggestion,) = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one"
    (action,) = suggestion["actions"]
    assert action["type"] == "create" and action["resource"]["resourceType"] == "CarePlan"
    assert "note" not in action["resource"]  # empty member pruned
    assert {link["url"] for link in card["links"]} == {SOURCE.guideline_url, SOURCE.criteria_url}
    assert all(link["type"] == "absolute" for link in card["links"])
    assert card["source"]["topic"]["code"] == "vertebral-augmentation-eligibility"
    # an eligible card is dismissed for other reasons than a warning is overridden
    assert {r["code"] for r in card["overrideReasons"]} >= {"plan-in-place", "patient-declines"}
    assert "clinical-judgement" not in {r["code"] for r in card["overrideReasons"]}
    assert card["extension"]["fhir-vcf"]["asOf"] == "2025-06-30"


def test_insufficient_data_is_a_warning_listing_what_is_missing():
    card = one(evaluation("insufficient-data", missing=("a pain score (LOINC 72514-3) after the fracture",
                                                       "advanced imaging (MRI STIR or bone scan)")))
    assert card["indicator"] == "warning"
    assert "2 items are missing" in card["summary"]
    assert "**Missing**\n- a pain score (LOINC 72514-3) after the fracture" in card["detail"]
    assert all(r.get("display") for r in card["overrideReasons"])


def test_not_eligible_order_proposes_conservative_care_instead_of_the_order():
    order = OrderContext(reference="ServiceRequest/sr-1", technique="kyphoplasty")
    card = one(evaluation("not-eligible", technique="none"), order)
    assert card["indicator"] == "warning"
    assert "conservative care" in card["summary"]
    (suggestion,) = card["suggestions"]
    assert suggestion["isRecommended"] is True
    kinds = [a["type"] for a in suggestion["actions"]]
    assert kinds == ["create", "delete"]
    plan = suggestion["actions"][0]["resource"]
    assert plan["status"] == "draft" and plan["intent"] == "proposal"
    assert "brace" in str(plan).lower()
    assert suggestion["actions"][1]["resourceId"] == ["ServiceRequest/sr-1"]


def test_technique_mismatch_is_said_in_summary_and_detail():
    order = OrderContext(reference="ServiceRequest/sr-1", technique="vertebroplasty")
    card = one(evaluation("eligible", technique="kyphoplasty"), order)
    assert "kyphoplasty is advised rather than the ordered vertebroplasty" in card["summary"]
    assert "The order is for **vertebroplasty** but the findings favour **kyphoplasty**" in card["detail"]


def test_no_mismatch_when_advice_is_either():
    order = OrderContext(reference="ServiceRequest/sr-1", technique="vertebroplasty")
    card = one(evaluation("eligible", technique="either"), order)
    assert "advised rather than" not in card["summary"]


@pytest.mark.parametrize("xid", ["X1", "X2", "X3"])
def test_signing_despite_an_absolute_exclusion_is_critical(xid):
    signing = OrderContext(reference="ServiceRequest/sr-1", technique="kyphoplasty", signing=True)
    card = one(evaluation("not-eligible", technique="none", present=(xid,)), signing)
    assert card["indicator"] == "critical"
    assert xid in card["summary"]
    selecting = OrderContext(reference="ServiceRequest/sr-1", technique="kyphoplasty")
    assert one(evaluation("not-eligible", technique="none", present=(xid,)), selecting)["indicator"] == "warning"


def test_relative_exclusion_on_sign_is_a_warning_not_critical():
    signing = OrderContext(reference="ServiceRequest/sr-1", technique="kyphoplasty", signing=True)
    assert one(evaluation("not-eligible", technique="none", present=("X5",)), signing)["indicator"] == "warning"


def test_summary_is_always_short_and_uuids_are_unique():
    long_levels = tuple(f"T{n}" for n in range(1, 13)) + tuple(f"L{n}" for n in range(1, 6))
    body = render_cards([(evaluation("needs-review", levels=long_levels), None)] * 3, source=SOURCE)
    cards = assert_valid_cards(body)
    assert all(len(c["summary"]) < 140 for c in cards)
    assert len({c["uuid"] for c in cards}) == 3


def test_card_without_careplan_has_no_suggestions_or_selection_behavior():
    card = one(evaluation("needs-review", with_careplan=False))
    assert "suggestions" not in card and "selectionBehavior" not in card


def test_links_already_in_detail_are_not_repeated():
    ev = evaluation("eligible")
    ev["flags"] = [f"see {SOURCE.criteria_url}"]
    card = render_card(ev, source=SOURCE)
    assert SOURCE.criteria_url not in [link["url"] for link in card.get("links", [])]


# --- the validator catches what peers get wrong -------------------------------------------------


def valid_card():
    return copy.deepcopy(render_card(evaluation("not-eligible"), source=SOURCE,
                                     order=OrderContext("ServiceRequest/sr-1", "kyphoplasty")))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.pop("uuid"), "uuid: required"),
        (lambda c: c.update(summary="x" * 140), "fewer than 140"),
        (lambda c: c.update(indicator="hard-stop"), "indicator"),
        (lambda c: c.pop("selectionBehavior"), "selectionBehavior: required"),
        (lambda c: c.update(selectionBehavior="exactly-one"), "selectionBehavior: required"),
        (lambda c: c["suggestions"][0].pop("uuid"), "suggestions[0].uuid"),
        (lambda c: c["suggestions"].append(dict(c["suggestions"][0], uuid=str(uuid.uuid4()))), "recommended"),
        (lambda c: c.update(detail=None), "null value"),
        (lambda c: c.update(links=[]), "empty array"),
        (lambda c: c["source"].pop("label"), "source.label"),
        (lambda c: c["overrideReasons"][0].pop("display"), "without a display"),
        (lambda c: c.update(links=[{"label": "x", "url": "https://a.example/x", "type": "absolute",
                                    "appContext": "y"}]), "appContext"),
        (lambda c: c.update(detail=c["detail"] + " https://a.example/x",
                            links=[{"label": "x", "url": "https://a.example/x", "type": "absolute"}]), "repeats"),
        (lambda c: c["suggestions"][0]["actions"][0]["resource"].update(status="active"), "status 'draft'"),
        (lambda c: c["suggestions"][0]["actions"][1].update(resourceId="ServiceRequest/sr-1"), "resourceId"),
    ],
)
def test_validator_reports(mutate, expected):
    card = valid_card()
    assert validate_cards({"cards": [card]}) == []
    mutate(card)
    problems = validate_cards({"cards": [card]})
    assert any(expected in p for p in problems), problems


def test_validator_accepts_empty_cards_and_rejects_missing_cards():
    assert validate_cards({"cards": []}) == []
    assert validate_cards({}) != []
    assert validate_cards([]) != []
    card = valid_card()
    assert any("repeated" in p for p in validate_cards({"cards": [card, card]}))


def test_not_eligible_detail_names_the_criteria_that_decide_not_the_whole_table():
    ev = evaluation("not-eligible", technique="none")
    ev["criteria"][3] = dict(ev["criteria"][3], status="present",
                             reason="found: ICD-10-CM M46.46 (Discitis, lumbar) (Condition/c-24)")
    card = one(ev)
    assert "- **X2 Infection** (present: excludes): found: ICD-10-CM M46.46" in card["detail"]
    assert "I1" not in card["detail"]  # a met criterion does not drive a denial
    assert len(card["detail"]) <= DETAIL_LIMIT


def test_detail_shows_three_missing_items_and_counts_the_rest():
    missing = tuple(f"item {n}: " + "words " * 30 for n in range(1, 6))
    card = one(evaluation("insufficient-data", missing=missing))
    assert card["detail"].count("\n- item ") == 3
    assert "- and 2 more in the full explanation" in card["detail"]
    assert len(card["detail"]) <= DETAIL_LIMIT


def test_a_long_evaluation_still_gives_a_short_detail():
    ev = evaluation("not-eligible", technique="kyphoplasty", flags=tuple("flag " * 40 for _ in range(5)))
    for c in ev["criteria"]:
        c["status"], c["reason"] = ("not-met" if c["kind"] == "inclusion" else "present"), "reason " * 80
    order = OrderContext(reference="ServiceRequest/" + "x" * 60, technique="vertebroplasty", signing=True)
    card = one(ev, order)
    assert len(card["detail"]) <= DETAIL_LIMIT
    assert "The order is for **vertebroplasty**" in card["detail"]


def test_explanation_link_comes_first_and_the_extension_names_the_evaluation():
    body = render_cards([(evaluation("eligible"), None)], source=SOURCE,
                        explanations=[("5b1f0f8e-0000-4000-8000-000000000001", "https://vcf.example.org/explanations/t")])
    (card,) = assert_valid_cards(body)
    assert card["links"][0] == {"label": EXPLANATION_LABEL, "url": "https://vcf.example.org/explanations/t",
                                "type": "absolute"}
    assert card["extension"]["fhir-vcf"]["evaluation"] == "5b1f0f8e-0000-4000-8000-000000000001"
    assert card["extension"]["fhir-vcf"]["decision"] == "eligible"  # the machine-readable summary stays


def test_validator_refuses_a_detail_longer_than_the_house_limit():
    card = one(evaluation("eligible"))
    card["detail"] = "x" * (DETAIL_MAX + 1)
    problems = validate_cards({"cards": [card]})
    assert any("detail" in p and str(DETAIL_MAX) in p for p in problems)


def _prune_reference(value):
    """prune_empty as first written (isinstance checks, three comparisons): the rule the fast path keeps."""
    from collections.abc import Mapping

    def empty(v):
        return v is None or v == "" or v == [] or v == {}

    if isinstance(value, Mapping):
        return {k: kept for k, item in value.items() if not empty(kept := _prune_reference(item))}
    if isinstance(value, list):
        return [v for v in (_prune_reference(v) for v in value) if not empty(v)]
    return value


class _Text(str):
    pass


class _Items(list):
    pass


def test_prune_empty_agrees_with_the_general_rule_on_every_kind_of_value():
    import collections

    from fhir_vcf.outputs.cards import prune_empty

    leaves = [None, "", "x", _Text(""), _Text("y"), 0, 0.0, False, True, 7, 2.5, (), (None,), [], {},
              _Items(), _Items([None]), collections.OrderedDict(), collections.OrderedDict(a=None, b=1)]
    for value in random_trees(leaves, seed=11):
        fast, slow = prune_empty(value), _prune_reference(value)
        assert fast == slow
        assert repr(fast) == repr(slow)  # the same types (OrderedDict → dict, tuples untouched) and order
    card = render_card(evaluation("not-eligible"), order=OrderContext("ServiceRequest/sr-1", "kyphoplasty"))
    assert prune_empty(card) == _prune_reference(card) == card


def test_the_care_plan_of_a_card_is_walked_once_and_the_card_keeps_no_empty_value(monkeypatch):
    """The plan is pruned when it is copied into the suggestion; the card's own pruning leaves the
    suggestions out (walking the plan again cost a third of a card) and still leaves no empty value."""
    import fhir_vcf.outputs.cards as cards_module

    walked: list[object] = []

    def recording(value):
        walked.append(value)
        return cards_module.prune_empty.__wrapped__(value)

    recording.__wrapped__ = cards_module.prune_empty
    monkeypatch.setattr(cards_module, "prune_empty", recording)
    ev = evaluation("not-eligible")
    ev["carePlan"]["note"] = [{"text": ""}]  # an empty member the card must not carry
    ev["carePlan"]["category"] = []
    empty_source = CardSource(guideline_url="https://example.org/g", guideline_label="")
    card = render_card(ev, source=empty_source, order=OrderContext("ServiceRequest/sr-1", "kyphoplasty"))
    plans = [v for v in walked if isinstance(v, dict) and v.get("resourceType") == "CarePlan"]
    assert len(plans) == 1
    assert not any(isinstance(v, dict) and "suggestions" in v for v in walked)
    assert _prune_reference(card) == card
    assert "note" not in card["suggestions"][0]["actions"][0]["resource"]
    assert "category" not in card["suggestions"][0]["actions"][0]["resource"]
    assert card["links"] == [{"url": "https://example.org/g", "type": "absolute"}]
    assert list(card) == ["uuid", "summary", "detail", "indicator", "source", "extension", "suggestions",
                          "selectionBehavior", "overrideReasons", "links"]

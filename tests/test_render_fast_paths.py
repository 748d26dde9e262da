"""The evaluation's fast paths (fhir_vcf.outputs.evaluation, Policy.source_for) answer as the general
routes they replace, member for member and in the same order."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_vcf.facts import Evidence, Method
from fhir_vcf.outputs.evaluation import _evidence_item
from fhir_vcf.rules.policy import _CITED_MEMO_SIZE, load_policies, parse_policy_file


def _evidence_reference(e: Evidence) -> dict[str, str]:
    """The evidence item as first written: every non-empty member, through a comprehension."""
    return {k: v for k, v in (("reference", e.reference), ("element", e.element), ("method", str(e.method)),
                              ("found", e.found)) if v}


def test_evidence_items_keep_the_non_empty_members_in_order():
    for reference, element, method, found in itertools.product(
        ("", "Condition/vcf-1"), ("", "code.coding[0]"), tuple(Method), ("", "ICD-10-CM M80.08XA")
    ):
        e = Evidence(reference, element, method, found)
        item = _evidence_item(e)
        assert list(item.items()) == list(_evidence_reference(e).items())


def _search(policy, text):
    pattern, by_id = policy._citations
    match = pattern.search(text or "")
    return by_id[match.group(1)] if match else None


def test_source_for_remembers_each_text_and_answers_as_the_search():
    # Fresh copies, each with an empty memo (other tests fill the shared policies' memo).
    policies = {k: parse_policy_file(Path(p.file)) for k, p in load_policies().items()}
    texts = ["", "no source named", *(f"{s.id}, inclusion 1a" for p in policies.values() for s in p.sources),
             *(f"see {s.id}-x and {s.id}" for p in policies.values() for s in p.sources)]
    for policy in policies.values():
        for text in texts:
            assert policy.source_for(text) is _search(policy, text)
            assert policy.source_for(text) is _search(policy, text)  # from the memo the second time
            assert text in policy._cited


def test_source_for_memo_is_bounded():
    shared = next(iter(load_policies().values()))
    policy = parse_policy_file(Path(shared.file))  # its own memo: the shared policies' stays as it was
    for i in range(_CITED_MEMO_SIZE + 50):
        assert policy.source_for(f"text {i}") is None
    assert len(policy._cited) == _CITED_MEMO_SIZE
    cited = policy.sources[0]
    assert policy.source_for(f"{cited.id} beyond the memo") is cited


def test_page_templates_read_a_dicts_item_before_its_attribute() -> None:
    """`page.environment` reads `a.b` of a dict as its item first (no failed attribute look-up per
    value drawn); a dict's methods stay reachable when it holds no key of that name."""
    from fhir_vcf.outputs.page import environment

    env = environment()
    assert env.getattr({"items": "the item"}, "items") == "the item"  # plain Jinja: the dict's method
    assert env.from_string("{{ d.title }}|{{ d.get('x', 'none') }}|{{ n.real }}").render(
        d={"title": "T<1>"}, n=3) == "T&lt;1&gt;|none|3"
    assert env.from_string("{{ d.missing is undefined }}").render(d={}) == "True"


def _result_as_before(cid, title, kind, source, status, reason, outcomes=(), *, evidence=(), missing=(), flags=(),
                      applied=True, review=False, exclusion_kind=""):
    """`rules.common.result` as first written: each list through generators, each deduplicated by
    `dict.fromkeys`, the result built by keyword."""
    from fhir_vcf.rules.common import CONFLICT, UNKNOWN
    from fhir_vcf.rules.judgement import CriterionResult

    outcomes = list(outcomes)
    ev = [*evidence, *(e for o in outcomes for e in o.evidence)]
    miss = [*missing, *(m for o in outcomes for m in o.missing)] if status in (UNKNOWN, CONFLICT) else []
    flg = [*flags, *(f for o in outcomes for f in o.flags)]
    return CriterionResult(
        id=cid, title=title, kind=kind, status=status, reason=reason, source=source,
        evidence=tuple(dict.fromkeys(ev)), missing=tuple(dict.fromkeys(miss)), flags=tuple(dict.fromkeys(flg)),
        applied=applied, review=review, exclusion_kind=exclusion_kind,
    )


_EVIDENCE = [Evidence("Condition/a", "code", Method.CODE, "x"), Evidence("Condition/a", "code", Method.CODE, "x"),
             Evidence("Condition/b", "note[0].text", Method.TEXT, "'y'"), Evidence("Condition/a", "code", Method.TEXT)]
_WORDS = ["a", "b", "a", ""]


@settings(max_examples=500, deadline=None)
@given(status=st.sampled_from(["met", "not-met", "unknown", "conflict", "present", "absent"]),
       evidence=st.lists(st.sampled_from(_EVIDENCE), max_size=4), missing=st.lists(st.sampled_from(_WORDS), max_size=3),
       flags=st.lists(st.sampled_from(_WORDS), max_size=3),
       outcomes=st.lists(st.tuples(st.lists(st.sampled_from(_EVIDENCE), max_size=3),
                                   st.lists(st.sampled_from(_WORDS), max_size=2),
                                   st.lists(st.sampled_from(_WORDS), max_size=2)), max_size=3),
       applied=st.booleans(), review=st.booleans(), as_view=st.booleans())
def test_a_criterion_result_is_built_as_before(status, evidence, missing, flags, outcomes, applied, review, as_view):
    from fhir_vcf.rules.common import Outcome, result

    made = {f"L{i}": Outcome(status, "why", list(e), list(m), list(f)) for i, (e, m, f) in enumerate(outcomes)}
    given_outcomes = made.values() if as_view else list(made.values())  # the rules pass both
    args = ("X1", "Title", "exclusion", "LCD", status, "reason")
    options = {"evidence": evidence, "missing": missing, "flags": flags, "applied": applied, "review": review,
               "exclusion_kind": "absolute"}
    assert result(*args, given_outcomes, **options) == _result_as_before(*args, list(made.values()), **options)


ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted(p for folder in ("samples", "tests/data") for p in (ROOT / folder).rglob("*.json")
                 if p.name != "expected.json")


def _judged_records():
    """(judgement, facts, policy) of every record of every bundle under samples/ and tests/data/ that
    loads and maps, for each policy, as of the samples' date."""
    import json
    from datetime import date

    from fhir_vcf.errors import FhirVcfError
    from fhir_vcf.mappers import map_record
    from fhir_vcf.record import load_document
    from fhir_vcf.rules import judge

    policies = load_policies()
    for path in BUNDLES:
        try:
            records = load_document(json.loads(path.read_text()), source=path.name)
        except (FhirVcfError, ValueError):
            continue
        for rec in records:
            for policy in policies.values():
                try:
                    facts = map_record(rec, as_of=date(2025, 6, 30))
                except FhirVcfError:
                    continue
                yield judge(facts, policy), facts, policy


def test_criteria_with_shared_evidence_items_render_as_each_alone():
    """`render_criteria` builds an evidence item once an evaluation and copies it; each criterion
    rendered alone (no shared items) must read the same, its `evidence` the result's `references`,
    and no two criteria may share an item object."""
    from fhir_vcf.outputs.evaluation import render_criteria, render_criterion

    shared_items = 0
    for judgement, facts, policy in _judged_records():
        rendered = render_criteria(judgement.criteria, policy, facts.resources)
        alone = [render_criterion(c, policy, facts.resources) for c in judgement.criteria]
        assert rendered == alone
        assert [list(r.items()) for r in rendered] == [list(a.items()) for a in alone]  # same member order
        assert [r["evidence"] for r in rendered] == [c.references for c in judgement.criteria]
        items = [item for r in rendered for item in r.get("evidenceDetail", ())]
        assert len({id(item) for item in items}) == len(items)
        shared_items += len(items) - len({id(e) for c in judgement.criteria for e in c.evidence})
    assert shared_items > 0  # the bundles do cite one evidence in several criteria


def test_is_mapping_answers_as_the_abc_check():
    """`explain.is_mapping` answers a plain dict by its exact type; every other value as the ABC does."""
    import collections
    import types
    from collections.abc import Mapping

    from fhir_vcf.outputs.explain import is_mapping

    class Sub(dict):
        pass

    class Custom(Mapping):
        def __getitem__(self, key):
            raise KeyError(key)

        def __iter__(self):
            return iter(())

        def __len__(self):
            return 0

    values = [{}, {"a": 1}, Sub(), collections.OrderedDict(), types.MappingProxyType({}), Custom(), [], (), None,
              "", "dict", 0, {1, 2}, collections.Counter(), dict]
    for value in values:
        assert is_mapping(value) is isinstance(value, Mapping), value


def _supporting_refs_as_before(judgement, addresses, patient):
    """`careplan._supporting_refs` as first written: each criterion's `references`, joined, deduplicated."""
    skip = {*addresses, patient}
    refs = [r for c in judgement.criteria if c.status not in ("absent",) for r in c.references]
    return [r for r in dict.fromkeys(refs) if r not in skip][:25]


def test_supporting_references_read_in_one_pass_are_as_each_criterions_joined():
    from fhir_vcf.outputs.careplan import _fracture_refs, _supporting_refs

    cited = 0
    for judgement, facts, _policy in _judged_records():
        addresses = _fracture_refs(judgement, facts)
        got = _supporting_refs(judgement, addresses, facts.patient)
        assert got == _supporting_refs_as_before(judgement, addresses, facts.patient)
        cited += len(got)
    assert cited > 0


def _members(value):
    """A value's members at every depth, in order: equal only when two plans are written alike."""
    if type(value) is dict:
        return [(key, _members(item)) for key, item in value.items()]
    if type(value) is list:
        return [_members(item) for item in value]
    return value


def _assert_as_pruned(plan):
    from fhir_vcf.outputs.prune import prune_empty

    assert _members(plan) == _members(prune_empty(plan))


def test_the_careplan_is_built_as_prune_empty_leaves_it():
    """`build_careplan` adds only elements with content and no longer prunes what it built: every plan of
    every bundle, for each policy, is its own pruned copy, member for member and in order."""
    from fhir_vcf.outputs.careplan import build_careplan

    plans = 0
    for judgement, facts, policy in _judged_records():
        _assert_as_pruned(build_careplan(judgement, facts, policy))
        plans += 1
    assert plans > 100


def test_a_careplan_of_empty_words_is_built_as_prune_empty_leaves_it(monkeypatch):
    """What no bundle's judgement holds: a decision without a reason, evidence that names no resource, codes
    without a display; each decision's plan is still its own pruned copy."""
    from dataclasses import replace

    from fhir_vcf.outputs import careplan
    from fhir_vcf.rules.judgement import CriterionResult

    cited = (Evidence("", "code", Method.CODE), Evidence("Condition/z", "code", Method.CODE))
    nameless = CriterionResult("X9", "Title", "exclusion", "LCD", "present", "why", evidence=cited)
    built = 0
    for n, (judgement, facts, policy) in enumerate(itertools.islice(_judged_records(), 0, None, 7)):
        displays = {} if n % 2 else careplan._DISPLAY
        monkeypatch.setattr(careplan, "_DISPLAY", displays)
        for decision in ("eligible", "not-eligible", "needs-review", "insufficient-data"):
            for reason, missing in (("", ()), ("why", judgement.missing)):
                odd = replace(judgement, decision=decision, decision_reason=reason, missing=missing,
                              criteria=(*judgement.criteria, nameless))
                _assert_as_pruned(careplan.build_careplan(odd, facts, policy))
                built += 1
    assert built > 100

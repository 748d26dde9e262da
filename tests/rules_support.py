"""Shared helpers for the rules tests: policies and judging shortcuts."""

from __future__ import annotations

from functools import cache

from fhir_vcf.facts import FractureFacts
from fhir_vcf.rules import CriterionResult, Judgement, judge
from fhir_vcf.rules.policy import Policy, load_policies


@cache
def policies() -> dict[str, Policy]:
    return load_policies()


def policy(name: str = "cms-lcd-pva") -> Policy:
    return policies()[name]


def run(facts: FractureFacts, name: str = "cms-lcd-pva") -> Judgement:
    return judge(facts, policy(name))


def crit(judgement: Judgement, cid: str) -> CriterionResult:
    matches = [c for c in judgement.criteria if c.id == cid]
    assert matches, f"{cid} not in {[c.id for c in judgement.criteria]}"
    return matches[0]

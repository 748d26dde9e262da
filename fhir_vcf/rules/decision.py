"""judge(): every criterion, then the decision by precedence (clinical-rules.md, Decision).

1. any exclusion present, or any inclusion/scope criterion not met -> not-eligible
2. else any conflict, or a coding/scope route to review -> needs-review
3. else any required element unknown -> insufficient-data (with what is missing)
4. else -> eligible
"""

from __future__ import annotations

from dataclasses import replace

from fhir_vcf.facts import FractureFacts, Status
from fhir_vcf.rules import criteria, exclusions, scope, technique
from fhir_vcf.rules.common import CONFLICT, NOT_MET, PRESENT, UNKNOWN, decision_levels
from fhir_vcf.rules.judgement import CriterionResult, Judgement
from fhir_vcf.rules.policy import Policy

ELIGIBLE, NOT_ELIGIBLE, NEEDS_REVIEW, INSUFFICIENT = "eligible", "not-eligible", "needs-review", "insufficient-data"


def judge(facts: FractureFacts, policy: Policy) -> Judgement:
    levels = decision_levels(facts)
    flags: list[str] = []
    if facts.request is not None and not facts.request.levels and levels:
        flags.append(f"the request names no level: judged on the fracture levels {', '.join(levels)}")
    s1, route = scope.coding_route(facts, policy, levels)
    if route == scope.REVIEW and facts.malignancy.status is Status.PRESENT:
        # A neoplasm whose coding is under review: recoding may put the patient on the malignant
        # route, which sets the age window, continuum of care and level limit aside (A56572). A
        # criterion the two routes judge differently must not deny: it waits for the review.
        judged = _route_dependent(
            _criteria(facts, policy, levels, scope.OSTEOPOROTIC), _criteria(facts, policy, levels, scope.MALIGNANT)
        )
    else:
        judged = _criteria(facts, policy, levels, route)
    results = [c for c in judged if c.kind != "exclusion"]
    if s1 is not None:
        results.append(s1)
    results.extend(c for c in judged if c.kind == "exclusion")
    decision, why = decide(results)
    tech, tech_reason, tech_flags = technique.advise(facts, policy, levels, decision)
    for crit in results:
        flags.extend(crit.flags)
    flags.extend(tech_flags)
    # The scope's missing items first: without a fracture, the rest hardly matters.
    ordered = sorted(results, key=lambda c: c.kind != "scope")
    missing: list[str] = []
    if decision in (INSUFFICIENT, NEEDS_REVIEW):
        for c in ordered:
            missing.extend(c.missing)
            if c.status == CONFLICT and not c.missing:
                missing.append(f"resolve {c.id} ({c.title.lower()}): {c.reason}")
    flags.extend(_healed_flag(facts))
    return Judgement(
        decision=decision,
        technique=tech,
        technique_reason=tech_reason,
        levels=tuple(levels),
        criteria=tuple(results),
        missing=tuple(dict.fromkeys(missing)),
        flags=tuple(dict.fromkeys(flags)),
        route=route,
        decision_reason=why,
        policy=policy.id,
    )


def _criteria(facts: FractureFacts, policy: Policy, levels: list[str], route: str) -> list[CriterionResult]:
    """The inclusions, then the exclusions, as judged on one coding route."""
    found = [crit for rule in criteria.INCLUSIONS if (crit := rule(facts, policy, levels, route)) is not None]
    return found + list(exclusions.exclusions(facts, policy, levels, route))


def _route_dependent(osteoporotic: list[CriterionResult], malignant: list[CriterionResult]) -> list[CriterionResult]:
    """Each criterion as both routes judge it; where they differ, a conflict that names both."""
    merged = []
    for a, b in zip(osteoporotic, malignant, strict=True):
        if (a.status, a.applied) == (b.status, b.applied):
            merged.append(a)
            continue
        merged.append(replace(
            a,
            status=CONFLICT,
            review=True,
            missing=(),
            reason=f"depends on the coding route under review: osteoporotic route {a.status} ({a.reason}); "
                   f"malignant route {b.status if b.applied else 'not applied'} ({b.reason})",
            evidence=tuple(dict.fromkeys(a.evidence + b.evidence)),
        ))
    return merged


def _healed_flag(facts: FractureFacts) -> list[str]:
    """An old healed fracture code (SNOMED 307136000, Z87.310) names no level the rules can trust: say so."""
    if facts.healed.status is not Status.PRESENT or facts.healed.value is False:
        return []
    refs = ", ".join(facts.healed.references) or "the record"
    return [f"an old healed vertebral fracture is documented ({refs}): confirm it is not the level treated"]


def failed(crit: CriterionResult) -> bool:
    return crit.status == (PRESENT if crit.kind == "exclusion" else NOT_MET)


def decide(results: list[CriterionResult]) -> tuple[str, str]:
    """The decision and a one-line why, naming the criteria that settled it."""
    fails = [c for c in results if failed(c)]
    if fails:
        return NOT_ELIGIBLE, "; ".join(f"{c.id} {c.status}: {c.reason}" for c in fails)
    conflicts = [c for c in results if c.status == CONFLICT]
    if conflicts:
        return NEEDS_REVIEW, "; ".join(f"{c.id} {'review' if c.review else 'conflict'}: {c.reason}" for c in conflicts)
    unknown = [c for c in results if c.status == UNKNOWN]
    if unknown:
        return INSUFFICIENT, "; ".join(f"{c.id} unknown: {c.reason}" for c in unknown)
    return ELIGIBLE, "all inclusion criteria met and no exclusion present"

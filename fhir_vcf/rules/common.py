"""Small helpers the rule modules share: reading facts, wording dates and scores, building results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fhir_vcf.facts import Evidence, Fact, FractureFacts, PainScore, Status
from fhir_vcf.levels import sort_levels
from fhir_vcf.rules.judgement import CriterionResult

MET, NOT_MET, UNKNOWN, CONFLICT = "met", "not-met", "unknown", "conflict"
PRESENT, ABSENT = "present", "absent"


@dataclass
class Outcome:
    """A partial result while a criterion is being worked out (one level, one path)."""

    status: str
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def combine(outcomes: list[Outcome]) -> str:
    """Status of a criterion judged as a whole: one not-met fails it; then conflict; then unknown."""
    statuses = {o.status for o in outcomes}
    for status in (NOT_MET, CONFLICT, UNKNOWN):
        if status in statuses:
            return status
    return MET


def result(
    cid: str, title: str, kind: str, source: str, status: str, reason: str, outcomes: Iterable[Outcome] = (),
    *, evidence: Iterable[Evidence] = (), missing: Iterable[str] = (), flags: Iterable[str] = (),
    applied: bool = True, review: bool = False, exclusion_kind: str = "",
) -> CriterionResult:
    outcomes = list(outcomes)
    ev = [*evidence, *(e for o in outcomes for e in o.evidence)]
    miss = [*missing, *(m for o in outcomes for m in o.missing)] if status in (UNKNOWN, CONFLICT) else []
    flg = [*flags, *(f for o in outcomes for f in o.flags)]
    return CriterionResult(
        id=cid, title=title, kind=kind, status=status, reason=reason, source=source,
        evidence=tuple(dict.fromkeys(ev)), missing=tuple(dict.fromkeys(miss)), flags=tuple(dict.fromkeys(flg)),
        applied=applied, review=review, exclusion_kind=exclusion_kind,
    )


def per_level_reason(outcomes: dict[str, Outcome]) -> str:
    """"T12: x; L1: y", merging levels that share one wording ("T12, L1: x"); no prefix for one level."""
    if len(outcomes) == 1:
        return next(iter(outcomes.values())).reason
    by_reason: dict[str, list[str]] = {}
    for level, outcome in outcomes.items():
        by_reason.setdefault(outcome.reason, []).append(level)
    if len(by_reason) == 1:
        reason, levels = next(iter(by_reason.items()))
        return f"{', '.join(levels)}: {reason}"
    return "; ".join(f"{', '.join(levels)}: {reason}" for reason, levels in by_reason.items())


def decision_levels(facts: FractureFacts) -> list[str]:
    """The request's levels when a request names them, else the fracture levels; head to foot."""
    if facts.request is not None and facts.request.levels:
        return sort_levels(facts.request.levels)
    return facts.fracture_levels


def truthy(fact: Fact) -> str:
    """yes | no | unknown | conflict for a Fact[bool] (PRESENT with value False counts as no)."""
    if fact.status is Status.PRESENT:
        return "no" if fact.value is False else "yes"
    if fact.status is Status.ABSENT:
        return "no"
    return "conflict" if fact.status is Status.CONFLICT else "unknown"


def fmt_number(value: float) -> str:
    return f"{value:g}"


def fmt_score(score: PainScore) -> str:
    return f"{score.scale} {fmt_number(score.value)} on {score.when.days}"


def found_text(fact: Fact) -> str:
    """What the evidence says, for a reason: "ICD-10-CM M46.26 (Condition/x)" or the fact's note."""
    parts = [f"{e.found} ({e.reference})" if e.found else e.reference for e in fact.evidence]
    if parts:
        return ", ".join(dict.fromkeys(parts))
    return fact.note

"""Small helpers the rule modules share: reading facts, wording dates and scores, building results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
    """The CriterionResult of a criterion: its own evidence, missing items and flags, then its outcomes',
    each once. Built by position, with a loop rather than generators, and a list of one or none not
    deduplicated (17 results a judgement: judge 1.36 -> 1.12 M instructions, the benchmark's
    order-select call 29.65 -> 29.38 M)."""
    open_ = status in (UNKNOWN, CONFLICT)  # only these say what is missing
    ev, miss, flg = list(evidence), list(missing) if open_ else [], list(flags)
    for o in outcomes:
        ev += o.evidence
        if open_:
            miss += o.missing
        flg += o.flags
    return CriterionResult(cid, title, kind, status, reason, source, _unique(ev), _unique(miss), _unique(flg),
                           applied, review, exclusion_kind)


def _unique(items: list[Any]) -> tuple[Any, ...]:
    """The items in order, each once (`dict.fromkeys`, which hashes each: an Evidence's hash is a Python
    call); a list of one or none is unique as it is."""
    return tuple(items) if len(items) < 2 else tuple(dict.fromkeys(items))


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

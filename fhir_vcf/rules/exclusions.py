"""Exclusions X1-X11 (and any a policy adds): present / absent / unknown / conflict.

Which exclusions exist, their kind (absolute/relative), the fact each reads and every limit are
policy data; this module only knows the three ways of checking one (policy.EXCLUSION_CHECKS).
"""

from __future__ import annotations

from fhir_vcf.facts import Fact, FractureFacts, Status
from fhir_vcf.rules.common import ABSENT, CONFLICT, PRESENT, UNKNOWN, fmt_number, found_text, result
from fhir_vcf.rules.judgement import CriterionResult
from fhir_vcf.rules.policy import ExclusionRule, Policy

EXCLUSION = "exclusion"
_STATUS = {Status.PRESENT: PRESENT, Status.ABSENT: ABSENT, Status.UNKNOWN: UNKNOWN, Status.CONFLICT: CONFLICT}


def exclusions(facts: FractureFacts, policy: Policy, levels: list[str], route: str) -> list[CriterionResult]:
    out = []
    for rule in policy.exclusions:
        if not rule.enabled:
            continue
        if rule.check == "level-count":
            out.append(too_many_levels(facts, rule, levels, route))
        elif rule.check == "coagulation":
            out.append(uncorrected_coagulopathy(facts, rule))
        else:
            out.append(fact_exclusion(facts, rule))
    return out


def _result(rule: ExclusionRule, status: str, reason: str, fact: Fact | None = None, **kw) -> CriterionResult:
    evidence = list(fact.evidence) if fact is not None else []
    return result(rule.id, rule.title, EXCLUSION, rule.source, status, reason, evidence=evidence,
                  exclusion_kind=rule.kind, **kw)


def fact_exclusion(facts: FractureFacts, rule: ExclusionRule) -> CriterionResult:
    """PRESENT = the exclusion applies; ABSENT = the record was read and shows no sign of it."""
    fact: Fact = getattr(facts, rule.fact, None) or Fact.unknown()
    status = _STATUS[fact.status]
    if fact.status is Status.PRESENT and fact.value is False:
        status = ABSENT
    if status == PRESENT:
        reason = f"found: {found_text(fact) or 'documented'}"
    elif status == ABSENT:
        reason = absent_reason(fact)
    elif status == CONFLICT:
        reason = f"conflicting records: {fact.note or found_text(fact)}"
    else:
        reason = f"not known whether {rule.title.lower()} applies"
    missing = [f"documentation of whether {rule.title.lower()} applies"] if status == UNKNOWN else []
    return _result(rule, status, reason, fact, missing=missing)


def absent_reason(fact: Fact) -> str:
    """What the record shows when an exclusion is absent, never its title again (issue: "Pain not
    primarily from the fracture: none documented" beside a report saying "No retropulsion").

    With evidence: the statements that rule it out ("ruled out: 'No retropulsion' (DiagnosticReport/x)"),
    after the mapper's note when it has one ("pain attributed to the fracture: ..."). Without: the
    mapper's account of what it looked for ("no infection (osteomyelitis, discitis, ...) on record").
    """
    if fact.evidence:
        said = ", ".join(dict.fromkeys(f"{e.found} ({e.reference})" if e.found else e.reference for e in fact.evidence))
        return f"{fact.note}: {said}" if fact.note else f"ruled out in the record: {said}"
    return fact.note or "the record was read: no code or text suggests it"


def _waiver(facts: FractureFacts, rule: ExclusionRule, route: str) -> str:
    """The neoplasm code that waives the level limit (myeloma C90.0x on the malignant route, A56572)."""
    if route != "malignant" or rule.waived_for_codes is None:
        return ""
    prefixes = rule.waived_for_codes.value or ()
    codes = facts.malignancy.value if facts.malignancy.status is Status.PRESENT and facts.malignancy.value else ()
    codes = (*codes, *(c.code for f in facts.fractures for c in f.codes if c.system == "icd-10-cm"))
    hit = next((c for c in codes if any(str(c).startswith(p) for p in prefixes)), "")
    if not hit and facts.myeloma.status is Status.PRESENT and facts.myeloma.value is not False:
        hit = "multiple myeloma"
    return hit


def too_many_levels(facts: FractureFacts, rule: ExclusionRule, levels: list[str], route: str) -> CriterionResult:
    """X4: more than `limit` levels treated in one procedure, unless waived for myeloma."""
    limit = int(rule.limit.value) if rule.limit and rule.limit.value is not None else 0
    request = facts.request
    count = max(len(levels), request.level_count if request is not None else 0)
    noun = "level" if count == 1 else "levels"
    subject = f"{noun} requested" if request is not None else f"fractured {noun} (no request: all counted)"
    evidence_fact = Fact.present(count, *(request.evidence if request is not None else ()))
    if count == 0:
        return _result(rule, UNKNOWN, "no level to count", evidence_fact)
    if count <= limit:
        return _result(rule, ABSENT, f"{count} {subject} (limit {limit})", evidence_fact)
    waiver = _waiver(facts, rule, route)
    if waiver:
        return _result(rule, ABSENT, f"{count} {subject}, above {limit} but waived for {waiver} "
                       f"({rule.waived_for_codes.source})", evidence_fact)
    return _result(rule, PRESENT, f"{count} {subject}: more than {limit} in one procedure", evidence_fact)


def uncorrected_coagulopathy(facts: FractureFacts, rule: ExclusionRule) -> CriterionResult:
    """X6: a coded coagulopathy, or the latest INR above the policy's limit. Anticoagulants alone: a flag."""
    limit = float(rule.limit.value) if rule.limit and rule.limit.value is not None else None
    coded: Fact = getattr(facts, rule.fact, None) or Fact.unknown()
    inr: Fact = getattr(facts, "inr", None) or Fact.unknown()
    both = Fact(coded.status, None, coded.evidence + inr.evidence)
    flags = []
    anticoag = facts.anticoagulants
    if anticoag.status is Status.PRESENT:
        names = ", ".join(anticoag.value or ()) or "documented"
        flags.append(f"on anticoagulant ({names}): plan peri-procedural management")
    inr_known = inr.status is Status.PRESENT and inr.value is not None
    inr_text = f"INR {fmt_number(float(inr.value))}" if inr_known else ""
    if coded.status is Status.PRESENT and coded.value is not False:
        return _result(rule, PRESENT, f"coagulopathy: {found_text(coded) or 'documented'}", both, flags=flags)
    if inr_known and limit is not None and float(inr.value) > limit:
        return _result(rule, PRESENT, f"latest {inr_text} > {fmt_number(limit)}", both, flags=flags)
    if CONFLICT in (_STATUS[coded.status], _STATUS[inr.status]):
        return _result(rule, CONFLICT, f"conflicting records: {coded.note or inr.note}", both, flags=flags)
    if inr_known:
        return _result(rule, ABSENT, f"latest {inr_text} <= {fmt_number(limit or 0)}; no coagulopathy coded", both,
                       flags=flags)
    if coded.status is Status.ABSENT or (coded.status is Status.PRESENT and coded.value is False):
        return _result(rule, ABSENT, "no coagulopathy documented (no INR on record: check before the procedure)",
                       both, flags=flags)
    return _result(rule, UNKNOWN, "coagulation status not documented", both, flags=flags,
                   missing=["an INR (LOINC 6301-6) or documented coagulation status"])

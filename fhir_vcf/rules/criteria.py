"""Inclusion criteria I1-I5, each a function that reads like the rule it implements.

Every function takes (facts, policy, levels, route) and returns a CriterionResult, or None when the
policy switches the criterion off. `levels` are the decision levels (the request's, else the
fracture levels); `route` is the coding route from scope.py ("malignant" sets I1, I5 and the NRS
thresholds aside, A56572). All numbers come from the policy.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from fhir_vcf.clinical_time import DayRange
from fhir_vcf.facts import Evidence, Fact, FractureFacts, Method, PainScore, Status
from fhir_vcf.levels import in_range, position
from fhir_vcf.rules.common import (
    CONFLICT,
    MET,
    NOT_MET,
    UNKNOWN,
    Outcome,
    combine,
    fmt_number,
    fmt_score,
    per_level_reason,
    result,
    truthy,
)
from fhir_vcf.rules.judgement import CriterionResult
from fhir_vcf.rules.policy import Policy

INCLUSION = "inclusion"
NO_FRACTURE = "no vertebral fracture documented"
PAIN_SCORE_MISSING = "a pain score (LOINC 72514-3, NRS 0-10) after the fracture"
NSM_MISSING = "documented non-surgical management (analgesics, bracing, physical therapy or rest) before the procedure"


def _not_applied(cid: str, title: str, source: str, why: str) -> CriterionResult:
    return result(cid, title, INCLUSION, source, MET, f"not applied: {why}", applied=False)


# --------------------------------------------------------------------------- I1 fracture age


def fracture_age(facts: FractureFacts, policy: Policy, levels: list[str], route: str) -> CriterionResult | None:
    """I1: acute (d < 42) or subacute (42 <= d <= 84) from symptom onset; chronic (d > 84) is not met."""
    rule = policy.fracture_age
    if not rule.enabled:
        return None
    if route == "malignant":
        return _not_applied("I1", rule.title, "A56572", "no osteoporotic age window on the malignant route")
    if not facts.fractures:
        return result("I1", rule.title, INCLUSION, rule.source, UNKNOWN, f"{NO_FRACTURE}, so no onset to count from")
    if not levels:
        return result("I1", rule.title, INCLUSION, rule.source, UNKNOWN, "no fracture level documented",
                      missing=["the level of the fracture (e.g. T12) on the fracture Condition or imaging report"])
    outcomes = {level: _age_at(facts, policy, level) for level in levels}
    status = combine(list(outcomes.values()))
    return result("I1", rule.title, INCLUSION, rule.source, status, per_level_reason(outcomes), outcomes.values())


def _age_at(facts: FractureFacts, policy: Policy, level: str) -> Outcome:
    """Days from onset to the as-of date, counted on the onset's own calendar days. An onset known only
    as a range (a month, a year, an age) decides only when every day of it gives the same answer
    (input profile, "Dates and times"); otherwise the fracture age is unknown and the exact date is asked."""
    rule = policy.fracture_age
    fact: Fact = facts.onset.get(level) or Fact.unknown()
    evidence = list(fact.evidence)
    if fact.status is Status.CONFLICT:
        return Outcome(CONFLICT, f"conflicting onset dates ({fact.note or 'sources disagree'})", evidence)
    if fact.status is not Status.PRESENT or fact.value is None:
        # The mapper's note says why ("no onset documented", "onset documented (3 weeks ago); the recorded
        # date is not used in its place", "no fracture Condition at L1").
        return Outcome(UNKNOWN, fact.note or "no symptom onset documented", evidence,
                       missing=[f"the symptom onset date of the {level} fracture (Condition.onsetDateTime)"])
    onset: DayRange = fact.value
    flags = []
    from_recorded = "recorded" in fact.note.lower() or any(
        f.onset_element == "recordedDate" for f in facts.fractures if level in f.levels)
    if from_recorded:
        flags.append(f"{level}: onset taken from the recorded date (no onset documented)")
    anchor = "recorded date" if from_recorded else "onset"
    if onset.first > facts.as_of:
        return Outcome(CONFLICT, f"onset {onset} is after the as-of date {facts.as_of.isoformat()}",
                       evidence, flags=flags)
    fewest, most = onset.days_to(facts.as_of)
    acute, limit = rule.acute_below_days.value, rule.max_days.value
    if onset.exact:
        status, label = _age_band(fewest, acute, limit)
        return Outcome(status, f"{anchor} {onset}, {fewest} days before the as-of date: {label}", evidence,
                       flags=flags)
    (low_status, _), (high_status, _) = _age_band(fewest, acute, limit), _age_band(most, acute, limit)
    bands = " or ".join(label for label, lo, hi in (("acute", 0, acute - 1), ("subacute", acute, limit),
                                                    (f"chronic (more than {limit} days)", limit + 1, most))
                        if lo <= most and fewest <= hi)
    days = f"at least {fewest}" if onset.first == date.min else f"{fewest} to {most}"
    span = f"{anchor} {onset}, {days} days before the as-of date"
    if low_status == high_status:
        return Outcome(low_status, f"{span}: {bands} on every day of the range", evidence, flags=flags)
    return Outcome(UNKNOWN, f"{span}: {bands} depending on the day", evidence, flags=flags,
                   missing=[f"the exact symptom onset date of the {level} fracture (documented only as "
                            f"{onset}; {limit} days before the as-of date is "
                            f"{(facts.as_of - timedelta(days=limit)).isoformat()})"])


def _age_band(days: int, acute: int, limit: int) -> tuple[str, str]:
    if days > limit:
        return NOT_MET, f"chronic (more than {limit} days)"
    return MET, "acute" if days < acute else "subacute"


# --------------------------------------------------------------------------- I2 level


def level(facts: FractureFacts, policy: Policy, levels: list[str], route: str) -> CriterionResult | None:
    """I2: every level treated lies in the policy's range and has a documented fracture."""
    rule = policy.level
    if not rule.enabled:
        return None
    first, last = rule.first.value, rule.last.value
    wanted = set(levels)
    evidence = [e for f in facts.fractures if not f.levels or wanted & set(f.levels) for e in f.evidence]
    if facts.request is not None:
        evidence.extend(facts.request.evidence)
    if not facts.fractures:
        return result("I2", rule.title, INCLUSION, rule.source, UNKNOWN, NO_FRACTURE, evidence=evidence)
    if not levels:
        return result("I2", rule.title, INCLUSION, rule.source, UNKNOWN, "no fracture level documented",
                      evidence=evidence,
                      missing=["the level of the fracture (e.g. T12) on the fracture Condition or imaging report"])
    problems: list[Outcome] = []
    outside = [lv for lv in levels if not in_range(lv, first, last)]
    if outside:
        problems.append(Outcome(NOT_MET, f"{', '.join(outside)} outside {first}-{last}"))
    documented = set(facts.fracture_levels)
    unlevelled = [f.reference for f in facts.fractures if not f.levels]
    for lv in levels:
        if lv in documented:
            continue
        if unlevelled:
            problems.append(Outcome(
                UNKNOWN, f"{lv} requested; the fracture ({', '.join(unlevelled)}) names no level",
                missing=[f"the level of the fracture {', '.join(unlevelled)} (is it {lv}?)"]))
        else:
            problems.append(Outcome(NOT_MET, f"{lv} requested but no fracture documented at {lv}"))
    flags = []
    review = rule.review_first, rule.review_last
    if review[0] and review[1] and rule.review_flag and any(
            in_range(lv, review[0].value, review[1].value) for lv in levels):
        flags.append(rule.review_flag)
    status = combine(problems) if problems else MET
    reason = "; ".join(p.reason for p in problems) if problems else f"{', '.join(levels)} within {first}-{last}"
    return result("I2", rule.title, INCLUSION, rule.source, status, reason, problems, evidence=evidence, flags=flags)


# --------------------------------------------------------------------------- I3 acuity


ACUITY_WORDS = {"marrow-edema": "marrow edema on MRI", "increased-uptake": "increased uptake on bone scan"}
ACUITY_MISSING = "MRI with STIR or bone scan showing acuity at {level}"


def acuity(facts: FractureFacts, policy: Policy, levels: list[str], route: str) -> CriterionResult | None:
    """I3: marrow edema (MRI) or increased uptake (bone scan/SPECT) at every treated level."""
    rule = policy.acuity
    if not rule.enabled:
        return None
    if not facts.fractures:
        return result("I3", rule.title, INCLUSION, rule.source, UNKNOWN, NO_FRACTURE)
    if not levels:
        return result("I3", rule.title, INCLUSION, rule.source, UNKNOWN, "no fracture level documented",
                      missing=["MRI with STIR or bone scan showing acuity at the fracture level"])
    outcomes = {lv: _acuity_at(facts, lv) for lv in levels}
    status = combine(list(outcomes.values()))
    return result("I3", rule.title, INCLUSION, rule.source, status, per_level_reason(outcomes), outcomes.values())


def _acuity_at(facts: FractureFacts, level: str) -> Outcome:
    fact: Fact = facts.acuity.get(level) or Fact.unknown()
    evidence = list(fact.evidence)
    # A fact read from report prose carries the quoted sentence in its note, which then is the reason:
    # "'No change in the L1 marrow edema' (MRI 2025-06-09): edema present at L1 (...)".
    if fact.status is Status.PRESENT:
        return Outcome(MET, fact.note or ACUITY_WORDS.get(str(fact.value), f"acuity shown ({fact.value})"), evidence)
    if fact.status is Status.ABSENT:
        return Outcome(NOT_MET, fact.note or "advanced imaging shows no marrow edema or uptake (healed or chronic)",
                       evidence)
    if fact.status is Status.CONFLICT:
        return Outcome(CONFLICT, f"imaging disagrees on acuity ({fact.note or 'sources disagree'})", evidence)
    missing = [ACUITY_MISSING.format(level=level)]
    if fact.value == "radiograph-only":
        reason = "radiograph/CT shows the fracture, not its acuity: MRI with STIR or bone scan needed"
    elif fact.value == "hedged":
        studies = ", ".join(fact.references)
        reason = f"the report does not settle acuity at {level}: {fact.note}"
        missing = [f"a report that states whether there is marrow edema (STIR) or increased uptake at {level} "
                   f"({studies})"]
    elif fact.evidence:
        # An MRI / bone scan of the level is on file but nothing states edema or its absence: asking for
        # "an MRI" would be wrong; the radiologist's statement is what is missing.
        studies = ", ".join(fact.references)
        reason = f"MRI/bone scan on file ({studies}) but no report states marrow edema or uptake at {level}"
        missing = [f"the report of {studies}: is there marrow edema (STIR) or increased uptake at {level}?"]
    else:
        reason = "no MRI or bone scan of the fracture"
    if facts.acuity_unassigned:
        refs = sorted({r for f in facts.acuity_unassigned for r in f.references})
        reason += f"; an imaging finding names no level ({', '.join(refs)})"
        missing.append(f"the level of the acuity finding in {', '.join(refs)}")
        evidence.extend(e for f in facts.acuity_unassigned for e in f.evidence)
    return Outcome(UNKNOWN, reason, evidence, missing)


# --------------------------------------------------------------------------- I4 symptoms


def symptoms(facts: FractureFacts, policy: Policy, levels: list[str], route: str) -> CriterionResult | None:
    """I4: (a) hospitalized with pain >= 8, or (b) outpatient pain >= 5 despite NSM, worsening or with
    two supporting findings. On the malignant route: a painful lesion unresponsive to medical therapy.
    """
    rule = policy.symptoms
    if not rule.enabled:
        return None
    if not facts.pain_scores:
        return result("I4", rule.title, INCLUSION, rule.source, UNKNOWN, "no pain score in the fracture episode",
                      missing=[PAIN_SCORE_MISSING])
    source = f"{rule.source}; A56572" if route == "malignant" else rule.source
    latest = facts.pain_scores[-1]
    outcome = _symptoms_if_latest(facts, policy, levels, route, latest)
    # "Latest" is decided on instants: a score whose time overlaps the latest one's (two scores dated
    # "2025-06", or one day written without a time) may be the later. Decide only when every such
    # order gives the same answer (input profile, "Dates and times"). Components of one panel
    # Observation share its time by definition: their order is the record's, not a question of dates.
    rivals = [s for s in facts.pain_scores[:-1]
              if s.reference != latest.reference and not s.when.before(latest.when)]
    for rival in rivals:
        other = _symptoms_if_latest(facts, policy, levels, route, rival)
        if other.status != outcome.status:
            scores = ", ".join(f"{fmt_score(s)} ({s.reference})" for s in (*rivals, latest))
            outcome = Outcome(
                UNKNOWN, f"the order of the latest pain scores cannot be told from their dates ({scores}): "
                f"{outcome.status} if {latest.reference} is the latest ({outcome.reason}), {other.status} if "
                f"{rival.reference} is ({other.reason})", outcome.evidence + other.evidence,
                [f"the date and time each pain score was taken ({scores})"])
            break
    return result("I4", rule.title, INCLUSION, source, outcome.status, outcome.reason, [outcome])


def _symptoms_if_latest(facts: FractureFacts, policy: Policy, levels: list[str], route: str,
                        latest: PainScore) -> Outcome:
    """I4 judged with `latest` as the last pain score of the episode (the others before it, in order)."""
    if latest is not facts.pain_scores[-1]:
        facts = replace(facts, pain_scores=(*(s for s in facts.pain_scores if s is not latest), latest))
    if route == "malignant":
        return _painful_lesion(facts, policy, latest)
    if policy.symptoms.hospitalized_min_score.value is None or latest.setting == "ambulatory":
        return _outpatient(facts, policy, levels, latest)
    if latest.setting == "hospitalized":
        return _hospitalized(policy, latest)
    return _either_setting(facts, policy, levels, latest)


def _score_evidence(*scores: PainScore | None) -> list[Evidence]:
    out = []
    for s in scores:
        if s is None:
            continue
        out.append(Evidence(s.reference, "value", Method.CODE, fmt_score(s)))
        if s.encounter:
            out.append(Evidence(s.encounter, "class", Method.CODE, s.setting))
    return out


def _hospitalized(policy: Policy, latest: PainScore) -> Outcome:
    threshold = policy.symptoms.hospitalized_min_score.value
    where = f"hospitalized ({latest.encounter})" if latest.encounter else "hospitalized"
    if latest.value >= threshold:
        return Outcome(MET, f"{where}, {fmt_score(latest)} >= {fmt_number(threshold)}", _score_evidence(latest))
    return Outcome(NOT_MET, f"{where}, {fmt_score(latest)} < {fmt_number(threshold)} (the hospitalized path needs "
                   f">= {fmt_number(threshold)}; the outpatient path is for patients not hospitalized)",
                   _score_evidence(latest))


def _either_setting(facts: FractureFacts, policy: Policy, levels: list[str], latest: PainScore) -> Outcome:
    """Observation stay or no encounter: judge both paths.

    An observation stay (OBSENC) goes to review (input profile, "hospitalized": OBSENC → needs
    review) unless both paths already fail: then the setting cannot change the answer. With no
    encounter at all, agreeing paths settle it and disagreeing ones leave the setting missing.
    """
    inpatient = _hospitalized(policy, latest)
    outpatient = _outpatient(facts, policy, levels, latest)
    if latest.setting == "observation" and not inpatient.status == outpatient.status == NOT_MET:
        return Outcome(CONFLICT, f"{fmt_score(latest)} during an observation stay (OBSENC) "
                       f"({latest.encounter or 'encounter'}): hospitalized path {inpatient.status}, outpatient path "
                       f"{outpatient.status}; an observation stay needs review of the setting",
                       outpatient.evidence + inpatient.evidence,
                       missing=["review whether the observation stay counts as hospitalization"])
    if inpatient.status == outpatient.status:
        outpatient.reason += f" (setting {latest.setting}: the hospitalized path gives the same result)"
        return outpatient
    return Outcome(UNKNOWN, f"{fmt_score(latest)} with no encounter: hospitalized path {inpatient.status}, "
                   f"outpatient path {outpatient.status}", outpatient.evidence,
                   missing=[f"the encounter (inpatient or outpatient) of the pain score {latest.reference}",
                            *outpatient.missing])


def _nsm(facts: FractureFacts, policy: Policy) -> Outcome:
    """Non-surgical management documented (and long enough, when the policy sets a minimum)."""
    rule = policy.symptoms
    if not rule.require_nsm.value:
        return Outcome(MET, "")
    nsm = facts.nsm
    ev = list(nsm.evidence)
    if nsm.status is Status.ABSENT:
        return Outcome(NOT_MET, "no non-surgical management documented", ev)
    if nsm.status is Status.CONFLICT:
        return Outcome(CONFLICT, f"non-surgical management: {nsm.note or 'sources disagree'}", ev)
    if nsm.status is not Status.PRESENT:
        return Outcome(UNKNOWN, "non-surgical management not documented", ev, missing=[NSM_MISSING])
    kinds = ", ".join(nsm.value or ()) or "documented"
    min_days = rule.nsm_min_days.value
    if min_days is None:
        return Outcome(MET, f"despite non-surgical management ({kinds})", ev)
    start = facts.nsm_start
    if start.status is Status.PRESENT and start.value is not None:
        # A start known only as a range decides when every day of it does (input profile, "Dates and times").
        fewest, most = start.value.days_to(facts.as_of)
        days = f"{fewest}" if fewest == most else f"{fewest} to {most}"
        ev.extend(start.evidence)
        if fewest >= min_days:
            return Outcome(MET, f"non-surgical management ({kinds}) since {start.value}, {days} days "
                           f">= {min_days}", ev)
        if most < min_days:
            return Outcome(NOT_MET, f"non-surgical management ({kinds}) since {start.value}, {days} days "
                           f"< {min_days}", ev)
        return Outcome(UNKNOWN, f"non-surgical management ({kinds}) since {start.value}, {days} days "
                       f"({min_days} required)", ev,
                       missing=[f"the exact start date of non-surgical management ({min_days} days required; "
                                f"documented only as {start.value})"])
    return Outcome(UNKNOWN, f"non-surgical management ({kinds}) documented, duration unknown (>= {min_days} days "
                   "required)", ev,
                   missing=[f"the start date of non-surgical management ({min_days} days required)"])


def _previous_same_scale(scores: tuple[PainScore, ...]) -> PainScore | None:
    latest = scores[-1]
    return next((s for s in reversed(scores[:-1]) if s.scale == latest.scale), None)


def _outpatient(facts: FractureFacts, policy: Policy, levels: list[str], latest: PainScore) -> Outcome:
    rule = policy.symptoms
    threshold = rule.min_score.value
    evidence = _score_evidence(latest)
    if latest.value < threshold:
        return Outcome(NOT_MET, f"{fmt_score(latest)} < {fmt_number(threshold)}", evidence)
    parts = [Outcome(MET, f"{fmt_score(latest)} >= {fmt_number(threshold)}", evidence), _nsm(facts, policy)]
    if rule.require_trend.value:
        parts.append(_trend(facts, policy, levels, latest))
    return Outcome(combine(parts), "; ".join(p.reason for p in parts if p.reason),
                   [e for p in parts for e in p.evidence], [m for p in parts for m in p.missing])


def _trend(facts: FractureFacts, policy: Policy, levels: list[str], latest: PainScore) -> Outcome:
    """Worsening pain, or stable/improved pain with at least `supporting_min` of A-D.

    Not met only when the known data rule both out; a single score leaves worsening open (unknown).
    """
    rule = policy.symptoms
    previous = _previous_same_scale(facts.pain_scores)
    if previous is not None and latest.value > previous.value:
        return Outcome(MET, f"worsening ({fmt_number(previous.value)} -> {fmt_number(latest.value)})",
                       _score_evidence(previous))
    need = rule.supporting_min.value
    support = _supporting(facts, policy, levels)
    yes = [s for s in support if s.status == MET]
    open_ = [s for s in support if s.status in (UNKNOWN, CONFLICT)]
    trend = "a single pain score, no trend" if previous is None else (
        f"{'stable' if latest.value == previous.value else 'improved'} "
        f"({fmt_number(previous.value)} -> {fmt_number(latest.value)})")
    found = ", ".join(s.reason for s in yes) or "none"
    evidence = [e for s in support for e in s.evidence] + _score_evidence(previous)
    reason = f"{trend}; {len(yes)} supporting finding{'' if len(yes) == 1 else 's'} ({found}), {need} needed"
    if len(yes) >= need:
        return Outcome(MET, reason, evidence)
    reachable = len(yes) + len(open_) >= need
    if open_:
        reason += f"; not documented: {', '.join(s.reason for s in open_)}"
    if previous is None:
        ask = "a repeat pain score (LOINC 72514-3) showing worsening pain"
        if reachable:
            ask += f", or documentation of {need - len(yes)} more of: " + "; ".join(s.missing[0] for s in open_)
        return Outcome(UNKNOWN, reason, evidence, [ask])
    if reachable:
        status = CONFLICT if any(s.status == CONFLICT for s in open_) else UNKNOWN
        short = need - len(yes)
        if short >= len(open_):  # every open finding is needed: one item each
            return Outcome(status, reason, evidence, [s.missing[0] for s in open_])
        # Fewer are needed than are open: separate items would read as "all of them".
        ask = (f"documentation of {short} of: " + "; ".join(s.missing[0] for s in open_)
               + " (or a repeat pain score showing worsening)")
        return Outcome(status, reason, evidence, [ask])
    return Outcome(NOT_MET, reason, evidence)


def _supporting(facts: FractureFacts, policy: Policy, levels: list[str]) -> list[Outcome]:
    """A progression, B height loss > 25 %, C kyphosis, D RDQ > 17 (thresholds from the policy)."""
    rule = policy.symptoms
    out = []
    for letter, name, fact, missing in (
        ("A", "progression of height loss", facts.progression, "serial imaging showing progression of height loss"),
        ("C", "kyphotic deformity", facts.kyphosis, "documentation of kyphotic deformity (or its absence)"),
    ):
        state = truthy(fact)
        status = {"yes": MET, "no": NOT_MET, "conflict": CONFLICT}.get(state, UNKNOWN)
        label = f"{letter} {name}" if status != CONFLICT else f"{letter} {name} (conflicting)"
        out.append(Outcome(status, label, list(fact.evidence), [missing]))
    limit = rule.height_loss_above_percent.value
    out.insert(1, _height_loss(facts, levels, limit))
    rdq_limit = rule.rdq_above.value
    rdq = facts.rdq
    if rdq.status is Status.PRESENT and rdq.value is not None:
        status = MET if rdq.value > rdq_limit else NOT_MET
        out.append(Outcome(status, f"D RDQ {rdq.value} {'>' if status == MET else '<='} {rdq_limit}",
                           list(rdq.evidence)))
    else:
        out.append(Outcome(CONFLICT if rdq.status is Status.CONFLICT else UNKNOWN, "D Roland-Morris score",
                           list(rdq.evidence), ["a Roland-Morris Disability Questionnaire (RDQ) score"]))
    return out


def _height_loss(facts: FractureFacts, levels: list[str], limit: float) -> Outcome:
    known: dict[str, float] = {}
    unknown: list[str] = []
    evidence: list[Evidence] = []
    for lv in levels:
        fact = facts.height_loss.get(lv)
        if fact is not None and fact.status is Status.PRESENT and fact.value is not None:
            known[lv] = float(fact.value)
            evidence.extend(fact.evidence)
        else:
            unknown.append(lv)
    above = {lv: v for lv, v in known.items() if v > limit}
    if above:
        text = ", ".join(f"{lv} {fmt_number(v)} %" for lv, v in above.items())
        return Outcome(MET, f"B height loss > {fmt_number(limit)} % ({text})", evidence)
    if not unknown and known:
        text = ", ".join(f"{lv} {fmt_number(v)} %" for lv, v in known.items())
        return Outcome(NOT_MET, f"B height loss <= {fmt_number(limit)} % ({text})", evidence)
    at = ", ".join(unknown or levels) or "the fracture level"
    return Outcome(UNKNOWN, f"B height loss at {at}", evidence, [f"the percentage of vertebral height loss at {at}"])


def _painful_lesion(facts: FractureFacts, policy: Policy, latest: PainScore) -> Outcome:
    """Malignant route (A56572): a painful lesion with pain unresponsive to medical therapy."""
    minimum = policy.symptoms.malignant_min_score.value
    evidence = _score_evidence(latest)
    if latest.value < minimum:
        return Outcome(NOT_MET, f"{fmt_score(latest)}: no painful lesion documented", evidence)
    nsm = _nsm(facts, policy)
    status = combine([Outcome(MET, ""), nsm])
    text = f"painful lesion ({fmt_score(latest)}); {nsm.reason or 'medical therapy not required by the policy'}"
    return Outcome(status, text + " (no NRS threshold on the malignant route, A56572)", evidence + nsm.evidence,
                   nsm.missing)


# --------------------------------------------------------------------------- I5 continuum of care


def continuum_of_care(facts: FractureFacts, policy: Policy, levels: list[str], route: str) -> CriterionResult | None:
    """I5: DXA referral/evaluation and an osteoporosis treatment or education program, both documented.

    Missing documentation is insufficient data, not a denial: ABSENT and UNKNOWN both give unknown.
    """
    rule = policy.continuum_of_care
    if not rule.enabled:
        return None
    if route == "malignant":
        return _not_applied("I5", rule.title, "A56572", "continuum of care is not required on the malignant route")
    parts: list[Outcome] = []
    for required, fact, name, missing in (
        (rule.require_dxa.value, facts.dxa, "DXA referral/evaluation", "a DXA referral or result (CPT 77080)"),
        (rule.require_program.value, facts.osteoporosis_program, "osteoporosis treatment/education program",
         "an osteoporosis treatment or education program (e.g. a bisphosphonate or denosumab order, "
         "or a bone-health clinic referral)"),
    ):
        if not required:
            continue
        if fact.status is Status.PRESENT:
            parts.append(Outcome(MET, f"{name} documented", list(fact.evidence)))
        elif fact.status is Status.CONFLICT:
            parts.append(Outcome(CONFLICT, f"{name}: {fact.note or 'sources disagree'}", list(fact.evidence)))
        else:
            parts.append(Outcome(UNKNOWN, f"no {name} documented", list(fact.evidence), [missing]))
    if not parts:
        return _not_applied("I5", rule.title, rule.source, "the policy requires neither half")
    status = combine(parts)
    return result("I5", rule.title, INCLUSION, rule.source, status, "; ".join(p.reason for p in parts), parts)


INCLUSIONS = (fracture_age, level, acuity, symptoms, continuum_of_care)


def head_to_foot(levels: list[str]) -> list[str]:
    return sorted(levels, key=position)

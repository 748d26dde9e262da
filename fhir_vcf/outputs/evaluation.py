"""The evaluation object: the public contract of docs/design.md.

Contract fields (never renamed): patient, asOf, policy, decision, technique, levels, criteria
(id, title, kind, status, reason, evidence, source), missing, flags, carePlan. Added fields:
policyTitle, decisionReason, techniqueReason, route, request, and per criterion evidenceDetail
(element and code/text method behind each reference), exclusionKind (absolute | relative, from the
policy), missing, applied (false when the coding route sets a criterion aside) and review (true when a
`conflict` is a coding/scope route to review rather than contradicting sources).

Added for the explanation page (issue 12): status `not-applied` (a criterion the coding route sets
aside; `applied: false` stays), per criterion `sourceUrl` and per evidenceDetail item `resource`
(what the resource is, in the record's words) and `date`; `patientDetail` (name, birth date, gender,
identifiers as the record gives them), `policySources` (the documents the policy cites) and
`timeline` (the dated episode: onsets, pain scores, imaging, orders, treatments and the fracture-age
windows), so that a page or a reviewer can draw the episode from the evaluation alone.

Added for real feeds (issue 9): `skipped`, reason → count of the resources (or attachments) the
evaluation set aside unread (entered in error, superseded documents, attachments not in plain text,
another patient's, dated after the as-of date, types never read...); `{}` when nothing was.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fhir_vcf.clinical_time import DayRange
from fhir_vcf.facts import Evidence, FractureFacts, ResourceLabel, Status
from fhir_vcf.outputs.careplan import build_careplan
from fhir_vcf.rules.judgement import CriterionResult, Judgement
from fhir_vcf.rules.policy import Policy

NOT_APPLIED = "not-applied"  # the status of a criterion the coding route sets aside


def render_evaluation(judgement: Judgement, facts: FractureFacts, policy: Policy) -> dict[str, Any]:
    out: dict[str, Any] = {
        "patient": facts.patient,
        "asOf": facts.as_of.isoformat(),
        "policy": policy.id,
        "policyTitle": policy.title,
        "decision": judgement.decision,
        "decisionReason": judgement.decision_reason,
        "technique": judgement.technique,
        "techniqueReason": judgement.technique_reason,
        "levels": list(judgement.levels),
        "route": judgement.route,
        "criteria": render_criteria(judgement.criteria, policy, facts.resources),
        "missing": list(judgement.missing),
        "flags": list(judgement.flags),
    }
    if facts.request is not None:
        req = facts.request
        request: dict[str, Any] = {"reference": req.reference, "status": req.status, "technique": req.technique,
                                   "levels": list(req.levels), "levelCount": req.level_count, "cpt": list(req.cpt)}
        if req.deleted_codes:
            request["deletedCodes"] = list(req.deleted_codes)
        out["request"] = request
    out["carePlan"] = build_careplan(judgement, facts, policy)
    detail = patient_detail(facts)
    if detail:
        out["patientDetail"] = detail
    out["policySources"] = [
        {k: v for k, v in (("id", s.id), ("citation", s.citation), ("url", s.url)) if v} for s in policy.sources
    ]
    out["timeline"] = render_timeline(judgement, facts, policy)
    out["skipped"] = dict(facts.skipped)
    return out


def patient_detail(facts: FractureFacts) -> dict[str, Any]:
    """Who the evaluation is about, as the record names them (for a person checking the right patient)."""
    out: dict[str, Any] = {}
    if facts.patient_name:
        out["name"] = facts.patient_name
    if facts.birth_date is not None:
        out["birthDate"] = facts.birth_date.isoformat()
    if facts.sex:
        out["gender"] = facts.sex
    if facts.patient_identifiers:
        out["identifiers"] = list(facts.patient_identifiers)
    return out


def _days(days: DayRange) -> dict[str, str]:
    """{"date": the day} for one day; a range (a partial date, an age) adds `dateTo` and the record's own
    words, so that a picture never draws a month as a day. Open ends take the other end's day."""
    first = days.first if days.first != date.min else days.last
    last = days.last if days.last != date.max else days.first
    if first == last:
        return {"date": first.isoformat()}
    return {"date": first.isoformat(), "dateTo": last.isoformat(), "written": days.written or days.isoformat()}


def _label(resources: Mapping[str, ResourceLabel], reference: str | None) -> ResourceLabel | None:
    return resources.get(reference) if reference else None


def render_timeline(judgement: Judgement, facts: FractureFacts, policy: Policy) -> dict[str, Any]:
    """The dated episode, oldest first in each list (see docs/design.md, "The evaluation object").

    onset: one entry per fracture level with an agreed onset (conflicting onsets are left out: the
    criteria say why). windows: the policy's fracture-age limits counted from the earliest onset, so
    a picture can shade the acute and subacute spans.
    """
    resources = facts.resources
    onsets: list[dict[str, Any]] = []
    by_day: dict[DayRange, tuple[list[str], list[str]]] = {}  # one onset per day: its levels and references
    for level, fact in facts.onset.items():
        if fact.status is Status.PRESENT and fact.value is not None:
            levels, references = by_day.setdefault(fact.value, ([], []))
            levels.append(level)
            references.extend(r for r in fact.references if r not in references)
    for days, (levels, references) in sorted(by_day.items(), key=lambda item: (item[0].first, item[0].last)):
        entry: dict[str, Any] = {**_days(days), "levels": levels}
        if references:
            entry["references"] = references
        onsets.append(entry)

    pain = []
    for score in facts.pain_scores:
        item: dict[str, Any] = {**_days(score.when.days), "value": score.value, "scale": score.scale,
                                "setting": score.setting, "reference": score.reference}
        encounter = _label(resources, score.encounter)
        if score.encounter:
            item["encounter"] = score.encounter
        if encounter is not None:
            item["encounterLabel"] = encounter.label
        if score.level:
            item["level"] = score.level
        pain.append(item)

    orders = []
    for req in facts.requests:
        order: dict[str, Any] = {"reference": req.reference, "status": req.status, "technique": req.technique,
                                 "levels": list(req.levels)}
        if req.authored is not None:
            order["date"] = req.authored.isoformat()
        if facts.request is not None and req.reference == facts.request.reference:
            order["judged"] = True
        orders.append({k: v for k, v in order.items() if v not in ([], "")})

    events: dict[str, list[dict[str, Any]]] = {"imaging": [], "treatment": [], "bone-health": []}
    for event in facts.events:
        item = {"date": event.day.isoformat(), "label": event.label, "reference": event.reference}
        if event.detail:
            item["detail"] = event.detail
        events.setdefault(event.kind, []).append(item)

    out: dict[str, Any] = {"onset": onsets, "painScores": pain, "imaging": events["imaging"], "orders": orders,
                           "treatments": events["treatment"], "boneHealth": events["bone-health"]}
    rule = policy.fracture_age
    if rule.enabled and onsets and "dateTo" not in onsets[0]:  # windows from an exact onset only
        out["windows"] = {"from": onsets[0]["date"], "acuteBelowDays": rule.acute_below_days.value,
                          "maxDays": rule.max_days.value, "source": rule.source}
    symptoms = policy.symptoms
    if symptoms.enabled:
        thresholds = {"outpatient": symptoms.min_score.value, "source": symptoms.source}
        if symptoms.hospitalized_min_score is not None and symptoms.hospitalized_min_score.value is not None:
            thresholds["hospitalized"] = symptoms.hospitalized_min_score.value
        out["painThresholds"] = thresholds
    return out


def render_criteria(
    criteria: tuple[CriterionResult, ...], policy: Policy, resources: Mapping[str, ResourceLabel]
) -> list[dict[str, Any]]:
    """`render_criterion` of each criterion, each evidence item built once an evaluation: the criteria
    cite the same evidence again and again (the benchmark's 17 criteria cite 46 items, 27 distinct), and
    an item (its reference's label and date included) cost about 9 K instructions to build, a copy of
    it well under 1 K."""
    built: dict[int, dict[str, str]] = {}
    return [render_criterion(c, policy, resources, built) for c in criteria]


def render_criterion(
    c: CriterionResult, policy: Policy | None = None, resources: Mapping[str, ResourceLabel] | None = None,
    built: dict[int, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One criterion of the evaluation object. `built`: the evidence items of this evaluation built so
    far, by the identity of their Evidence (every Evidence of a judgement lives as long as the judgement,
    so no two share an identity while it renders); each criterion gets its own copy of an item."""
    out: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "kind": c.kind,
        # A criterion set aside by the coding route is neither met nor failed: say so (issue 12).
        "status": c.status if c.applied else NOT_APPLIED,
        "reason": c.reason,
        "evidence": [],
        "source": c.source,
    }
    cited = policy.source_for(c.source) if policy is not None else None
    if cited is not None and cited.url:
        out["sourceUrl"] = cited.url
    if c.exclusion_kind:
        out["exclusionKind"] = c.exclusion_kind
    if c.evidence:
        if resources is None:  # not `resources or {}`: a record's labels answer truth by counting the record
            resources = {}
        built = {} if built is None else built
        references: dict[str, None] = {}
        details = []
        for e in c.evidence:
            references[e.reference] = None
            item = built.get(id(e))
            if item is None:
                item = built[id(e)] = _evidence_detail(e, resources)
            details.append(dict(item))
        out["evidence"] = list(references)  # `CriterionResult.references`, read in the same pass
        out["evidenceDetail"] = details
    if c.missing:
        out["missing"] = list(c.missing)
    if not c.applied:
        out["applied"] = False
    if c.review:
        out["review"] = True
    return out


def _evidence_detail(e: Evidence, resources: Mapping[str, ResourceLabel]) -> dict[str, str]:
    """An evidenceDetail item: the evidence, then what its resource is and its date in the record's words."""
    item = _evidence_item(e)
    label = resources.get(e.reference)
    if label is not None:
        item["resource"] = label.label
        if label.day is not None:
            item["date"] = label.day.isoformat()
    return item


def _evidence_item(e: Evidence) -> dict[str, str]:
    """reference, element, method and found, each when not empty, in that order: one `if` a member (a
    dict comprehension over a tuple of pairs took half as long again, timeit)."""
    item: dict[str, str] = {}
    if e.reference:
        item["reference"] = e.reference
    if e.element:
        item["element"] = e.element
    method = str(e.method)
    if method:
        item["method"] = method
    if e.found:
        item["found"] = e.found
    return item

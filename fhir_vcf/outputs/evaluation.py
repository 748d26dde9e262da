"""The evaluation object: the public contract of docs/design.md.

Contract fields (never renamed): patient, asOf, policy, decision, technique, levels, criteria
(id, title, kind, status, reason, evidence, source), missing, flags, carePlan. Added fields:
policyTitle, decisionReason, techniqueReason, route, request, and per criterion evidenceDetail
(element and code/text method behind each reference), exclusionKind (absolute | relative, from the
policy), missing, applied (false when the coding route sets a criterion aside) and review (true when a
`conflict` is a coding/scope route to review rather than contradicting sources).
"""

from __future__ import annotations

from typing import Any

from fhir_vcf.facts import FractureFacts
from fhir_vcf.outputs.careplan import build_careplan
from fhir_vcf.rules.judgement import CriterionResult, Judgement
from fhir_vcf.rules.policy import Policy


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
        "criteria": [render_criterion(c) for c in judgement.criteria],
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
    return out


def render_criterion(c: CriterionResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "kind": c.kind,
        "status": c.status,
        "reason": c.reason,
        "evidence": c.references,
        "source": c.source,
    }
    if c.exclusion_kind:
        out["exclusionKind"] = c.exclusion_kind
    if c.evidence:
        out["evidenceDetail"] = [
            {k: v for k, v in (("reference", e.reference), ("element", e.element), ("method", str(e.method)),
                               ("found", e.found)) if v}
            for e in c.evidence
        ]
    if c.missing:
        out["missing"] = list(c.missing)
    if not c.applied:
        out["applied"] = False
    if c.review:
        out["review"] = True
    return out

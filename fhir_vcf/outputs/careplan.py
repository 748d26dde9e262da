"""The proposed CarePlan (FHIR R4): what to do next, fitted to the decision.

- eligible: the procedure (one activity per level, CPT by technique and region: first level + add-on),
  pre-procedure checks (PT/INR, cement/contrast allergy) and the continuum of care (DXA referral when
  not yet documented, osteoporosis treatment and education).
- not-eligible: conservative management and osteoporosis care.
- insufficient-data: the missing work-up (MRI with STIR, a pain score, a DXA referral, ...).
- needs-review: a spine-team review, plus any work-up still missing.

"either" technique: no CPT code is guessed. When the order names a technique we propose its codes
(the clinician chose; the record does not argue against it); otherwise one text-coded activity names
both code sets, because one CodeableConcept with 22510 and 22513 would claim they mean the same thing.

The resource is a draft proposal with a deterministic identifier (sha256 of patient|policy|as-of),
so a REST write-back can use a conditional create. CDS Hooks forbids empty strings, arrays and
nulls, so every element is added only when it has content: the plan is built as `prune_empty` would
leave it (tests/test_render_fast_paths.py holds it so), not built and then copied by it (a walk of
every value, as long as building it); the card still prunes its own copy (`outputs.cards`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fhir_vcf.facts import FractureFacts, Status
from fhir_vcf.levels import region, sort_levels
from fhir_vcf.mappers.codes import cpt, loinc
from fhir_vcf.mappers.codes.systems import CPT, LOINC
from fhir_vcf.rules.judgement import Judgement
from fhir_vcf.rules.policy import Policy
from fhir_vcf.rules.scope import REVIEW_PREFIX

IDENTIFIER_SYSTEM = "urn:fhir-vcf:careplan"
TECHNIQUE_TEXT = {"kyphoplasty": "Kyphoplasty", "vertebroplasty": "Vertebroplasty"}
_DISPLAY = {
    **cpt.AUGMENTATION, **cpt.DXA, **cpt.PT_INR, **cpt.MRI_SPINE,
    loinc.PAIN_NRS: "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
}
_LEVEL = re.compile(r"\b([CTLS]\d{1,2})\b")


def procedure_lines(technique: str, levels: list[str]) -> list[tuple[str, str | None]]:
    """(level, CPT) per level head to foot: the first level's code by region, then the add-on code.

    E.g. kyphoplasty T12, L1 -> [(T12, 22513), (L1, 22515)]. None when CPT has no code (cervical
    kyphoplasty) or the technique is not a single procedure ("either").
    """
    if technique not in cpt.FIRST_LEVEL or not levels:
        return [(lv, None) for lv in levels]
    first, *rest = levels
    lines: list[tuple[str, str | None]] = [(first, cpt.FIRST_LEVEL[technique].get(region(first)))]
    lines.extend((lv, cpt.ADD_ON_BY_TECHNIQUE[technique]) for lv in rest)
    return lines


def careplan_identifier(patient: str, policy_id: str, as_of: str) -> str:
    """sha256 hex prefix of "Patient/123|cms-lcd-pva|2025-06-30": same inputs, same CarePlan."""
    return hashlib.sha256(f"{patient}|{policy_id}|{as_of}".encode()).hexdigest()[:32]


def build_careplan(judgement: Judgement, facts: FractureFacts, policy: Policy) -> dict[str, Any]:
    as_of = facts.as_of.isoformat()
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": careplan_identifier(facts.patient, policy.id, as_of)}],
        "status": "draft",
        "intent": "proposal",
        "title": f"Vertebral compression fracture: {judgement.decision} ({policy.id})",
        "description": _description(judgement, policy),
        "subject": {"reference": facts.patient} if facts.patient else {"display": "unknown patient"},
        "created": as_of,
    }
    addresses = _fracture_refs(judgement, facts)
    if addresses:
        plan["addresses"] = [{"reference": r} for r in addresses]
    support = [r for r in _supporting_refs(judgement, addresses, facts.patient) if r]  # an evidence may name none
    if support:
        plan["supportingInfo"] = [{"reference": r} for r in support]
    activities = _activities(judgement, facts, addresses)
    if activities:
        plan["activity"] = activities
    if judgement.decision_reason:
        plan["note"] = [{"text": judgement.decision_reason}]
    return plan


def _description(judgement: Judgement, policy: Policy) -> str:
    levels = ", ".join(judgement.levels) or "no level documented"
    text = f"{policy.title}: {judgement.decision} for {levels}."
    if judgement.technique != "none":
        text += f" Technique advice: {judgement.technique_reason}."
    return text


def _fracture_refs(judgement: Judgement, facts: FractureFacts) -> list[str]:
    wanted = set(judgement.levels)
    refs = [f.reference for f in facts.fractures if not f.levels or wanted & set(f.levels)]
    return [r for r in dict.fromkeys(refs or [f.reference for f in facts.fractures]) if "/" in r or ":" in r]


def _supporting_refs(judgement: Judgement, addresses: list[str], patient: str) -> list[str]:
    """Key evidence: the references behind met/present/not-met criteria, not the patient or the fractures."""
    skip = {*addresses, patient}
    # Every reference in the order first cited: one `dict.fromkeys` over all the evidence gives what each
    # criterion's `references` joined and deduplicated again gave, without a list and a dict a criterion.
    refs = [e.reference for c in judgement.criteria if c.status != "absent" for e in c.evidence]
    return [r for r in dict.fromkeys(refs) if r not in skip][:25]


def _concept(text: str, *codes: tuple[str, str]) -> dict[str, Any]:
    """`text`: words of this module, never empty; a code's display only when it has one."""
    coding = []
    for system, code in codes:
        entry = {"system": system, "code": code}
        display = _DISPLAY.get(code)
        if display:
            entry["display"] = display
        coding.append(entry)
    return {"coding": coding, "text": text} if coding else {"text": text}


def _activity(text: str, description: str, *codes: tuple[str, str], reasons: list[str] = ()) -> dict[str, Any]:
    detail: dict[str, Any] = {"kind": "ServiceRequest", "code": _concept(text, *codes), "status": "not-started"}
    if description:  # empty only when a judgement gives no reason ("Complete the work-up")
        detail["description"] = description
    if reasons:
        detail["reasonReference"] = [{"reference": r} for r in reasons]
    return {"detail": detail}


def _activities(judgement: Judgement, facts: FractureFacts, fractures: list[str]) -> list[dict[str, Any]]:
    decision = judgement.decision
    if decision == "eligible":
        return [*_procedure(judgement, facts, fractures), *_pre_procedure(facts), *_bone_health(facts)]
    if decision == "not-eligible":
        return [_activity("Conservative management of the vertebral fracture",
                          "Analgesia, activity modification, bracing and physical therapy; reassess pain and "
                          "imaging if symptoms persist. Not eligible: " + judgement.decision_reason,
                          reasons=fractures),
                *_bone_health(facts)]
    work_up = _work_up(judgement)
    if decision == "needs-review":
        return [_activity("Spine team review", "Review before vertebral augmentation: " + judgement.decision_reason,
                          reasons=fractures), *work_up]
    return work_up or [_activity("Complete the work-up", judgement.decision_reason)]


def _procedure(judgement: Judgement, facts: FractureFacts, fractures: list[str]) -> list[dict[str, Any]]:
    levels = list(judgement.levels)
    technique = judgement.technique
    requested = facts.request.technique if facts.request is not None else ""
    note = ""
    if technique == "either" and requested in TECHNIQUE_TEXT:
        technique, note = requested, " (technique as ordered; the record favours neither)"
    if technique not in TECHNIQUE_TEXT:
        vp = ", ".join(c for _, c in procedure_lines("vertebroplasty", levels) if c)
        kp = ", ".join(c for _, c in procedure_lines("kyphoplasty", levels) if c)
        return [_activity(f"Percutaneous vertebral augmentation {', '.join(levels)}",
                          f"Vertebroplasty (CPT {vp}) or kyphoplasty (CPT {kp}): choose at planning. "
                          f"{judgement.technique_reason}", reasons=fractures)]
    out = []
    for i, (level, code) in enumerate(procedure_lines(technique, levels)):
        name = TECHNIQUE_TEXT[technique]
        text = f"{name} {level}" + (" (each additional level)" if i else "")
        if code is None:
            out.append(_activity(text, f"{name} at {level}: no CPT code for this region; use an unlisted code",
                                 reasons=fractures))
            continue
        description = f"{name} at {level}, CPT {'+' if i else ''}{code}{note}. {judgement.technique_reason}"
        at_level = [f.reference for f in facts.fractures if level in f.levels and f.reference in fractures]
        out.append(_activity(text, description, (CPT, code), reasons=at_level or fractures))
    return out


def _pre_procedure(facts: FractureFacts) -> list[dict[str, Any]]:
    coag = "PT/INR within the local pre-procedure window (INR limit per policy)"
    if facts.anticoagulants.status is Status.PRESENT:
        coag += "; plan peri-procedural anticoagulant management (" + ", ".join(facts.anticoagulants.value or ()) + ")"
    return [
        _activity("Coagulation check (PT/INR) before the procedure", coag.replace(" ()", ""), (CPT, "85610")),
        _activity("Allergy check: PMMA bone cement and contrast",
                  "Confirm no allergy to bone cement (PMMA) or iodinated contrast before the procedure"),
    ]


def _bone_health(facts: FractureFacts) -> list[dict[str, Any]]:
    out = []
    if facts.dxa.status is Status.PRESENT:
        where = ", ".join(facts.dxa.references) or "documented"
        out.append(_activity("DXA bone density evaluation", f"DXA referral or result on record ({where}): complete "
                             "the evaluation and osteoporosis education (continuum of care, LCD L34106)",
                             (CPT, "77080")))
    else:
        out.append(_activity("DXA bone density referral", "Bone-density evaluation (DXA) with osteoporosis "
                             "education (continuum of care, LCD L34106)", (CPT, "77080")))
    program = "Osteoporosis treatment and education"
    if facts.osteoporosis_program.status is Status.PRESENT:
        description = "Continue the osteoporosis treatment program and education; fracture-liaison follow-up"
    else:
        description = ("Start an osteoporosis prevention/treatment program (e.g. bisphosphonate or denosumab) with "
                       "education; fracture-liaison or bone-health clinic referral")
    out.append(_activity(program, description))
    return out


def _work_up(judgement: Judgement) -> list[dict[str, Any]]:
    """One activity per missing item, coded when the item names a known test."""
    out = []
    for item in judgement.missing:
        if item.startswith(REVIEW_PREFIX):
            continue
        text = item[0].upper() + item[1:]
        codes: list[tuple[str, str]] = []
        if "MRI with STIR" in item:
            regions = dict.fromkeys(region(lv) for lv in sort_levels(_LEVEL.findall(item)))
            codes = [(CPT, cpt.MRI_BY_REGION[r]) for r in regions if r in cpt.MRI_BY_REGION]
        elif loinc.PAIN_NRS in item:
            codes = [(LOINC, loinc.PAIN_NRS)]
        elif "77080" in item:
            codes = [(CPT, "77080")]
        elif "6301-6" in item:
            codes = [(CPT, "85610")]
        out.append(_activity(text[:200], f"Needed to decide eligibility: {item}", *codes))
    return out

"""Evaluation object → CDS Hooks 2.0 cards.

No clinical logic here: the decision, technique, levels, criteria, missing items, flags and the
proposed CarePlan all come from the evaluation object (the public contract). This module only
chooses words, the indicator and the suggestion shape, and guarantees the card rules checked by
`fhir_vcf.outputs.card_rules.validate_cards` (uuid everywhere, summary < 140 characters,
`selectionBehavior` with suggestions, no null or empty values, a detail of at most DETAIL_LIMIT
characters). The detail is deliberately short: the whole explanation is one link away.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_vcf.outputs import explain
from fhir_vcf.outputs.prune import prune_empty

SUMMARY_LIMIT = 139  # the spec: "less than 140 characters"


TOPIC = {
    "system": "urn:fhir-vcf:topic",
    "code": "vertebral-augmentation-eligibility",
    "display": "Vertebral augmentation eligibility",
}

OVERRIDE_SYSTEM = "urn:fhir-vcf:override-reason"
def _reason(code: str, display: str) -> dict[str, str]:
    return {"system": OVERRIDE_SYSTEM, "code": code, "display": display}


# Reasons that fit any card: the record or the card does not fit this patient.
_ANY_CARD = (
    _reason("record-incorrect", "The record is incorrect or out of date"),
    _reason("not-applicable", "Not applicable to this patient"),
)
# Reasons to dismiss a warning or critical card (go ahead despite the advice).
OVERRIDE_REASONS: tuple[dict[str, str], ...] = (
    _reason("documented-elsewhere", "Criteria are documented outside this record"),
    _reason("clinical-judgement", "Clinical judgement: the benefit outweighs the guideline"),
    *_ANY_CARD,
)
# Reasons to dismiss an info card (eligible) without taking its proposed care plan.
INFO_OVERRIDE_REASONS: tuple[dict[str, str], ...] = (
    _reason("plan-in-place", "A care plan is already in place"),
    _reason("patient-declines", "The patient declines the proposed plan"),
    *_ANY_CARD,
)

DECISION_WORDS = {
    "eligible": "eligible",
    "not-eligible": "not eligible",
    "needs-review": "needs review",
    "insufficient-data": "insufficient data",
}

TECHNIQUES = frozenset({"kyphoplasty", "vertebroplasty"})

_DRAFT_REFERENCE = re.compile(r"^ServiceRequest/[A-Za-z0-9\-.]{1,64}$")  # FHIR id syntax


@dataclass(frozen=True)
class CardSource:
    """Who the card comes from and where its rules are explained."""

    label: str = "fhir-vcf vertebral augmentation rules"
    url: str | None = None
    guideline_url: str | None = None
    guideline_label: str = "Coverage policy"
    criteria_url: str | None = None
    criteria_label: str = "Criteria explained"
    icon: str | None = None


@dataclass(frozen=True)
class OrderContext:
    """The draft augmentation order the card is about (order-select / order-sign)."""

    reference: str  # "ServiceRequest/abc"
    technique: str = "unspecified"  # what was ordered: kyphoplasty | vertebroplasty | unspecified
    signing: bool = False  # order-sign: the clinician is signing it now
    levels: Sequence[str] = field(default_factory=tuple)


def _levels_text(levels: Sequence[str]) -> str:
    return ", ".join(levels)


def _shorten(text: str, limit: int = SUMMARY_LIMIT) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip(" ,;:-") + "…"


def _is_absolute(criterion: Mapping[str, Any]) -> bool:
    """The policy labels each exclusion absolute or relative; the card only reads that label."""
    return criterion.get("kind") == "exclusion" and criterion.get("exclusionKind") == "absolute"


def absolute_exclusions_present(evaluation: Mapping[str, Any]) -> list[str]:
    """Absolute exclusions present: signing an augmentation order despite one earns a `critical` card."""
    return [
        c["id"] for c in evaluation.get("criteria", [])
        if explain.is_mapping(c) and _is_absolute(c) and c.get("status") == "present"
    ]


def technique_mismatch(evaluation: Mapping[str, Any], order: OrderContext | None) -> bool:
    """The ordered technique is a definite one and the advice names the other."""
    return bool(
        order
        and order.technique in TECHNIQUES
        and evaluation.get("technique") in TECHNIQUES
        and evaluation.get("technique") != order.technique
    )


def indicator_for(evaluation: Mapping[str, Any], order: OrderContext | None) -> str:
    if order and order.signing and absolute_exclusions_present(evaluation):
        return "critical"
    return "info" if evaluation.get("decision") == "eligible" else "warning"


def summary_for(evaluation: Mapping[str, Any], order: OrderContext | None) -> str:
    decision = evaluation.get("decision")
    levels = _levels_text(evaluation.get("levels") or (order.levels if order else ()))
    at = f" at {levels}" if levels else ""
    what = order.technique if order and order.technique in TECHNIQUES else "vertebral augmentation"
    what_cap = what[0].upper() + what[1:]
    missing = [m for m in evaluation.get("missing", []) if m]
    advice = evaluation.get("technique")
    ordered = order.technique if order else ""
    if order and order.signing and absolute_exclusions_present(evaluation):
        ids = ", ".join(absolute_exclusions_present(evaluation))
        text = f"Do not sign: {what}{at} is contraindicated (absolute exclusion {ids})"
    elif decision == "eligible":
        if technique_mismatch(evaluation, order):
            text = f"Eligible{at}, but {advice} is advised rather than the ordered {ordered}"
        elif advice in TECHNIQUES:
            text = f"{what_cap}{at}: eligible under the coverage criteria; {advice} advised"
        else:
            text = f"{what_cap}{at}: eligible under the coverage criteria"
    elif decision == "not-eligible":
        text = f"{what_cap}{at}: not eligible; conservative care is advised"
    elif decision == "needs-review":
        text = f"{what_cap}{at}: needs review before {'signing' if order and order.signing else 'ordering'}"
    elif decision == "insufficient-data":
        count = len(missing)
        items = "1 item is" if count == 1 else f"{count} items are" if count else "data is"
        text = f"{what_cap}{at}: {items} missing to decide eligibility"
    else:
        text = f"{what_cap}{at}: eligibility {decision}"
    return _shorten(text)


DETAIL_LIMIT = 600  # characters of Markdown: what an EHR side panel shows well (issue 12); the page has the rest
_REASON_LIMIT = 160  # characters of one driving criterion's reason in the detail
_ITEM_LIMIT = 110  # characters of one missing item or flag
MISSING_SHOWN = 3


def _clip(text: Any, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,;:-") + "…"


def detail_for(evaluation: Mapping[str, Any], order: OrderContext | None) -> str:
    """GitHub Markdown of at most DETAIL_LIMIT characters: the decision, the order's warnings, the one
    or two criteria that drive the decision, up to three missing items. Everything else is one click
    away on the explanation page ("Open the full explanation"). When the words do not fit, the
    reasons are shortened first, so the structure (and every warning) always survives."""
    for reason_limit in (_REASON_LIMIT, 100, 60):
        text = _detail(evaluation, order, reason_limit)
        if len(text) <= DETAIL_LIMIT:
            return text
    return _clip_lines(text, DETAIL_LIMIT)


def _detail(evaluation: Mapping[str, Any], order: OrderContext | None, reason_limit: int) -> str:
    decision = DECISION_WORDS.get(str(evaluation.get("decision")), str(evaluation.get("decision")))
    head = [f"**Decision:** {decision}"]
    if evaluation.get("levels"):
        head.append(f"**Levels:** {_levels_text(evaluation['levels'])}")
    if evaluation.get("asOf"):
        head.append(f"**As of:** {evaluation['asOf']}")
    if evaluation.get("policy"):
        head.append(f"**Policy:** {evaluation['policy']}")
    required = [" · ".join(head)]
    advice = evaluation.get("technique")
    if order and order.signing:  # only a signing is warned, so only a signing looks (every criterion, each try)
        excluded = absolute_exclusions_present(evaluation)
        if excluded:
            required += ["", f"> **Absolute exclusion present ({', '.join(excluded)}).** Augmentation is not "
                             "appropriate."]
    if order and technique_mismatch(evaluation, order):
        required += ["", f"> The order is for **{order.technique}** but the findings favour **{advice}**."
                         " Check the technique before signing."]
    drivers = explain.drivers(evaluation)
    if drivers:
        required += ["", *(f"- **{c.get('id')} {_clip(c.get('title', ''), 60)}** ({explain.status_words(c).lower()}): "
                           f"{_clip(c.get('reason', ''), reason_limit)}" for c in drivers)]
    elif evaluation.get("decisionReason"):
        required += ["", _clip(evaluation["decisionReason"], reason_limit)]
    if (advice and advice != "none") or order:
        technique_line = f"**Technique advice:** {advice}" if advice and advice != "none" else ""
        if order:
            technique_line += f" · **Ordered:** {order.technique} ({_clip(order.reference, 60)})"
        required += ["", technique_line.lstrip(" ·")]
    missing = [m for m in evaluation.get("missing", []) if m]
    if missing:
        shown = [f"- {_clip(m, min(_ITEM_LIMIT, reason_limit))}" for m in missing[:MISSING_SHOWN]]
        if len(missing) > MISSING_SHOWN:
            shown.append(f"- and {len(missing) - MISSING_SHOWN} more in the full explanation")
        required += ["", "**Missing**", *shown]
    text = "\n".join(required)
    # Optional, while room remains: the technique's reason and the flags a reviewer should see.
    why = str(evaluation.get("techniqueReason") or "")
    if advice and advice != "none" and why:
        why = why.removeprefix(f"{advice}:").strip()  # "vertebroplasty: simple fracture ..." names it already
        text = _fit(text, text.replace(f"**Technique advice:** {advice}",
                                       f"**Technique advice:** {advice} ({_clip(why, 140)})", 1))
    flags = [f for f in evaluation.get("flags", []) if f]
    if flags:
        text = _fit(text, text + "\n\n**Flags**\n" + "\n".join(f"- {_clip(f, _ITEM_LIMIT)}" for f in flags[:2]))
    return text


def _fit(current: str, longer: str) -> str:
    return longer if len(longer) <= DETAIL_LIMIT else current


def _clip_lines(text: str, limit: int) -> str:
    """Whole lines while they fit, then an ellipsis line: Markdown never cut inside a construct."""
    out: list[str] = []
    for line in text.split("\n"):
        if len("\n".join([*out, line, "…"])) > limit:
            break
        out.append(line)
    return "\n".join([*out, "…"])


def _careplan(evaluation: Mapping[str, Any]) -> dict[str, Any] | None:
    plan = evaluation.get("carePlan")
    if not isinstance(plan, Mapping) or plan.get("resourceType") != "CarePlan":
        return None
    # prune_empty builds new dicts and lists at every depth (the leaves are JSON scalars), so the card's
    # plan shares nothing mutable with the evaluation: no deep copy needed (0.3 ms a card).
    plan = prune_empty(plan)
    # A proposal, never an active plan: the clinician accepts it (CDS Hooks, proposed CarePlan).
    plan["status"] = "draft"
    plan["intent"] = "proposal"
    if "subject" not in plan and evaluation.get("patient"):
        plan["subject"] = {"reference": evaluation["patient"]}
    return plan if plan.get("activity") and plan.get("subject") else None


def suggestions_for(evaluation: Mapping[str, Any], order: OrderContext | None) -> list[dict[str, Any]]:
    plan = _careplan(evaluation)
    if plan is None:
        return []
    decision = evaluation.get("decision")
    actions: list[dict[str, Any]] = []
    recommended = False
    if order and decision == "not-eligible":
        label = "Propose conservative care instead of vertebral augmentation"
        actions.append({"type": "create", "description": "Add the proposed conservative-care plan", "resource": plan})
        if _DRAFT_REFERENCE.match(order.reference):
            # A delete names its target as Type/id; a draft order sent without an id cannot be
            # named, so the clinician removes it by hand (the card's detail names it).
            actions.append({
                "type": "delete",
                "description": f"Remove the draft vertebral augmentation order ({order.reference})",
                "resourceId": [order.reference],
            })
        recommended = True
    elif decision == "not-eligible":
        label = "Add the proposed conservative-care plan"
        actions.append({"type": "create", "description": label, "resource": plan})
        recommended = True
    else:
        label = "Add the proposed care plan"
        actions.append({"type": "create", "description": "Add the proposed care plan as a draft", "resource": plan})
    suggestion: dict[str, Any] = {"label": label, "uuid": str(uuid.uuid4()), "actions": actions}
    if recommended:
        suggestion["isRecommended"] = True
    return [suggestion]


EXPLANATION_LABEL = "Open the full explanation"


def _links(source: CardSource, detail: str, explanation_url: str | None = None) -> list[dict[str, str]]:
    """The explanation page first (what a clinician opens), then the policy's public text."""
    links = []
    seen: set[str] = set()
    for label, url in ((EXPLANATION_LABEL, explanation_url), (source.guideline_label, source.guideline_url),
                       (source.criteria_label, source.criteria_url)):
        if url and url not in seen and url not in detail:
            links.append({"label": label, "url": url, "type": "absolute"})
            seen.add(url)
    return links


def render_card(
    evaluation: Mapping[str, Any],
    *,
    source: CardSource | None = None,
    order: OrderContext | None = None,
    explanation_url: str | None = None,
    evaluation_id: str | None = None,
) -> dict[str, Any]:
    """One card for one evaluation (a patient, or one draft augmentation order).

    `explanation_url`: the signed link to this evaluation's page (service/pages.py), offered first
    among the links; `evaluation_id`: the kept evaluation's id, in the machine-readable extension.
    """
    source = source or CardSource()
    indicator = indicator_for(evaluation, order)
    detail = detail_for(evaluation, order)
    card_source: dict[str, Any] = {"label": source.label, "topic": dict(TOPIC)}
    if source.url:
        card_source["url"] = source.url
    if source.icon:
        card_source["icon"] = source.icon
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary_for(evaluation, order),
        "detail": detail,
        "indicator": indicator,
        "source": card_source,
        # Machine-readable summary for logs, replay and feedback analysis (CDS Hooks extension).
        "extension": {"fhir-vcf": {
            "decision": evaluation.get("decision"),
            "technique": evaluation.get("technique"),
            "policy": evaluation.get("policy"),
            "levels": list(evaluation.get("levels") or ()),
            "asOf": evaluation.get("asOf"),
            "request": order.reference if order else None,
            "evaluation": evaluation_id,
        }},
    }
    card = prune_empty(card)
    # Added after the pruning: a suggestion holds no empty value (its plan was pruned by `_careplan`,
    # the rest are non-empty words, a uuid and a checked reference), and walking its CarePlan a second
    # time was a third of rendering a card.
    suggestions = suggestions_for(evaluation, order)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    # Always offered: the EHR then sends a coded reason with an `overridden` feedback.
    reasons = INFO_OVERRIDE_REASONS if indicator == "info" else OVERRIDE_REASONS
    card["overrideReasons"] = [dict(r) for r in reasons]  # module constants: no empty value
    links = prune_empty(_links(source, detail, explanation_url))
    if links:
        card["links"] = links
    return card


def render_cards(
    evaluations: Sequence[tuple[Mapping[str, Any], OrderContext | None]],
    *,
    source: CardSource | None = None,
    explanations: Sequence[tuple[str, str] | None] = (),
) -> dict[str, Any]:
    """The whole response body: `{"cards": [...]}` (possibly empty).

    `explanations[i]`: (evaluation id, page URL) of evaluation i when it was kept, else None.
    """
    cards = []
    for i, (ev, order) in enumerate(evaluations):
        kept = explanations[i] if i < len(explanations) else None
        cards.append(render_card(ev, source=source, order=order, evaluation_id=kept[0] if kept else None,
                                 explanation_url=kept[1] if kept else None))
    return {"cards": cards}


__all__ = [
    "DETAIL_LIMIT",
    "EXPLANATION_LABEL",
    "INFO_OVERRIDE_REASONS",
    "OVERRIDE_REASONS",
    "CardSource",
    "OrderContext",
    "absolute_exclusions_present",
    "detail_for",
    "indicator_for",
    "prune_empty",
    "render_card",
    "render_cards",
    "suggestions_for",
    "summary_for",
    "technique_mismatch",
]

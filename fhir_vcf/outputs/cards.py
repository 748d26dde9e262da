"""Evaluation object → CDS Hooks 2.0 cards.

No clinical logic here: the decision, technique, levels, criteria, missing items, flags and the
proposed CarePlan all come from the evaluation object (the public contract). This module only
chooses words, the indicator and the suggestion shape, and guarantees the card rules checked by
`fhir_vcf.outputs.card_rules.validate_cards` (uuid everywhere, summary < 140 characters,
`selectionBehavior` with suggestions, no null or empty values).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def _cell(value: Any) -> str:
    """One Markdown table cell: no pipes or line breaks can break the row."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = " ".join(str(value if value is not None else "").split())
    return text.replace("\\", "\\\\").replace("|", "\\|") or "—"


def _line(value: Any) -> str:
    return " ".join(str(value).split())


def _is_absolute(criterion: Mapping[str, Any]) -> bool:
    """The policy labels each exclusion absolute or relative; the card only reads that label."""
    return criterion.get("kind") == "exclusion" and criterion.get("exclusionKind") == "absolute"


def absolute_exclusions_present(evaluation: Mapping[str, Any]) -> list[str]:
    """Absolute exclusions present: signing an augmentation order despite one earns a `critical` card."""
    return [
        c["id"] for c in evaluation.get("criteria", [])
        if isinstance(c, Mapping) and _is_absolute(c) and c.get("status") == "present"
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


def detail_for(evaluation: Mapping[str, Any], order: OrderContext | None) -> str:
    """GitHub Markdown: the decision line, technique advice, the criteria table, missing, flags."""
    decision = DECISION_WORDS.get(str(evaluation.get("decision")), str(evaluation.get("decision")))
    lines = []
    head = [f"**Decision:** {decision}"]
    if evaluation.get("policy"):
        head.append(f"**Policy:** {evaluation['policy']}")
    if evaluation.get("asOf"):
        head.append(f"**As of:** {evaluation['asOf']}")
    if evaluation.get("levels"):
        head.append(f"**Levels:** {_levels_text(evaluation['levels'])}")
    lines.append(" · ".join(head))
    if evaluation.get("decisionReason"):
        lines += ["", _line(evaluation["decisionReason"])]
    advice = evaluation.get("technique")
    technique_line = f"**Technique advice:** {advice}" if advice else ""
    if advice and evaluation.get("techniqueReason"):
        technique_line += f" ({_line(evaluation['techniqueReason'])})"
    if order:
        technique_line += f" · **Ordered:** {order.technique} ({order.reference})"
    if technique_line:
        lines += ["", technique_line.lstrip(" ·")]
    if order and technique_mismatch(evaluation, order):
        lines += [
            "",
            f"> The order is for **{order.technique}** but the findings favour **{advice}**."
            " Check the technique before signing.",
        ]
    excluded = absolute_exclusions_present(evaluation)
    if excluded and order and order.signing:
        lines += ["", f"> **Absolute exclusion present ({', '.join(excluded)}).** Augmentation is not appropriate."]

    criteria = [c for c in evaluation.get("criteria", []) if isinstance(c, Mapping)]
    if criteria:
        lines += ["", "| id | criterion | status | reason | evidence |", "|---|---|---|---|---|"]
        for c in criteria:
            title = c.get("title", "")
            if _is_absolute(c):
                title = f"{title} (absolute)"
            lines.append(
                f"| {_cell(c.get('id'))} | {_cell(title)} | {_cell(c.get('status'))} | "
                f"{_cell(c.get('reason'))} | {_cell(c.get('evidence') or '')} |"
            )
    missing = [m for m in evaluation.get("missing", []) if m]
    if missing:
        lines += ["", "**Missing**", *[f"- {' '.join(str(m).split())}" for m in missing]]
    flags = [f for f in evaluation.get("flags", []) if f]
    if flags:
        lines += ["", "**Flags**", *[f"- {' '.join(str(f).split())}" for f in flags]]
    return "\n".join(lines)


def prune_empty(value: Any) -> Any:
    """Drop null and empty values (`None`, "", [], {}) at every depth: CDS Hooks forbids them."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            kept = prune_empty(item)
            if kept is None or kept == "" or kept == [] or kept == {}:
                continue
            out[key] = kept
        return out
    if isinstance(value, list):
        items = [prune_empty(v) for v in value]
        return [v for v in items if not (v is None or v == "" or v == [] or v == {})]
    return value


def _careplan(evaluation: Mapping[str, Any]) -> dict[str, Any] | None:
    plan = evaluation.get("carePlan")
    if not isinstance(plan, Mapping) or plan.get("resourceType") != "CarePlan":
        return None
    plan = prune_empty(copy.deepcopy(dict(plan)))
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


def _links(source: CardSource, detail: str) -> list[dict[str, str]]:
    links = []
    seen: set[str] = set()
    for label, url in ((source.guideline_label, source.guideline_url), (source.criteria_label, source.criteria_url)):
        if url and url not in seen and url not in detail:
            links.append({"label": label, "url": url, "type": "absolute"})
            seen.add(url)
    return links


def render_card(
    evaluation: Mapping[str, Any], *, source: CardSource | None = None, order: OrderContext | None = None
) -> dict[str, Any]:
    """One card for one evaluation (a patient, or one draft augmentation order)."""
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
        }},
    }
    suggestions = suggestions_for(evaluation, order)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    # Always offered: the EHR then sends a coded reason with an `overridden` feedback.
    reasons = INFO_OVERRIDE_REASONS if indicator == "info" else OVERRIDE_REASONS
    card["overrideReasons"] = [dict(r) for r in reasons]
    links = _links(source, detail)
    if links:
        card["links"] = links
    return prune_empty(card)


def render_cards(
    evaluations: Sequence[tuple[Mapping[str, Any], OrderContext | None]], *, source: CardSource | None = None
) -> dict[str, Any]:
    """The whole response body: `{"cards": [...]}` (possibly empty)."""
    return {"cards": [render_card(ev, source=source, order=order) for ev, order in evaluations]}


__all__ = [
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

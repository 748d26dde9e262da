"""The words of an explanation, shared by the card, the page and the text view.

One place says how a status reads ("Not met", "Present: excludes"), which criteria drove a decision,
and how a piece of evidence reads as a line a clinician understands ("MRI spine, 2025-06-05: '...
marrow edema at L1'") with its FHIR reference kept beside it, secondary. Reads only the public
evaluation dict (docs/design.md, "The evaluation object"), so a stored evaluation explains itself
the same way later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_vcf.mappers.codes.systems import CPT, LOINC

DECISION_WORDS = {
    "eligible": "Eligible",
    "not-eligible": "Not eligible",
    "needs-review": "Needs review",
    "insufficient-data": "Insufficient data",
}
DECISION_MEANING = {
    "eligible": "every inclusion criterion is met and no exclusion is present",
    "not-eligible": "an exclusion is present or an inclusion criterion is not met",
    "needs-review": "the record contradicts itself, or the coding route needs a person",
    "insufficient-data": "something the policy requires is not documented yet",
}
STATUS_WORDS = {
    "met": "Met",
    "not-met": "Not met",
    "unknown": "Unknown",
    "conflict": "Conflict",
    "present": "Present: excludes",
    "absent": "Absent",
    "not-applied": "Not applied",
}
# The icon a status wears (icon names the page's SVG symbols use).
STATUS_ICONS = {
    "met": "ok",
    "absent": "ok",
    "not-met": "no",
    "present": "no",
    "unknown": "unknown",
    "conflict": "warn",
    "not-applied": "skip",
}
KIND_WORDS = {"inclusion": "Inclusion criteria", "scope": "Coding route", "exclusion": "Exclusions"}
TECHNIQUE_WORDS = {"kyphoplasty": "Kyphoplasty", "vertebroplasty": "Vertebroplasty", "either": "Either technique",
                   "none": "No technique advised"}
FOUND_PER_LINE = 2  # statements quoted per evidence line
FOUND_MAX = 90  # characters of one quoted statement
SETTING_WORDS = {"hospitalized": "inpatient stay", "ambulatory": "outpatient visit", "observation": "observation stay"}


def status_words(criterion: Mapping[str, Any]) -> str:
    status = str(criterion.get("status", ""))
    if status == "conflict" and criterion.get("review"):
        return "Coding review"
    return STATUS_WORDS.get(status, status.replace("-", " ").capitalize())


def failed(criterion: Mapping[str, Any]) -> bool:
    """The criterion denies: an exclusion present, or an inclusion or scope criterion not met."""
    status = criterion.get("status")
    return status == ("present" if criterion.get("kind") == "exclusion" else "not-met")


def is_mapping(value: Any) -> bool:
    """`isinstance(value, Mapping)`, a plain dict answered by its exact type: the ABC check is a Python
    call (`ABCMeta.__instancecheck__`), and a card asks it of every criterion of its evaluation, plain
    dicts all, about 35 times."""
    return type(value) is dict or isinstance(value, Mapping)


def drivers(evaluation: Mapping[str, Any], limit: int = 2) -> list[Mapping[str, Any]]:
    """The criteria that settled the decision, by the decision's precedence (clinical-rules.md,
    Decision): what denies, else what needs review, else what is unknown; none when eligible."""
    criteria = [c for c in evaluation.get("criteria") or () if is_mapping(c)]
    decision = evaluation.get("decision")
    if decision == "not-eligible":
        found = [c for c in criteria if failed(c)]
    elif decision == "needs-review":
        found = [c for c in criteria if c.get("status") == "conflict"]
    elif decision == "insufficient-data":
        found = [c for c in criteria if c.get("status") == "unknown"]
    else:
        found = []
    # Absolute exclusions first: they are the strongest reason a reader needs to see.
    found.sort(key=lambda c: c.get("exclusionKind") != "absolute")
    return found[:limit]


@dataclass(frozen=True)
class EvidenceLine:
    """One resource's evidence for one criterion, as a person reads it, with the FHIR detail apart."""

    text: str
    reference: str
    detail: str = ""  # "conclusion · text": the elements read and how
    method: str = ""  # "code" | "text" | "code, text"


def _strip_date(found: str, day: str) -> str:
    """"RxNorm 161 (acetaminophen), 2025-06-05" → "RxNorm 161 (acetaminophen)" when the line names the day."""
    if not day:
        return found
    for tail in (f", {day}", f" on {day}", day):
        if found.endswith(tail) and found != tail:
            return found[: -len(tail)].rstrip(" ,;")
    return "" if found == day else found


def pain_settings(evaluation: Mapping[str, Any]) -> dict[str, str]:
    """Pain-score reference → where it was taken ("clinic visit", "inpatient stay")."""
    out = {}
    for score in (evaluation.get("timeline") or {}).get("painScores") or ():
        where = score.get("encounterLabel") or SETTING_WORDS.get(str(score.get("setting")), "")
        if score.get("reference") and where:
            out[score["reference"]] = where
    return out


def _pain_encounters(evaluation: Mapping[str, Any]) -> set[str]:
    return {s["encounter"] for s in (evaluation.get("timeline") or {}).get("painScores") or () if s.get("encounter")}


def evidence_lines(criterion: Mapping[str, Any], evaluation: Mapping[str, Any],
                   settings: Mapping[str, str] | None = None) -> list[EvidenceLine]:
    """The criterion's evidence, one line per resource, in the order the rules cited it.

    A pain score reads "NRS 7 on 2025-06-20, clinic visit"; the Encounter that only told the
    setting of a score already shown is not repeated as a line of its own. `settings` is the
    evaluation's `pain_settings`, for a caller that reads every criterion (the page: read once, not
    once a criterion).
    """
    details = [d for d in criterion.get("evidenceDetail") or () if is_mapping(d)]
    if not details:
        return [EvidenceLine(str(ref), str(ref)) for ref in criterion.get("evidence") or ()]
    settings = pain_settings(evaluation) if settings is None else settings
    reason = str(criterion.get("reason") or "")
    by_ref: dict[str, list[Mapping[str, Any]]] = {}
    for item in details:
        by_ref.setdefault(str(item.get("reference", "")), []).append(item)
    shown_scores = {ref for ref in by_ref if ref in settings}
    setting_only = _pain_encounters(evaluation) if shown_scores else set()
    lines = []
    for ref, items in by_ref.items():
        if ref in setting_only and all(i.get("element") == "class" for i in items):
            continue
        first = items[0]
        resource, day = str(first.get("resource") or ""), str(first.get("date") or "")
        # Each item read once (a line has one or two): its words, element and method, first seen first.
        said: dict[str, None] = {}
        elements: dict[str, None] = {}
        methods: dict[str, None] = {}
        for item in items:
            if words := item.get("found"):
                said[str(words)] = None
            if element := item.get("element"):
                elements[str(element)] = None
            if method := item.get("method"):
                methods[str(method)] = None
        if ref in settings:  # "NRS 7 on 2025-06-20": the score's own words keep their date
            text = "; ".join(said) or resource
            text += f", {settings[ref]}"
        else:
            # A quotation the reason already makes (a criterion decided by prose) is not printed twice.
            found = list(dict.fromkeys(f for f in (_strip_date(words, day) for words in said)
                                       if f and not (f.startswith("'") and f in reason)))
            if len(found) > FOUND_PER_LINE:  # a line stays a line: the rest is counted, the elements listed
                found = [*found[:FOUND_PER_LINE], f"and {len(found) - FOUND_PER_LINE} more"]
            found = [f if len(f) <= FOUND_MAX else f[: FOUND_MAX - 1].rstrip() + "…" for f in found]
            head = ", ".join(p for p in (resource, day) if p) or ref
            text = f"{head}: {' · '.join(found)}" if found else head
        lines.append(EvidenceLine(text, ref, " · ".join(elements), ", ".join(methods)))
    return lines


def summary_sentence(evaluation: Mapping[str, Any]) -> str:
    """The decision in one plain sentence: what, where, and why in the policy's terms."""
    decision = str(evaluation.get("decision", ""))
    levels = ", ".join(evaluation.get("levels") or ()) or "no level documented"
    words = DECISION_WORDS.get(decision, decision)
    return f"{words} for vertebral augmentation at {levels}: {DECISION_MEANING.get(decision, decision)}."


def careplan_activities(evaluation: Mapping[str, Any]) -> list[dict[str, str]]:
    """The proposed CarePlan's activities as (title, codes, description) for a reader."""
    plan = evaluation.get("carePlan")
    out = []
    for activity in (plan.get("activity") or ()) if isinstance(plan, Mapping) else ():
        detail = activity.get("detail") if isinstance(activity, Mapping) else None
        if not isinstance(detail, Mapping):
            continue
        code = detail.get("code") if isinstance(detail.get("code"), Mapping) else {}
        names = {CPT: "CPT", LOINC: "LOINC"}
        codes = ", ".join(f"{names.get(str(c.get('system')), '')} {c.get('code', '')}".strip()
                          for c in code.get("coding") or () if isinstance(c, Mapping))
        out.append({"title": str(code.get("text") or "Activity"), "codes": codes,
                    "description": str(detail.get("description") or "")})
    return out


def policy_url(evaluation: Mapping[str, Any]) -> str:
    """The policy's public text: its first cited source with a URL."""
    return next((str(s["url"]) for s in evaluation.get("policySources") or ()
                 if isinstance(s, Mapping) and s.get("url")), "")


def grouped(criteria: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Criteria by kind, in the page's order: inclusion, coding route, exclusions."""
    out = []
    for kind, words in KIND_WORDS.items():
        rows = [c for c in criteria if c.get("kind") == kind]
        if rows:
            out.append((words, rows))
    other = [c for c in criteria if c.get("kind") not in KIND_WORDS]
    if other:
        out.append(("Other criteria", other))
    return out


__all__ = [
    "DECISION_MEANING",
    "DECISION_WORDS",
    "STATUS_ICONS",
    "STATUS_WORDS",
    "EvidenceLine",
    "careplan_activities",
    "drivers",
    "evidence_lines",
    "failed",
    "grouped",
    "pain_settings",
    "policy_url",
    "status_words",
    "summary_sentence",
]


def skipped_text(evaluation: Mapping[str, Any]) -> str:
    """What the evaluation set aside unread, in one line ("1 entered-in-error, 2 type-not-read"), or ""."""
    counts = evaluation.get("skipped")
    if not isinstance(counts, Mapping):
        return ""
    return ", ".join(f"{n} {reason}" for reason, n in counts.items() if isinstance(n, int) and n > 0)

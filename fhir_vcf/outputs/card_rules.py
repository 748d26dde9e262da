"""A validator for CDS Hooks 2.0 responses: every card rule this service promises, checkable.

`validate_cards(response_json) -> list[str]` returns the problems found (empty = valid). It checks
the spec's MUSTs and the stricter house rules that peer services break (see
`shared/docs/cds-hooks.md`): a uuid on every card and suggestion, `selectionBehavior` whenever
suggestions exist, at most one recommended suggestion under `at-most-one`, no `null` or empty
values anywhere except `cards: []`, links not repeated from `detail`, complete proposed CarePlans,
a `detail` of at most DETAIL_MAX characters.
The tests use it and so does the replay tool, against any CDS service's answers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

INDICATORS = frozenset({"info", "warning", "critical"})
SELECTION_BEHAVIORS = frozenset({"at-most-one", "any"})
ACTION_TYPES = frozenset({"create", "update", "delete"})
LINK_TYPES = frozenset({"absolute", "smart"})
SUMMARY_MAX = 140  # "SHALL be less than 140 characters"
# House rule (issue 12): an EHR side panel shows a short detail well; the criteria table belongs on
# the explanation page, linked from the card.
DETAIL_MAX = 600


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_absolute_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def find_empty_values(value: Any, path: str = "$") -> list[str]:
    """Paths of `null`, `""`, `[]` and `{}` anywhere below `value`."""
    problems: list[str] = []
    if value is None:
        return [f"{path}: null value"]
    if isinstance(value, str):
        return [f"{path}: empty string"] if value == "" else []
    if isinstance(value, Mapping):
        if not value:
            problems.append(f"{path}: empty object")
        for key, item in value.items():
            problems.extend(find_empty_values(item, f"{path}.{key}"))
    elif isinstance(value, list):
        if not value:
            problems.append(f"{path}: empty array")
        for i, item in enumerate(value):
            problems.extend(find_empty_values(item, f"{path}[{i}]"))
    return problems


def _check_coding(coding: Any, where: str, *, need_display: bool) -> list[str]:
    if not isinstance(coding, Mapping):
        return [f"{where}: must be a Coding object"]
    problems = []
    if not isinstance(coding.get("code"), str):
        problems.append(f"{where}: Coding without a code")
    if "system" in coding and not isinstance(coding["system"], str):
        problems.append(f"{where}: Coding system must be a string")
    if need_display and not isinstance(coding.get("display"), str):
        problems.append(f"{where}: Coding without a display")
    return problems


def _check_careplan(resource: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    if resource.get("status") != "draft":
        problems.append(f"{where}: a proposed CarePlan must have status 'draft'")
    if resource.get("intent") != "proposal":
        problems.append(f"{where}: a proposed CarePlan must have intent 'proposal'")
    subject = resource.get("subject")
    if not isinstance(subject, Mapping) or not subject.get("reference"):
        problems.append(f"{where}: a proposed CarePlan needs a subject reference")
    if not resource.get("activity"):
        problems.append(f"{where}: a proposed CarePlan needs at least one activity")
    return problems


def _check_suggestion(suggestion: Any, where: str) -> list[str]:
    if not isinstance(suggestion, Mapping):
        return [f"{where}: must be an object"]
    problems = []
    if not isinstance(suggestion.get("label"), str):
        problems.append(f"{where}.label: required")
    if not _is_uuid(suggestion.get("uuid")):
        problems.append(f"{where}.uuid: required, a UUID (without it the EHR cannot report acceptance)")
    if "isRecommended" in suggestion and not isinstance(suggestion["isRecommended"], bool):
        problems.append(f"{where}.isRecommended: must be true or false")
    actions = suggestion.get("actions", [])
    if not isinstance(actions, list):
        return [*problems, f"{where}.actions: must be an array"]
    for j, action in enumerate(actions):
        at = f"{where}.actions[{j}]"
        if not isinstance(action, Mapping):
            problems.append(f"{at}: must be an object")
            continue
        kind = action.get("type")
        if kind not in ACTION_TYPES:
            problems.append(f"{at}.type: must be one of create, update, delete (got {kind!r})")
        if not isinstance(action.get("description"), str):
            problems.append(f"{at}.description: required")
        if kind in {"create", "update"}:
            resource = action.get("resource")
            if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
                problems.append(f"{at}.resource: a {kind} action carries the whole resource")
            elif resource.get("resourceType") == "CarePlan" and kind == "create":
                problems.extend(_check_careplan(resource, f"{at}.resource"))
        if kind == "delete":
            ids = action.get("resourceId")
            if not isinstance(ids, list) or not all(isinstance(i, str) and "/" in i for i in ids):
                problems.append(f"{at}.resourceId: a delete action names the resources as ['Type/id', ...]")
    return problems


def _check_card(card: Any, where: str) -> list[str]:
    if not isinstance(card, Mapping):
        return [f"{where}: must be an object"]
    problems: list[str] = []
    if not _is_uuid(card.get("uuid")):
        problems.append(f"{where}.uuid: required, a UUID (without it the EHR sends no feedback)")
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        problems.append(f"{where}.summary: required")
    else:
        if len(summary) >= SUMMARY_MAX:
            problems.append(f"{where}.summary: {len(summary)} characters; must be fewer than {SUMMARY_MAX}")
        if "\n" in summary:
            problems.append(f"{where}.summary: one sentence, no line breaks")
    detail = card.get("detail")
    if "detail" in card and not isinstance(detail, str):
        problems.append(f"{where}.detail: must be a Markdown string")
    elif isinstance(detail, str) and len(detail) > DETAIL_MAX:
        problems.append(f"{where}.detail: {len(detail)} characters; keep it to {DETAIL_MAX} and link the rest")
    if card.get("indicator") not in INDICATORS:
        problems.append(f"{where}.indicator: must be info, warning or critical (got {card.get('indicator')!r})")

    source = card.get("source")
    if not isinstance(source, Mapping) or not isinstance(source.get("label"), str):
        problems.append(f"{where}.source.label: required")
    else:
        if "url" in source and not _is_absolute_url(source["url"]):
            problems.append(f"{where}.source.url: must be an absolute http(s) URL")
        if "icon" in source and not _is_absolute_url(source["icon"]):
            problems.append(f"{where}.source.icon: must be an absolute http(s) URL")
        if "topic" in source:
            problems.extend(_check_coding(source["topic"], f"{where}.source.topic", need_display=False))

    suggestions = card.get("suggestions")
    if suggestions is not None:
        if not isinstance(suggestions, list):
            problems.append(f"{where}.suggestions: must be an array")
        else:
            behavior = card.get("selectionBehavior")
            if behavior not in SELECTION_BEHAVIORS:
                problems.append(
                    f"{where}.selectionBehavior: required with suggestions, 'at-most-one' or 'any' (got {behavior!r})"
                )
            recommended = sum(1 for s in suggestions if isinstance(s, Mapping) and s.get("isRecommended") is True)
            if behavior == "at-most-one" and recommended > 1:
                problems.append(f"{where}.suggestions: {recommended} recommended under 'at-most-one'; at most one")
            for i, suggestion in enumerate(suggestions):
                problems.extend(_check_suggestion(suggestion, f"{where}.suggestions[{i}]"))
            problems.extend(_repeated_uuids(suggestions, f"{where}.suggestions", "repeated"))
    elif "selectionBehavior" in card:
        problems.append(f"{where}.selectionBehavior: only with suggestions")

    reasons = card.get("overrideReasons")
    if reasons is not None:
        if not isinstance(reasons, list):
            problems.append(f"{where}.overrideReasons: must be an array of Codings")
        else:
            for i, coding in enumerate(reasons):
                problems.extend(_check_coding(coding, f"{where}.overrideReasons[{i}]", need_display=True))

    links = card.get("links")
    if links is not None:
        if not isinstance(links, list):
            problems.append(f"{where}.links: must be an array")
        else:
            for i, link in enumerate(links):
                at = f"{where}.links[{i}]"
                if not isinstance(link, Mapping):
                    problems.append(f"{at}: must be an object")
                    continue
                if not isinstance(link.get("label"), str):
                    problems.append(f"{at}.label: required")
                if not _is_absolute_url(link.get("url")):
                    problems.append(f"{at}.url: required, an absolute http(s) URL")
                if link.get("type") not in LINK_TYPES:
                    problems.append(f"{at}.type: must be 'absolute' or 'smart' (got {link.get('type')!r})")
                if "appContext" in link and link.get("type") != "smart":
                    problems.append(f"{at}.appContext: only for smart links")
                url = link.get("url")
                if isinstance(detail, str) and isinstance(url, str) and url in detail:
                    problems.append(f"{at}.url: repeats a link already in detail")
    return problems


def validate_cards(response_json: Any) -> list[str]:
    """Problems with a CDS Hooks 2.0 service response (`{"cards": [...]}`); empty when valid."""
    if not isinstance(response_json, Mapping):
        return ["$: the response must be a JSON object"]
    cards = response_json.get("cards")
    if not isinstance(cards, list):
        return ["$.cards: required, an array (use [] when there is nothing to say)"]
    problems: list[str] = []
    if cards:
        problems.extend(find_empty_values(cards, "$.cards"))
    for key, value in response_json.items():
        if key != "cards":
            problems.extend(find_empty_values(value, f"$.{key}"))
    if "systemActions" in response_json and not isinstance(response_json["systemActions"], list):
        problems.append("$.systemActions: must be an array")
    for i, card in enumerate(cards):
        problems.extend(_check_card(card, f"$.cards[{i}]"))
    problems.extend(_repeated_uuids(cards, "$.cards", "repeated; every card needs its own uuid"))
    return problems


def _repeated_uuids(items: list[Any], where: str, message: str) -> list[str]:
    """A uuid seen before in the same list: feedback could not tell the two apart."""
    seen: set[str] = set()
    problems = []
    for i, item in enumerate(items):
        uid = item.get("uuid") if isinstance(item, Mapping) else None
        if isinstance(uid, str):
            if uid in seen:
                problems.append(f"{where}[{i}].uuid: {message}")
            seen.add(uid)
    return problems


_TABLE_HEADER = re.compile(r"^\|\s*id\s*\|\s*criterion\s*\|\s*status\s*\|\s*reason\s*\|\s*evidence\s*\|", re.I | re.M)


def has_criteria_table(detail: str) -> bool:
    """Whether a card's detail carries the criteria table (id, criterion, status, reason, evidence)."""
    return bool(_TABLE_HEADER.search(detail))


__all__ = ["find_empty_values", "has_criteria_table", "validate_cards"]

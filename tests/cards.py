"""Test support for the CDS Hooks tests: the card validator and contract-shaped evaluation stubs.

The validator itself lives in `fhir_vcf.outputs.card_rules` (the replay command imports it too);
this module re-exports it and adds builders so the tests stay thin.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator
from typing import Any

from fhir_vcf.outputs.card_rules import find_empty_values, has_criteria_table, validate_cards

__all__ = [
    "assert_valid_cards",
    "careplan",
    "evaluation",
    "find_empty_values",
    "has_criteria_table",
    "hook_request",
    "validate_cards",
]

EHR = "https://ehr.example.org/fhir"


def assert_valid_cards(body: Any) -> list[dict[str, Any]]:
    problems = validate_cards(body)
    assert problems == [], "\n".join(problems)
    return body["cards"]


def careplan(patient: str = "Patient/p1", *, conservative: bool = False) -> dict[str, Any]:
    steps = ["Analgesia and activity modification", "Thoracolumbar brace"] if conservative else [
        "Vertebral augmentation", "DXA referral with osteoporosis education"]
    return {
        "resourceType": "CarePlan",
        "status": "draft",
        "intent": "proposal",
        "subject": {"reference": patient},
        "addresses": [{"reference": "Condition/vcf-1"}],
        "activity": [{"detail": {"status": "not-started", "description": s}} for s in steps],
        "note": [],  # an empty member the cards must prune
    }


CRITERIA = [
    {"id": "I1", "title": "Fracture age", "kind": "inclusion", "status": "met",
     "reason": "onset 2025-06-02, 28 days before the as-of date: acute", "evidence": ["Condition/vcf-1"],
     "source": "LCD L34106, inclusion 1a"},
    {"id": "I2", "title": "Level", "kind": "inclusion", "status": "met", "reason": "T12 | L1 in T1-L5",
     "evidence": ["Condition/vcf-1"], "source": "LCD L34106, inclusion 1b"},
    {"id": "X1", "title": "Pain not from the fracture", "kind": "exclusion", "exclusionKind": "absolute",
     "status": "absent",
     "reason": "no other pain generator documented", "evidence": [], "source": "LCD L34106"},
    {"id": "X2", "title": "Infection", "kind": "exclusion", "exclusionKind": "absolute", "status": "absent",
     "reason": "no infection on record", "evidence": [], "source": "LCD L34106"},
]


def evaluation(
    decision: str = "eligible",
    *,
    technique: str = "kyphoplasty",
    levels: tuple[str, ...] = ("T12", "L1"),
    missing: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    present: tuple[str, ...] = (),
    patient: str = "Patient/p1",
    with_careplan: bool = True,
    route: str = "osteoporotic",
) -> dict[str, Any]:
    """A contract-shaped evaluation object (docs/design.md). `present` sets exclusions to present;
    `route` "none" is what the rules say when the record holds no vertebral fracture."""
    criteria = copy.deepcopy(CRITERIA)
    for c in criteria:
        if c["id"] in present:
            c["status"] = "present"
            c["evidence"] = ["Condition/infection-1"]
    for xid in present:
        if not any(c["id"] == xid for c in criteria):
            # The policy labels X1-X3 absolute, the rest relative (clinical-rules.md, exclusions).
            kind = "absolute" if xid in {"X1", "X2", "X3"} else "relative"
            criteria.append({"id": xid, "title": f"Exclusion {xid}", "kind": "exclusion", "exclusionKind": kind,
                             "status": "present",
                             "reason": "documented", "evidence": ["Condition/x"], "source": "LCD L34106"})
    result: dict[str, Any] = {
        "patient": patient, "asOf": "2025-06-30", "policy": "cms-lcd-pva", "decision": decision,
        "technique": technique, "levels": list(levels), "criteria": criteria, "missing": list(missing),
        "route": route,
        "flags": list(flags),
    }
    if with_careplan:
        result["carePlan"] = careplan(patient, conservative=decision == "not-eligible")
    return result


def hook_request(hook: str = "patient-view", *, patient: str = "p1", **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": patient}
    context.update(extra.pop("context", {}))
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    body.update(extra)
    return body


def random_trees(leaves: list[Any], *, seed: int, count: int = 3000, depth: int = 5) -> Iterator[Any]:
    """`count` random JSON-like trees of dicts and lists over `leaves` (for checking a pruner's fast
    path against the rule it replaces)."""
    rng = random.Random(seed)

    def tree(level: int) -> Any:
        if level == 0 or rng.random() < 0.3:
            return rng.choice(leaves)
        if rng.random() < 0.5:
            return {f"k{i}": tree(level - 1) for i in range(rng.randint(0, 4))}
        return [tree(level - 1) for _ in range(rng.randint(0, 4))]

    for _ in range(count):
        yield tree(depth)

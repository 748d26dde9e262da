"""What the rules conclude: one result per criterion, the decision, and the technique advice.

The outputs render these; nothing here knows about FHIR or JSON. Both classes are `frozen` (a frozen
dataclass with a cheap `__init__`): a judgement makes ~18 results of 12 fields, and the plain frozen
dataclass's `__init__` cost ~1,000 instructions a field.
"""

from __future__ import annotations

from fhir_vcf.facts import Evidence
from fhir_vcf.frozen import frozen

INCLUSION_STATUSES = ("met", "not-met", "unknown", "conflict")
EXCLUSION_STATUSES = ("present", "absent", "unknown", "conflict")


@frozen
class CriterionResult:
    """One criterion as judged.

    status: inclusion/scope met | not-met | unknown | conflict; exclusion present | absent | unknown | conflict.
    missing: what a clinician must document to resolve an `unknown` (empty otherwise).
    flags: informational notes that do not change the status (e.g. "T1-T4 level: ...").
    applied: False when the coding route sets the criterion aside (e.g. I1 on the malignant route).
    review: True when the status is `conflict` because a coding/scope route needs review rather
      than because sources disagree.
    exclusion_kind: "absolute" | "relative" for exclusions (from the policy), "" otherwise.
    """

    id: str
    title: str
    kind: str  # inclusion | exclusion | scope
    status: str
    reason: str
    source: str
    evidence: tuple[Evidence, ...] = ()
    missing: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    applied: bool = True
    review: bool = False
    exclusion_kind: str = ""  # absolute | relative, for exclusions

    @property
    def references(self) -> list[str]:
        return list(dict.fromkeys(e.reference for e in self.evidence))


@frozen
class Judgement:
    decision: str  # eligible | not-eligible | needs-review | insufficient-data
    technique: str  # kyphoplasty | vertebroplasty | either | none
    technique_reason: str
    levels: tuple[str, ...]
    criteria: tuple[CriterionResult, ...]
    missing: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    route: str = "none"  # osteoporotic | malignant | review | traumatic | none
    decision_reason: str = ""
    policy: str = ""

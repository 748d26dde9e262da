"""Read one report text for the findings the mappers take from it, each with its assertion.

The same readers the mappers run on a record (`imaging_text.analyze_text` for the imaging facts,
`exclusions.exclusion_mentions` for the exclusions), on a text given alone: what `fhir-vcf read-text`
prints, so that a reviewer can see why a report was read as it was, and the one call a new source of
report text (a DocumentReference, a presentedForm) needs to be read like a `conclusion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_vcf.mappers import text
from fhir_vcf.mappers.assertion import AFFIRMED, HISTORICAL, NEGATED, POSSIBLE, RESOLVED, Assertion
from fhir_vcf.mappers.exclusions import NORMAL, TERM, exclusion_mentions
from fhir_vcf.mappers.imaging_signals import ImagingScan, Signal, SignalSource
from fhir_vcf.mappers.imaging_text import analyze_text

# The criterion each fact decides (clinical rules): imaging facts, then exclusions.
CRITERIA = {
    "acuity": "I3", "seen": "I1/I3", "height": "I4", "progression": "I4", "plana": "technique", "cleft": "technique",
    "retropulsion": "X11", "pain_elsewhere": "X1", "infection": "X2", "instability": "X7", "myelopathy": "X8",
    "neurologic_deficit": "X9", "neural_impingement": "X10",
}
_NAMES = {
    "seen": "fracture shown", "height": "height loss", "plana": "vertebra plana", "cleft": "intravertebral cleft",
    "pain_elsewhere": "pain from another generator", "neurologic_deficit": "neurologic deficit",
    "neural_impingement": "neural impingement",
}


@dataclass(frozen=True)
class TextFinding:
    """One finding a mapper takes from the text.

    fact: what it feeds ("acuity", "retropulsion", "infection", ...); criterion: the rule that reads it
    ("I3", "X2"); reading: what the mapper makes of it ("marrow edema present", "absent", "35 %",
    "conflict: a reviewer decides", "no fact"); levels: the levels it is attributed to (for an
    exclusion, those its sentence names); assertion: the reader's assertion (status, trigger, scope).
    """

    fact: str
    criterion: str
    reading: str
    levels: tuple[str, ...]
    assertion: Assertion

    @property
    def scope(self) -> str:
        """The text the deciding trigger governs ("" when no trigger decided)."""
        if self.assertion.scope is None:
            return ""
        a, b = self.assertion.scope
        return " ".join(self.assertion.text[a:b].split()).strip(" .;,")

    def as_dict(self) -> dict[str, Any]:
        said = self.assertion
        trigger = said.trigger
        return {
            "fact": self.fact, "name": fact_name(self.fact), "criterion": self.criterion, "reading": self.reading,
            "levels": list(self.levels), "mention": said.mention, "span": [said.start, said.end],
            "assertion": said.status, "decidedBy": said.decided_by, "why": said.why(),
            "trigger": None if trigger is None else {"text": trigger.text, "category": trigger.category,
                                                     "span": [trigger.start, trigger.end], "family": trigger.family},
            "scope": self.scope, "section": said.section.header if said.section is not None else None,
            "sentence": said.quote(),
        }


def read_report_text(value: str, *, modality: str | None = "MR", day: date | None = None,
                     levels: tuple[str, ...] = (), reference: str = "text", element: str = "text",
                     ) -> list[TextFinding]:
    """Every finding the mappers take from one report text, in reading order.

    `modality` is the report's (DICOM code: "MR", "NM", "CT", "DX"...; None when unknown): edema in a
    CT report is no MRI acuity; `levels` the level(s) the report is about when its text names none.
    """
    scan = ImagingScan()
    source = SignalSource(reference, day, modality, levels, report=True)
    analyze_text(scan, source, element, value)
    found = [_imaging(s) for s in scan.signals if s.assertion is not None]
    for mention in exclusion_mentions(value):
        said = mention.assertion
        named = tuple(text.find_levels(said.sentence_text))
        found.append(TextFinding(mention.key, CRITERIA.get(mention.key, ""), _exclusion_reading(mention.kind, said),
                                 named, said))
    return sorted(found, key=lambda f: (f.assertion.start, f.criterion))


def _imaging(s: Signal) -> TextFinding:
    assert s.assertion is not None
    kind = s.value if s.kind == "uncertain" else s.kind
    if s.kind == "uncertain":
        reading = "left open" if kind == "acuity" else "conflict: a reviewer decides"
    elif s.kind == "acuity":
        if s.value and s.note == "age word":
            # "Acute L1 fracture" names no edema: say what the word counts as, not that edema was seen.
            reading = f"acute (age word, read as {(s.acuity_value or 'acuity').replace('-', ' ')})"
        elif s.value:
            reading = f"{(s.acuity_value or 'acuity').replace('-', ' ')} present"
        else:
            reading = "old / not acute" if s.note == "age word" else "no edema or uptake"
    elif s.kind == "height":
        reading = f"{s.value:g} %" + (f" ({s.note})" if s.note else "")
    elif isinstance(s.value, bool):
        reading = "present" if s.value else "absent"
    else:
        reading = str(s.value)
    if s.kind == "acuity" and not s.advanced:
        reading += " (not MRI / bone scan: no acuity)"
    return TextFinding(kind, CRITERIA.get(kind, ""), reading, s.levels, s.assertion)


def _exclusion_reading(kind: str, said: Assertion) -> str:
    """What the exclusions mapper makes of the mention (input profile, "Reading report text")."""
    if kind != TERM:
        what = "absent (normal)" if kind == NORMAL else "absent (pain at the fracture)"
        return what if said.status == AFFIRMED else "no fact"
    if said.status == AFFIRMED:
        return "present"
    if said.status in (NEGATED, RESOLVED):
        return "absent"
    if said.status in (POSSIBLE, HISTORICAL):
        return "conflict: a reviewer decides"
    return "no fact"


def fact_name(fact: str) -> str:
    return _NAMES.get(fact, fact.replace("_", " "))

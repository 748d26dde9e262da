"""What the imaging scan produces: `Signal`s, the `SignalSource` each comes from, and the `ImagingScan`.

The shared vocabulary of the three imaging modules: `imaging` reads the resources and
`imaging_text` reads their free text, both appending `Signal`s to one `ImagingScan`;
`imaging_facts` turns the scan's signals into per-level facts. Kept apart so none of them imports
another in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir_vcf.facts import EpisodeEvent, Evidence
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers.assertion import Assertion
from fhir_vcf.mappers.fractures import SeenEvent


@dataclass(slots=True)
class Signal:
    """One imaging statement. Not frozen: a frozen dataclass sets each of its twelve fields through
    `object.__setattr__`, which made a Signal cost 2.5 times as much to build; none is changed after it.

    kind: "acuity" (value True = edema/uptake, False = none/old), "seen" (the fracture is shown),
      "studied" (a study covers the level), "height" (value = percent), "progression", "plana",
      "cleft", "retropulsion" (value bool); "uncertain" (value = the kind the text leaves open:
      "acuity", "retropulsion"; "possible marrow edema", "edema cannot be assessed").
    acuity_value: "marrow-edema" | "increased-uptake" for positive acuity.
    advanced: the statement comes from (or by its words implies) MRI / bone scan / SPECT / PET.
    """

    kind: str
    value: Any
    levels: tuple[str, ...]
    day: date | None
    modality: str | None
    evidence: Evidence
    advanced: bool = False
    acuity_value: str | None = None
    note: str = ""
    from_text: bool = False
    report_text: bool = False  # read from a report's conclusion / presented form (a radiologist's reading)
    assertion: Assertion | None = None  # for a text signal: what the sentence asserts, and why


@dataclass
class SignalSource:
    """Where a statement came from: the resource, its date and modality, and a level to fall back on."""

    ref: str
    day: date | None
    modality: str | None
    fallback_levels: tuple[str, ...] = ()
    report: bool = False  # a DiagnosticReport: its words are the reading of the images


@dataclass
class ImagingScan:
    signals: list[Signal] = field(default_factory=list)
    lines: list[tuple[date, str]] = field(default_factory=list)
    texts: list[tuple[str, str, str]] = field(default_factory=list)  # (ref, element, text) for context terms
    events: list[EpisodeEvent] = field(default_factory=list)  # dated studies and imaging reports (timeline)

    def seen_events(self) -> list[SeenEvent]:
        """Imaging that shows a fracture, dated, for the onset check."""
        out = []
        for s in self.signals:
            if s.day is None or s.kind not in {"seen", "acuity", "height", "plana", "cleft"}:
                continue
            if s.modality is None:
                continue  # not known to be imaging (a clinic note's "fracture" is not a radiograph)
            if s.kind in {"plana", "cleft", "acuity", "height"} and not s.value:
                continue  # "no edema", "0 % height loss": no fracture shown
            label = f"{s.modality or 'imaging'} {s.day.isoformat()} ({s.evidence.reference})"
            out.append(SeenEvent(s.day, s.levels, label, s.evidence))
        return out

    def fracture_levels(self) -> tuple[list[str], list[Evidence]]:
        """Levels at which imaging shows a fracture (for a fracture Condition that names none)."""
        shown = [s for s in self.signals
                 if s.levels and (s.kind in {"seen", "height"} or (s.kind == "acuity" and s.value))]
        acute = {lv for s in self.signals if s.kind == "acuity" and s.value for lv in s.levels}
        old = {lv for s in self.signals if s.kind == "acuity" and not s.value and s.note == "age word"
               for lv in s.levels}
        # "Acute L1 fracture ... old healed T8 fracture": the current fracture Condition is not the old
        # one. A level imaging calls only old/healed/chronic is dropped, unless no other level is shown.
        current = {lv for s in shown for lv in s.levels if lv in acute or lv not in old}
        if current:
            shown = [s for s in shown if set(s.levels) & current]
        levels = [lv for s in shown for lv in s.levels if not current or lv in current]
        return sort_levels(levels), [s.evidence for s in shown]

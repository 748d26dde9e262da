"""Imaging facts: acuity (marrow edema / uptake), height loss, progression and the other morphology
facts, from the signals of an `ImagingScan`.

`imaging_facts` buckets the signals by level once: no per-level rescans of the record.

Acuity follows the clinical rules (I3): marrow edema on MRI or increased uptake on a bone scan /
SPECT / PET shows an acute or subacute fracture; a radiograph or CT shows the fracture but not its
age; an MRI without edema ("healed", "sclerotic", "chronic") says it is old.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from fhir_vcf.facts import Evidence, Fact, Status
from fhir_vcf.mappers.codes import dicom
from fhir_vcf.mappers.imaging_signals import ImagingScan, Signal


def _assigned(signal: Signal, single_level: str | None) -> tuple[str, ...]:
    if signal.levels:
        return signal.levels
    return (single_level,) if single_level else ()


# A study this long before a level's onset was read before the fracture existed (the onset tolerance of
# fractures.ONSET_TOLERANCE): its "no edema" cannot speak for the fracture's acuity.
_BEFORE_ONSET = timedelta(days=14)


def imaging_facts(
    scan: ImagingScan, keys: list[str], single_level: str | None, onsets: dict[str, date] | None = None
) -> dict[str, Any]:
    """acuity, acuity_unassigned, height_loss, progression, vertebra_plana, intravertebral_cleft,
    retropulsion (before codes are added) and imaging lines, from the scan's signals bucketed once.

    `onsets`: the agreed onset of each level; acuity at a level ignores studies dated more than two
    weeks before it (a prior spine MRI from years ago shows no edema of a fracture it predates)."""
    buckets: dict[str, list[Signal]] = {level: [] for level in keys}
    unassigned: list[Signal] = []
    by_kind: dict[str, list[Signal]] = {}
    for s in scan.signals:
        by_kind.setdefault(s.kind, []).append(s)
        levels = _assigned(s, single_level)
        if not levels and s.kind == "acuity" and s.advanced:
            unassigned.append(s)
        for level in levels:
            if level in buckets:
                buckets[level].append(s)

    unassigned_refs = frozenset(s.evidence.reference for s in unassigned)
    acuity = {
        level: _acuity(level, _since_onset(signals, (onsets or {}).get(level)), unassigned_refs)
        for level, signals in buckets.items()
    }
    height = {level: _height(level, signals) for level, signals in buckets.items()}
    progression = _progression(by_kind.get("progression", []), buckets)
    lines = tuple(line for _, line in sorted(scan.lines, key=lambda x: x[0]))
    return {
        "acuity": acuity,
        "acuity_unassigned": tuple(_unassigned_fact(s) for s in unassigned),
        "height_loss": height,
        "progression": progression,
        "vertebra_plana": _flag(by_kind.get("plana", []), "vertebra plana"),
        "intravertebral_cleft": _flag(by_kind.get("cleft", []), "an intravertebral cleft"),
        "retropulsion_signals": by_kind.get("retropulsion", []),
        "retropulsion_open": [s for s in by_kind.get("uncertain", []) if s.value == "retropulsion"],
        "imaging": lines,
    }


def _since_onset(signals: list[Signal], onset: date | None) -> list[Signal]:
    """The signals that can speak for a fracture's acuity: not from a study read before it began."""
    if onset is None:
        return signals
    if onset - date.min < _BEFORE_ONSET:  # a placeholder onset at the calendar's first day: nothing is before it
        return signals
    cutoff = onset - _BEFORE_ONSET
    return [s for s in signals
            if s.kind not in {"acuity", "seen", "studied"} or s.day is None or s.day >= cutoff]


def _unassigned_fact(s: Signal) -> Fact[str]:
    note = "names no level and the record has more than one level in question"
    if s.value:
        return Fact.present(s.acuity_value or "marrow-edema", s.evidence, note=note)
    return Fact.absent(s.evidence, value="no-edema", note=note)


def _describe(s: Signal) -> str:
    return f"{s.modality or 'imaging'} {s.day.isoformat() if s.day else 'undated'} ({s.evidence.reference})"


def _acuity(level: str, signals: list[Signal], unassigned_refs: frozenset[str] = frozenset()) -> Fact[str]:
    acuity = [s for s in signals if s.kind == "acuity"]
    positive = [s for s in acuity if s.value and s.advanced]
    negative = [s for s in acuity if not s.value and s.advanced]
    if positive and negative and _same_resource_age_words_only(positive, negative):
        negative = []
    if positive and negative:
        pos = "; ".join(dict.fromkeys(_describe(s) for s in positive))
        neg = "; ".join(dict.fromkeys(_describe(s) for s in negative))
        return Fact.conflict(
            f"advanced imaging disagrees at {level}: acute signs in {pos}; no edema / old in {neg}",
            *(s.evidence for s in positive + negative),
        )
    if positive:
        value = "marrow-edema" if any(s.acuity_value == "marrow-edema" for s in positive) else "increased-uptake"
        return Fact.present(value, *_distinct(positive), note=_prose(positive, level))
    if negative:
        return Fact.absent(*_distinct(negative), value="no-edema", note=_prose(negative, level))
    hedged = [s for s in signals if s.kind == "uncertain" and s.value == "acuity" and s.advanced]
    if hedged:
        # "Possible marrow edema at L1", "edema cannot be assessed (motion)": neither yes nor no.
        return Fact(status=Status.UNKNOWN, value="hedged", evidence=tuple(_distinct(hedged)),
                    note=_prose(hedged, level))
    # An MRI / bone scan report that describes the fracture at the level but neither affirms nor denies
    # edema or uptake there leaves acuity unknown: only an explicit statement decides (input profile,
    # "I3 and silence"). A report whose edema statement names no level is no statement about this one.
    advanced_seen = [
        s for s in signals
        if s.kind == "seen" and s.advanced and s.report_text and s.evidence.reference not in unassigned_refs
    ]
    if advanced_seen:
        return Fact.unknown(
            f"the advanced imaging report describes the fracture at {level} and states neither edema nor "
            "uptake there",
            *(s.evidence for s in advanced_seen),
        )
    advanced_studied = [s for s in signals if s.kind == "studied" and s.advanced]
    anatomic = [
        s for s in signals
        if s.kind in {"seen", "studied"} and not s.advanced and s.modality in dicom.ANATOMIC
    ]
    old_words = [s for s in acuity if not s.advanced]
    if advanced_studied:
        return Fact.unknown(
            f"advanced imaging of {level} without a report or finding: "
            + "; ".join(dict.fromkeys(_describe(s) for s in advanced_studied)),
            *(s.evidence for s in advanced_studied),
        )
    if anatomic:
        note = f"only radiograph/CT shows {level}: fracture seen, acuity not shown"
        if old_words:
            note += "; described as " + ", ".join(dict.fromkeys(s.evidence.found for s in old_words))
        return Fact(status=Status.UNKNOWN, value="radiograph-only",
                    evidence=tuple(s.evidence for s in anatomic + old_words), note=note)
    return Fact.unknown(f"no imaging of {level}")


_MODALITY_NAMES = {"MR": "MRI", "NM": "bone scan", "PT": "PET", "CT": "CT", "DX": "radiograph", "CR": "radiograph"}


def _prose(signals: list[Signal], level: str) -> str:
    """What the report sentences behind an acuity fact say, quoted: "'No change in the L1 marrow edema'
    (MRI 2025-06-09): edema present at L1 (affirmed: pseudo-trigger 'No change in')". One line per
    sentence (a sentence naming edema and "acute" is quoted once); coded findings need no quote."""
    quoted: dict[tuple[str, tuple[int, int]], str] = {}
    for s in sorted((s for s in signals if s.assertion is not None), key=lambda s: s.note == "age word"):
        said = s.assertion
        assert said is not None
        key = (s.evidence.reference, said.sentence)
        if key in quoted:
            continue
        mention = " ".join(said.mention.lower().split())
        at = ", ".join(s.levels) or level  # "T12 and L1 with edema": one statement of both levels
        if s.kind == "uncertain":
            finding = f"{mention} at {at} neither affirmed nor denied"
        elif s.note == "age word":
            finding = f"{mention} fracture at {at}" + ("" if s.value else ": not acute")
        elif s.value:
            finding = f"{'edema' if s.acuity_value == 'marrow-edema' else 'increased uptake'} present at {at}"
        else:
            finding = f"{mention} {'resolved' if said.status == 'resolved' else 'absent'} at {at}"
        where = " ".join(x for x in (_MODALITY_NAMES.get(s.modality or "", s.modality or "imaging"),
                                     s.day.isoformat() if s.day else "undated") if x)
        why = "" if said.decided_by == "default" else f" ({said.decided()})"
        quoted[key] = f"'{said.quote()}' ({where}): {finding}{why}"
    return "; ".join(list(quoted.values())[:3])


def _distinct(signals: list[Signal]) -> list[Evidence]:
    """One evidence line per element read: a sentence that says "no retropulsion, no canal compromise"
    or "acute fracture with edema" is one piece of evidence, not two (text signals); coded ones all stay."""
    seen: dict[tuple[str, str, str], Evidence] = {}
    for s in signals:
        key = (s.evidence.reference, s.evidence.element, "" if s.from_text else s.evidence.found)
        seen.setdefault(key, s.evidence)
    return list(seen.values())


def _same_resource_age_words_only(positive: list[Signal], negative: list[Signal]) -> bool:
    """A report that shows edema at a level and also calls something there "old" or "sclerotic" has
    stated the edema explicitly; its own age words do not contradict it. Disagreement between
    resources, or an explicit "no edema" beside "edema", stays a conflict."""
    refs = {s.evidence.reference for s in positive}
    explicit = any(s.note != "age word" for s in positive)
    return explicit and all(s.note == "age word" and s.evidence.reference in refs for s in negative)


def _height(level: str, signals: list[Signal]) -> Fact[float]:
    heights = [s for s in signals if s.kind == "height"]
    if not heights:
        return Fact.unknown(f"no height loss reported at {level}")
    best = max(heights, key=lambda s: s.value)
    others = [s for s in heights if s is not best]
    return Fact.present(float(best.value), best.evidence, *(s.evidence for s in others), note=best.note)


def _progression(signals: list[Signal], buckets: dict[str, list[Signal]]) -> Fact[bool]:
    positive = [s for s in signals if s.value]
    evidence: list[Evidence] = [s.evidence for s in positive]
    notes: list[str] = []
    for level, level_signals in buckets.items():
        measured = sorted(
            (s for s in level_signals if s.kind == "height" and s.day is not None and not s.note),
            key=lambda s: s.day,
        )
        for i, earlier in enumerate(measured):
            later = next((s for s in measured[i + 1:] if s.day > earlier.day and s.value > earlier.value), None)
            if later is not None:
                evidence += [earlier.evidence, later.evidence]
                notes.append(
                    f"height loss at {level} rose from {earlier.value:g} % ({earlier.day}) "
                    f"to {later.value:g} % ({later.day})"
                )
                break
    if evidence:
        return Fact.present(True, *evidence, note="; ".join(notes))
    negative = [s for s in signals if not s.value]
    if negative:
        return Fact.absent(*(s.evidence for s in negative), value=False, note="imaging describes no progression")
    return Fact.unknown("no progression finding and no serial height measurement")


def _flag(signals: list[Signal], what: str) -> Fact[bool]:
    positive = [s for s in signals if s.value]
    if positive:
        return Fact.present(True, *(s.evidence for s in positive))
    if signals:
        return Fact.absent(*(s.evidence for s in signals), value=False)
    return Fact.absent(value=False, note=f"record read: no sign of {what}")


def retropulsion_fact(signals: list[Signal], codes: list[Evidence], open_signals: Sequence[Signal] = ()) -> Fact[bool]:
    """X11: retropulsion or canal compromise. A code (unstable burst) or an affirmed statement is
    PRESENT; affirmed in one resource and denied in another is a CONFLICT; stated only as possible or
    past ("possible retropulsion", `open_signals`) and denied nowhere is a CONFLICT too (a person must
    look: input profile); only denials are ABSENT."""
    positive = [s for s in signals if s.value]
    negative = [s for s in signals if not s.value]
    if positive or codes:
        pos_refs = {s.evidence.reference for s in positive} | {e.reference for e in codes}
        other = [s for s in negative if s.evidence.reference not in pos_refs]
        evidence = [*codes, *_distinct(positive)]
        if other:
            return Fact.conflict(
                "retropulsion/canal compromise affirmed in "
                + ", ".join(sorted(pos_refs))
                + " and denied in "
                + ", ".join(dict.fromkeys(s.evidence.reference for s in other)),
                *evidence,
                *_distinct(other),
                value=True,
            )
        return Fact.present(True, *evidence)
    if open_signals and not negative:
        said = "; ".join(dict.fromkeys(s.evidence.found for s in open_signals))
        return Fact.conflict(f"retropulsion/canal compromise mentioned as possible or past: {said}: a reviewer must "
                             "decide", *_distinct(list(open_signals)))
    if negative:
        return Fact.absent(*_distinct(negative), value=False)
    return Fact.absent(value=False, note="no retropulsion or canal compromise described in the imaging read")

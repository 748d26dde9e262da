"""The free text of imaging resources (report conclusions, presented forms, study and series
descriptions, finding notes) read into `Signal`s.

Each text is cut into sentences and each sentence into comma-separated parts with the levels each
names, so that "acute T12 fracture, chronic L1 deformity" gives T12 and L1 their own statements.
The cue patterns carry the input profile's vocabulary; what each mention asserts is read by the one
assertion reader (`assertion.py`, on the whole text, so that sections count) and decides as the input
profile says ("Reading report text"): only affirmed mentions are current facts; negated and resolved ones
are evidence of absence; possible ones leave the question open (an "uncertain" signal); historical,
hypothetical and other-person mentions are not this study's findings. Every text signal carries its
assertion, so that an explanation can quote the sentence and the trigger.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from typing import Any

from fhir_vcf.facts import Evidence, Method
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import assertion, text
from fhir_vcf.mappers._context import TermFilter
from fhir_vcf.mappers.assertion import AFFIRMED, HISTORICAL, NEGATED, POSSIBLE, RESOLVED, Assertion
from fhir_vcf.mappers.codes import dicom
from fhir_vcf.mappers.imaging_signals import ImagingScan, Signal, SignalSource

# Genant semiquantitative grades (clinical rules, "Genant"): words map to the lower bound of their
# band, moved just inside it where the band is open below, so that no number beyond what the text
# supports is invented (facts.py: mild -> 20, moderate -> 26, severe -> 41).
GENANT = {
    "mild": (20.0, "Genant mild (20–25 %)"),
    "moderate": (26.0, "Genant moderate (25–40 %)"),
    "severe": (41.0, "Genant severe (> 40 %)"),
}
_GENANT_GRADE = {"1": "mild", "2": "moderate", "3": "severe"}

_I = re.IGNORECASE
# Acuity cues (input profile, "acuity finding"). Edema and STIR/T2 hyperintensity imply MRI; uptake
# and avidity imply a bone scan / SPECT / PET; "acute", "chronic" need a known advanced modality.
# "BME" is the radiologists' abbreviation of bone marrow edema ("fx w/ BME").
_EDEMA = re.compile(r"\bo?edema(?:tous)?\b|\bBME\b", _I)
_SOFT_TISSUE = re.compile(
    r"(?:soft[-\s]tissue|paraspinal|paravertebral|prevertebral|subcutaneous|muscle|muscular|pulmonary|"
    r"interstitial|cord|facet|ligament\w*|disc)\s+(?:\w+\s+){0,2}$",
    _I,
)
_FLUID_SIGNAL = re.compile(
    r"\b(?:stir|t2)(?:[-\s]weighted)?(?:\s*:)?\s+(?:\w+\s+){0,2}?hyperintens\w*"
    r"|\bhyperintens\w*\s+(?:\w+\s+){0,4}?(?:on|in)\s+(?:the\s+)?(?:stir|t2|fluid[-\s]sensitive)\b"
    r"|\bstir\s+(?:signal\s+)?(?:abnormality|increase|bright)"
    # "STIR-bright", "bright on STIR", "bright on T2/STIR"
    r"|\bstir-bright\b|\bbright\s+on\s+(?:the\s+)?(?:t2\s*/\s*)?(?:stir|t2|fluid[-\s]sensitive)\b"
    # "increased T2/STIR signal", "increased STIR signal", "increased fluid signal"
    r"|\bincreased\s+(?:(?:t2|stir|fluid|fluid[-\s]sensitive)(?:\s*/\s*|\s+))+signal\b",
    _I,
)
_UPTAKE = re.compile(
    r"\bincreased\s+(?:\w+\s+){0,2}?(?:uptake|activity|tracer\s+accumulation)|\buptake\s+is\s+increased"
    r"|\b(?:(?:radio)?tracer|fdg)[-\s]avid\w*|\bavid\w*\b"
    # "intense tracer uptake", "marked uptake", "focal activity", "no abnormal uptake" (negated: no uptake)
    r"|\b(?:intense(?:ly)?|marked(?:ly)?|focal(?:ly)?|abnormal(?:ly)?)\s+"
    r"(?:(?:increased|radiotracer|tracer|radionuclide|osseous|bony)\s+){0,2}(?:uptake|activity|tracer\s+accumulation)",
    _I,
)
_ACUITY_CONTEXT = text.Caseless(
    re.compile(r"marrow|\bbone|osseous|vertebr|fractur|compress|collaps|endplate|\bbody\b|spin", _I)
)
_ACUTE = re.compile(r"\b(?:sub)?acute\b", _I)
_CHRONIC = re.compile(r"\b(?:chronic|healed|sclerotic|remote)\b|(?<![-\w])old\b", _I)
_FRACTURE_CONTEXT = text.Caseless(
    re.compile(r"fractur|compress|collaps|deformit|wedg|height|vertebr|\bbody\b|endplate|plana", _I)
)
_SEEN = re.compile(
    r"\b(?:fractur\w*|compression\s+deformit\w*|collapse[sd]?|wedg\w*\s+(?:deformit\w*|compression|fracture)"
    r"|height\s+loss|loss\s+of\s+(?:\w+\s+){0,2}?height|vertebra\s+plana)",
    _I,
)
_GENANT_WORDS = re.compile(
    r"\b(?P<grade>mild|moderate|severe)(?:ly)?\s+(?:(?!pain)\w+\s+){0,3}?"
    r"(?:compression|wedg\w*|height\s+loss|loss\s+of\s+(?:\w+\s+)?height|collapse|deformit\w*|fractur\w*)"
    r"|\bgenant\s+(?:grade\s+)?(?P<number>[123])\b",
    _I,
)
_PROGRESSION = re.compile(
    r"\bfurther\s+(?:\w+\s+){0,2}?(?:collapse|compression|height\s+loss|loss\s+of\s+(?:\w+\s+)?height)"
    r"|\bprogressi\w*\s+(?:\w+\s+){0,3}?(?:height\s+loss|loss\s+of\s+(?:\w+\s+)?height|collapse|compression|deformit\w*)"
    r"|\binterval\s+(?:progression|increase|worsening|collapse|further)"
    r"|\b(?:height\s+loss|collapse|compression|deformity)\s+(?:\w+\s+){0,3}?(?:has\s+|have\s+)?"
    r"(?:progressed|increased|worsened)"
    # "increased T12 compression", "worsening L1 compression deformity" (not cord / canal / root compression)
    r"|\b(?:increased|increasing|worsening|worsened)\s+(?:(?!cord\b|canal\b|nerve\b|thecal\b|root\b|pain\b)\w+\s+)"
    r"{0,2}?(?:height\s+loss|collapse|compression|deformit\w*)",
    _I,
)
# One report comparing two height-loss percentages: "increased from 25% to 40%", "now 40% (previously
# 25%)", "40%, increased from 25% on the prior study". Groups: a = the earlier value, b = the later one.
_PCT_A = r"(?P<a>\d{1,3}(?:\.\d+)?)\s*(?:%|percent)"
_PCT_B = r"(?P<b>\d{1,3}(?:\.\d+)?)\s*(?:%|percent)"
_PERCENT_CHANGE = (
    re.compile(rf"\bfrom\s+{_PCT_A}\s*(?:to|now)\s+{_PCT_B}", _I),
    re.compile(rf"{_PCT_B}[^.;\n]{{0,40}}?\b(?:previously|prior(?:ly)?|was|from|compared\s+(?:with|to))\s+"
               rf"{_PCT_A}", _I),
    re.compile(rf"\b(?:previously|prior(?:ly)?|was)\s+{_PCT_A}[^.;\n]{{0,40}}?\b(?:now|currently)\s+{_PCT_B}", _I),
)
_STABLE = re.compile(
    r"\b(?:stable|unchanged)\s+(?!burst)(?:\w+\s+){0,3}?(?:compression|collapse|fractur\w*|height|deformit\w*)"
    r"|\b(?:compression|collapse|fractur\w*|height|deformit\w*)\s+(?:\w+\s+){0,4}?(?:is|are|remains?)\s+"
    r"(?:stable|unchanged)"
    # Telegraphic report style, the state right after its subject: "height unchanged", "fracture stable".
    r"|\b(?:compression|collapse|fractur\w*|height|deformit\w*)\s+(?:stable|unchanged)\b"
    r"|\bno\s+(?:significant\s+)?interval\s+change",
    _I,
)
_HEIGHT_WORDS = re.compile(r"height|collapse|compress|wedg", _I)
_PLANA = re.compile(r"\bvertebra\s+plana\b", _I)
_CLEFT = re.compile(
    r"\bintravertebral\s+(?:vacuum\s+)?cleft|\bvacuum\s+cleft|\bk[üu]mmell|\bintravertebral\s+(?:gas|vacuum)", _I
)
_RETRO = re.compile(
    r"\bretropuls\w*(?:\s+(?:bone\s+|osseous\s+)?fragment)?|\bcanal\s+compromise|\bcompromise\s+of\s+the\s+(?:spinal\s+)?canal"
    r"|\bposterior\s+(?:cortical\s+)?wall\s+(?:involvement|fracture|disruption|breach|buckling|bowing|displacement)"
    r"|\b(?:involvement|disruption|breach|fracture)\s+of\s+the\s+posterior\s+(?:cortical\s+)?wall"
    r"|\bposterior\s+(?:cortical\s+)?wall\s+(?:is\s+)?involved",
    _I,
)
_RETRO_INTACT = re.compile(
    r"\bposterior\s+(?:cortical\s+)?wall\s+(?:is\s+|remains\s+)?intact|\bintact\s+posterior\s+(?:cortical\s+)?wall", _I
)
# Every word any imaging fact could come from: a text (or sentence) without one is skipped whole.
_ANY_CUE = re.compile(
    r"o?edema|\bBME\b|hyperintens|stir|uptake|avid|increased|activity|acute|chronic|healed|sclero|remote|\bold\b|fractur|compress|collaps"
    r"|wedg|height|plana|cleft|vacuum|k[üu]mmell|retropuls|canal|posterior\s+(?:cortical\s+)?wall|progress"
    r"|further|interval|stable|unchanged|mild|moderate|severe|genant|%|percent",
    _I,
)
_CUES = TermFilter([_ANY_CUE])  # the same test for a whole text, remembered for short ones
_CUE = text.Caseless(_ANY_CUE)  # ... and for each sentence and part of one
# A disc space ("L4-5", "L5-S1", "T12/L1"): canal narrowing there is degenerative, not the fracture.
_DISC_LEVEL = re.compile(r"\b(?:th|[ctls])[\s\-]?\d{1,2}\s*[-/–]\s*(?:(?:th|[ctls])[\s\-]?)?\d{1,2}\b|\bdis[ck]", _I)
# Sentences end at ".", ";" or a line break; a decimal point ("2.5 cm") does not end one.
_SENTENCE = re.compile(r"[^.;\n]+(?:\.(?=\d)[^.;\n]*)*")
_OTHER_LEVELS = text.Caseless(re.compile(
    r"\b(?:other|remaining|additional|adjacent)\s+(?:\w+\s+){0,2}?"
    r"(?:levels?|vertebra\w*|vertebral\s+bod\w+|fractures?|compression\s+fractures?)"
    r"|\belsewhere\b|\brest\s+of\s+the\s+(?:spine|vertebra\w*|levels)",
    _I,
))
_LEADING_LEVEL = re.compile(r"^\s*(?:and\s+)?(?:th|[ctls])[\s\-]?\d", _I)
_TRAILING_LEVEL = re.compile(r"(?:th|[ctls])[\s\-]?\d{1,2}\s*$", _I)


class _Levels:
    """The level mentions of the pieces of one text (the whole, its sentences, their parts), each
    distinct piece read once: a text of one sentence, a sentence of one part, is its own piece."""

    __slots__ = ("_read",)

    def __init__(self) -> None:
        self._read: dict[str, tuple[list[tuple[int, int, list[str]]], list[str]]] = {}

    def _of(self, piece: str) -> tuple[list[tuple[int, int, list[str]]], list[str]]:
        found = self._read.get(piece)
        if found is None:
            mentions = text.level_mentions(piece)
            found = self._read[piece] = (mentions, sort_levels(lv for _, _, labels in mentions for lv in labels))
        return found

    def mentions(self, piece: str) -> list[tuple[int, int, list[str]]]:
        """`text.level_mentions(piece)`."""
        return self._of(piece)[0]

    def levels(self, piece: str) -> list[str]:
        """`text.find_levels(piece)`."""
        return self._of(piece)[1]


class _Reading:
    """The assertion reading of one text (`assertion.reading`), made when its first mention is read:
    a text with a cue word often holds no mention any pattern finds ("moderate joint space narrowing",
    "SAG STIR"), and then needs no sentences, sections or triggers worked out."""

    __slots__ = ("_reading", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._reading: assertion.TextReading | None = None

    def read(self, start: int, end: int) -> Assertion:
        """`assertion.reading(text).read(start, end)`."""
        if self._reading is None:
            self._reading = assertion.reading(self._text)
        return self._reading.read(start, end)


def _segments(sentence: str, levels: _Levels, has_levels: bool = True) -> list[tuple[int, str, list[str]]]:
    """Comma-separated parts of a sentence with the levels each names; a level list ("T12, L1 and L2")
    stays in one part."""
    if not has_levels:
        return [(0, sentence, [])]
    parts: list[tuple[int, str]] = []
    offset = 0
    for piece in _comma_pieces(sentence):
        if parts and _LEADING_LEVEL.match(piece) and _TRAILING_LEVEL.search(parts[-1][1]):
            start, prev = parts[-1]
            parts[-1] = (start, prev + "," + piece)
        else:
            parts.append((offset, piece))
        offset += len(piece) + 1
    return [(start, piece, levels.levels(piece)) for start, piece in parts]


def _comma_pieces(sentence: str) -> list[str]:
    """The sentence split at commas outside parentheses: in "T12 (acute, edema) and L1 (chronic,
    sclerotic)" each parenthesis stays with the level it follows."""
    if "(" not in sentence:
        return sentence.split(",")
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(sentence):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            pieces.append(sentence[start:i])
            start = i + 1
    pieces.append(sentence[start:])
    return pieces


def analyze_text(scan: ImagingScan, source: SignalSource, element: str, value: str) -> None:
    """Every imaging statement in a text, each attributed to the levels of its part of the sentence
    (`_read_text`; a short text's reading remembered, see `_READINGS`)."""
    if not _CUES.may_match(value):
        return  # nothing an imaging fact could come from: skip the sentence work
    if len(value) > TermFilter.SHORT:
        _read_text(scan, source, element, value)
        return
    key = (value, source.modality, source.fallback_levels)
    known = _READINGS.get(key)
    if known is None:
        first = len(scan.signals)
        _read_text(scan, source, element, value)
        if len(_READINGS) >= _READINGS_LIMIT:
            _READINGS.clear()
        _READINGS[key] = tuple(scan.signals[first:])
        return
    for s in known:
        scan.signals.append(_restamped(s, source, element))


# The signals of short texts already read, by (text, modality, fallback levels): all a reading depends
# on besides the source's reference, day and report flag and the element, which only label its signals
# (`_restamped`). A record repeats its texts across visits and a worker sees the same report again
# (the benchmark's MRI conclusion, 131 characters, costs ~0.3 ms a reading). Bounded as `TermFilter`'s
# memory: at the limit it is emptied and refills. tests/test_imaging_gate.py holds every text of the
# samples and test data, read twice under other labels, to the plain reading.
_READINGS: dict[tuple[str, str | None, tuple[str, ...]], tuple[Signal, ...]] = {}
_READINGS_LIMIT = 4096


def _restamped(s: Signal, source: SignalSource, element: str) -> Signal:
    """A remembered text signal with the labels of `source` and `element` (a new `Signal`: signals are
    not frozen; the frozen `Evidence` is kept when it already names this resource and element). Every
    other field is the reading's own, whatever fields a Signal gains: all are read in one call and
    passed in order (`dataclasses.replace` asks each field's definition first, three times the cost)."""
    ev = s.evidence
    if ev.reference != source.ref or ev.element != element:
        ev = Evidence(source.ref, element, ev.method, ev.found)
    values = list(_SIGNAL_VALUES(s))
    values[_DAY], values[_EVIDENCE], values[_REPORT_TEXT] = source.day, ev, source.report
    return Signal(*values)


# A Signal's fields in the order its `__init__` takes them, and where the three `_restamped` sets are.
_SIGNAL_FIELDS = tuple(f.name for f in dataclasses.fields(Signal))
_SIGNAL_VALUES = operator.attrgetter(*_SIGNAL_FIELDS)
_DAY, _EVIDENCE, _REPORT_TEXT = (_SIGNAL_FIELDS.index(name) for name in ("day", "evidence", "report_text"))


def _read_text(scan: ImagingScan, source: SignalSource, element: str, value: str) -> None:
    """`analyze_text` read afresh (the text has passed `_CUES`)."""
    low = text.ascii_lower(value)  # lower-cased once for the cue searches of every sentence and part
    if not _may_state(low, 0, len(value)):
        return
    found = _Levels()
    whole_levels = found.levels(value)
    text_default = tuple(whole_levels) if len(whole_levels) == 1 else source.fallback_levels
    advanced_source = source.modality in dicom.ADVANCED
    reading = _Reading(value)
    for sm in _SENTENCE.finditer(value):
        # Searched in place (a sentence starts after a separator, so its edges read as in a copy).
        if not _may_state(low, sm.start(), sm.end()) or not _CUE.found(value, sm.start(), sm.end(), low=low):
            continue
        sentence = sm.group(0)
        sentence_levels = found.levels(sentence) if whole_levels else []
        if not sentence_levels and _OTHER_LEVELS.found(value, sm.start(), sm.end(), low=low):
            continue  # "other levels without edema": about no level in question, never the default one
        carried: list[str] = []
        for start, segment, seg_levels in _segments(sentence, found, bool(sentence_levels)):
            if seg_levels:
                carried = seg_levels
            at = sm.start() + start
            if segment is not sentence and not (
                    _may_state(low, at, at + len(segment)) and _CUE.found(value, at, at + len(segment), low=low)):
                continue
            levels = tuple(carried or (sentence_levels if len(sentence_levels) == 1 else ()) or text_default)
            groups = found.mentions(segment) if len(seg_levels) > 1 else []
            _segment_signals(scan, source, element, reading, at, sentence, segment, levels,
                             bool(seg_levels), advanced_source, groups if len(groups) > 1 else [])
        if "%" in sentence or "percent" in sentence.lower():
            _percent_change(scan, source, element, reading, sm.start(), sentence,
                            tuple(sentence_levels if len(sentence_levels) == 1 else text_default))


def _percent_change(
    scan: ImagingScan, source: SignalSource, element: str, reading: _Reading, base: int, sentence: str,
    levels: tuple[str, ...],
) -> None:
    """Progression stated as two height-loss percentages in one sentence (later larger: progression)."""
    if not _HEIGHT_WORDS.search(sentence):
        return
    for pattern in _PERCENT_CHANGE:
        for m in pattern.finditer(sentence):
            said = reading.read(base + m.start(), base + m.end())
            if said.status not in (AFFIRMED, HISTORICAL):
                continue  # "if height loss goes from 20% to 30%": no measurement
            earlier, later = float(m["a"]), float(m["b"])
            ev = Evidence(source.ref, element, Method.TEXT, said.said())
            scan.signals.append(Signal("progression", later > earlier, levels, source.day, source.modality, ev,
                                       note=f"height loss {earlier:g} % -> {later:g} %", from_text=True,
                                       report_text=source.report, assertion=said))


_ACUITY_PATTERNS = ((_EDEMA, "marrow-edema"), (_FLUID_SIGNAL, "marrow-edema"), (_UPTAKE, "increased-uptake"))
# The morphology findings: pattern, signal kind, and the words (in a lower-cased part) it needs.
_MORPHOLOGY = (
    (_PLANA, "plana", ("plana",)),
    (_CLEFT, "cleft", ("cleft", "vacuum", "mmell", "intravertebral")),
    (_RETRO, "retropulsion", ("retropuls", "canal", "posterior")),
)


# The gate before any sentence work: a statement is found only by a match of one of the patterns
# `_segment_signals` and `_percent_change` search (`_AGE` ones only where `_FRACTURE_CONTEXT` is found
# too), so a text, sentence or part holding none of the words those patterns need (`text.WordGate`,
# derived from the patterns themselves) holds no statement: "Metabolic panel unremarkable apart from a
# mildly raised glucose", "No acute cardiopulmonary process", "SAG STIR". Any match inside a sentence
# or a part is a match inside the text (they end at separators), so one gate serves all three.
# tests/test_imaging_gate.py holds the lists to the patterns those two functions search.
_STATEMENTS = (
    *(p for p, _ in _ACUITY_PATTERNS), *text.PERCENT_PATTERNS, *_PERCENT_CHANGE, _GENANT_WORDS, _PROGRESSION,
    _STABLE, *(p for p, _, _ in _MORPHOLOGY), _RETRO_INTACT,
)
_AGE = (_ACUTE, _CHRONIC, _SEEN)  # read only in a part with fracture words
_STATEMENT_WORDS = text.WordGate(_STATEMENTS)
_AGE_WORDS = text.WordGate(_AGE)
_FRACTURE_WORDS = text.WordGate([_FRACTURE_CONTEXT.pattern])


def _may_state(low: str | None, pos: int, endpos: int) -> bool:
    """False only when text[pos:endpos] can hold no imaging statement (`low`: `text.ascii_lower(text)`;
    None, for a text that is not ASCII, passes)."""
    return _STATEMENT_WORDS.may_match(low, pos, endpos) or (
        _AGE_WORDS.may_match(low, pos, endpos) and _FRACTURE_WORDS.may_match(low, pos, endpos))


def _has_any(low: str, words: tuple[str, ...]) -> bool:
    for w in words:  # noqa: SIM110 (a plain loop costs half what any() over a generator does)
        if w in low:
            return True
    return False


# What a mention is worth to an imaging fact (input profile, "Reading report text").
YES, NO, OPEN = "yes", "no", "open"


def verdict(said: Assertion) -> str:
    """YES for an affirmed mention; NO for a negated or resolved one (unless it is about other places
    than the named ones: "no other abnormal uptake"); OPEN for a possible one; "" for a mention that
    is no finding of this study (historical, hypothetical, another person's)."""
    if said.status == AFFIRMED:
        return YES
    if said.status in (NEGATED, RESOLVED):
        return "" if said.elsewhere is not None else NO
    return OPEN if said.status == POSSIBLE else ""


def _describes_age(said: Assertion) -> bool:
    """An age word ("chronic", "healed") is itself a statement about the fracture: affirmed, or made
    historical only by another age word ("old healed"), not by a COMPARISON section or a prior study."""
    return said.status == AFFIRMED or (said.status == HISTORICAL and said.decided_by == "trigger")


def _segment_signals(
    scan: ImagingScan,
    source: SignalSource,
    element: str,
    reading: _Reading,
    base: int,
    sentence: str,
    segment: str,
    levels: tuple[str, ...],
    names_level: bool,
    advanced_source: bool,
    groups: list[tuple[int, int, list[str]]] | None = None,
) -> None:
    """The signals of one part of a sentence (`base`: where the part starts in the text read). With
    several separate level mentions in the part ("T12 with 35% height loss and L1 with 20%"), each
    statement belongs to the nearest mention before it (else the first after it)."""

    def read(m: re.Match[str]) -> Assertion:
        return reading.read(base + m.start(), base + m.end())

    def levels_at(pos: int) -> tuple[str, ...]:
        if not groups:
            return levels
        before = [g for g in groups if g[1] <= pos]
        chosen = before[-1] if before else groups[0]
        return tuple(chosen[2])

    def add(kind: str, value: Any, said: Assertion, at: tuple[str, ...] | None = None, **kw: Any) -> None:
        ev = Evidence(source.ref, element, Method.TEXT, said.said())
        scan.signals.append(
            Signal(kind, value, at or levels_at(said.start - base), source.day, source.modality, ev, from_text=True,
                   report_text=source.report, assertion=said, **kw)
        )

    def add_open(kind: str, said: Assertion, **kw: Any) -> None:
        """A possible mention: the question stays open (never read as yes or no)."""
        add("uncertain", kind, said, **kw)

    # Cheap substring gates before the (case-insensitive, slower) patterns run, written out: a call per
    # gate, or any() over a generator, costs more than the tests themselves (~100 parts a patient).
    low = segment.lower()

    fracture_context = _FRACTURE_CONTEXT.found(segment, low=low if segment.isascii() else None)
    # Edema / uptake words count when the words around them are about bone or a level, or when the
    # report is an MRI / bone scan: "pedal edema" in a clinic note or an "FDG-avid node" is not acuity.
    if ("edema" in low or "bme" in low or "hyperintens" in low or "stir" in low or "uptake" in low or "avid" in low
            or "increased" in low or "activity" in low) and (
        advanced_source or names_level or _ACUITY_CONTEXT.found(segment) or _ACUITY_CONTEXT.found(sentence)
    ):
        for pattern, value_name in _ACUITY_PATTERNS:
            for m in pattern.finditer(segment):
                if pattern is _EDEMA and _SOFT_TISSUE.search(segment[max(0, m.start() - 50) : m.start()]):
                    continue
                said = read(m)
                found = verdict(said)
                # Edema words in a CT or radiograph report ("suggestion of marrow edema on dual-energy
                # maps") are not the MRI / bone scan acuity of clinical rules I3.
                advanced = source.modality not in dicom.ANATOMIC
                if found == OPEN:
                    add_open("acuity", said, advanced=advanced)
                elif found:
                    add("acuity", found == YES, said, advanced=advanced,
                        acuity_value=value_name if found == YES else None)
    if fracture_context:
        positive_value = "increased-uptake" if source.modality in {"NM", "PT"} else "marrow-edema"
        if "acute" in low:
            for m in _ACUTE.finditer(segment):
                said = read(m)
                found = verdict(said)
                if found == OPEN:
                    add_open("acuity", said, advanced=advanced_source, note="age word")
                elif found:
                    add("acuity", found == YES, said, advanced=advanced_source,
                        acuity_value=positive_value if found == YES else None, note="age word")
        if "chronic" in low or "healed" in low or "sclerotic" in low or "remote" in low or "old" in low:
            for m in _CHRONIC.finditer(segment):
                said = read(m)
                if _describes_age(said):
                    add("acuity", False, said, advanced=advanced_source, note="age word")
                elif said.status == POSSIBLE:
                    add_open("acuity", said, advanced=advanced_source, note="age word")
        for m in _SEEN.finditer(segment):
            said = read(m)
            if said.status == AFFIRMED or (said.status == HISTORICAL and said.decided_by == "trigger"):
                add("seen", True, said, advanced=advanced_source)
                break
    if "%" in low or "percent" in low or "per cent" in low:
        # "T12 30%, L1 20% height loss": a part naming a level takes its height words from the sentence.
        found_pct = []
        for pct_value, p0, p1 in text.height_loss_percents(segment, context=sentence if names_level else None):
            said = reading.read(base + p0, base + p1)
            if said.status == AFFIRMED:
                found_pct.append((pct_value, said))
        shared = [(v, said) for v, said in found_pct if len(levels_at(said.start - base)) > 1]
        if len({v for v, _ in shared}) > 1:
            # Several percentages for one list of levels: paired in order only with "respectively",
            # otherwise no percentage can be tied to a level (never a number the text does not give it).
            group = levels_at(shared[0][1].start - base)
            if "respectively" in low and len(shared) == len(group) and all(
                    levels_at(said.start - base) == group for _, said in shared):
                for (v, said), level in zip(shared, group, strict=True):
                    add("height", v, said, at=(level,))
            found_pct = [(v, said) for v, said in found_pct if len(levels_at(said.start - base)) <= 1]
        for pct_value, said in found_pct:
            add("height", pct_value, said)
    if "mild" in low or "moderate" in low or "severe" in low or "genant" in low:
        for m in _GENANT_WORDS.finditer(segment):
            said = read(m)
            if said.status != AFFIRMED:
                continue
            grade = (m["grade"] or _GENANT_GRADE.get(m["number"] or "", "")).lower()
            if grade in GENANT:
                number, note = GENANT[grade]
                add("height", number, said, note=note)
    if "further" in low or "progress" in low or "interval" in low or "increas" in low or "worsen" in low:
        for m in _PROGRESSION.finditer(segment):
            said = read(m)
            found = verdict(said)
            if found in (YES, NO):
                add("progression", found == YES, said)
    if "stable" in low or "unchanged" in low or "interval" in low:
        for m in _STABLE.finditer(segment):
            said = read(m)
            if said.status == AFFIRMED:
                add("progression", False, said)
    for pattern, kind, words in _MORPHOLOGY:
        if _has_any(low, words):
            for m in pattern.finditer(segment):
                if "canal" in m.group(0).lower() and not (
                    fracture_context or "retropuls" in low or (names_level and not _DISC_LEVEL.search(segment))
                ):
                    continue  # "disc bulge at L4-5 with canal compromise": degenerative, not the fracture
                said = read(m)
                found = verdict(said)
                if found in (YES, NO):
                    add(kind, found == YES, said)
                elif kind == "retropulsion" and (found == OPEN or said.status == HISTORICAL):
                    # An exclusion (X11) raised as possible or past: a person must look (input profile).
                    add_open(kind, said)
    if "intact" in low:
        for m in _RETRO_INTACT.finditer(segment):
            said = read(m)
            if said.status == AFFIRMED:
                add("retropulsion", False, said)

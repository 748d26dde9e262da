"""Vertebral fracture Conditions, their levels and onsets, and the etiology context around them.

Coded first, text second (input profile, rule 1): a Condition is a fracture when its code says so
(ICD-10-CM M80.08X-/M80.88X-, M84.58X-, S22.0-/S32.0-, M48.5-, D18.09; the SNOMED codes of the
profile), else when its words do ("osteoporotic compression fracture T12"). Historical Conditions
(clinicalStatus inactive/resolved/remission) are not current fractures; a Condition that is itself
an "old healed fracture" feeds `healed` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from fhir_vcf.facts import Coding, Evidence, Fact, Fracture, Method
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import assertion, common, sites, text
from fhir_vcf.mappers.assertion import AFFIRMED, HISTORICAL, Assertion
from fhir_vcf.mappers.codes import icd10cm, snomed

# Two onsets for the same level further apart than this disagree (fracture-mapper brief; the
# clinical rules count fracture age in days, and two weeks is well inside one acuity band).
ONSET_TOLERANCE = timedelta(days=14)

# Kinds from most to least specific: when a Condition carries several codes, the most specific wins.
_KIND_ORDER = ("pathologic", "osteoporotic", "traumatic", "collapsed-nec", "hemangioma", "compression", "other")

# "fx" is the clinicians' abbreviation ("compression fx T12"); like every fracture word it counts only
# beside a vertebral word or a level.
_FRACTURE_WORD = re.compile(r"\b(?:fractur\w*|fx\b|collapse[sd]?|vcf|compression\s+deformit\w*)", re.IGNORECASE)
_VERTEBRAL = re.compile(
    r"\b(?:vertebr\w*|spin\w*|compression|burst|wedge|vcf|thoracic|lumbar|sacr\w*|kyphopl\w*)", re.IGNORECASE
)
_TEXT_KINDS = (
    ("pathologic", re.compile(r"\b(?:patholog\w*|metasta\w*|malignan\w*|neoplas\w*|myeloma)", re.IGNORECASE)),
    ("osteoporotic", re.compile(r"\b(?:osteoporo\w*|insufficiency|fragility)", re.IGNORECASE)),
    ("traumatic", re.compile(r"(?<!non-)(?<!non )\b(?:traumatic|trauma)\b", re.IGNORECASE)),
    ("compression", re.compile(r"\b(?:compression|wedge|collapse|vcf)", re.IGNORECASE)),
)
_BURST = re.compile(r"\bburst\b", re.IGNORECASE)
_HEMANGIOMA_CONTEXT = re.compile(r"\b(?:vertebr\w*|spin\w*)", re.IGNORECASE)
_HEALED = re.compile(
    r"\b(?:old\s+healed|healed|remote|old)\s+(?:\w+\s+){0,3}?(?:fractur\w*|fx\b|compression|deformit\w*|collapse)",
    re.IGNORECASE,
)
_OSTEOPOROSIS = re.compile(r"\bosteoporo\w*", re.IGNORECASE)
_MALIGNANCY = re.compile(r"\b(?:multiple\s+myeloma|myeloma|metastatic|metastas[ie]s)\b", re.IGNORECASE)
_MYELOMA = re.compile(r"\bmyeloma\b", re.IGNORECASE)
_KYPHOSIS = re.compile(r"\b(?:hyper)?kyphosis\b|\bkyphotic(?:\s+deformity)?", re.IGNORECASE)

# onsetString forms read without guessing: ISO dates, "06/02/2025" (US month/day/year, the
# convention of the US feeds this service reads; day/month when the first number exceeds 12),
# "June 2, 2025", "2 June 2025". Partial dates ("2025-06", "June 2025") and relative phrases
# ("3 weeks ago") give no date: the day would be invented.
_MONTHS = {
    m: i
    for i, names in enumerate(
        (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
         ("nov", "november"), ("dec", "december")),
        start=1,
    )
    for m in names
}
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_SLASH = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_MONTH_FIRST = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_DAY_FIRST = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")


def parse_onset_string(value: str | None) -> date | None:
    """A calendar date written in an onsetString, or None when it holds no complete date."""
    if not value:
        return None
    try:
        if m := _ISO.search(value):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _SLASH.search(value):
            first, second, year = int(m[1]), int(m[2]), int(m[3])
            month, day = (second, first) if first > 12 else (first, second)
            return date(year, month, day)
        if (m := _MONTH_FIRST.search(value)) and m[1].lower() in _MONTHS:
            return date(int(m[3]), _MONTHS[m[1].lower()], int(m[2]))
        if (m := _DAY_FIRST.search(value)) and m[2].lower() in _MONTHS:
            return date(int(m[3]), _MONTHS[m[2].lower()], int(m[1]))
    except ValueError:  # "02/30/2025": not a date
        return None
    return None


def icd_key(code: str) -> str:
    """ICD-10-CM code without dots, upper case: "m80.08xa" -> "M8008XA"."""
    return code.replace(".", "").strip().upper()


@dataclass
class _Signals:
    """Affirmed and negated evidence for one context fact, with the values found (codes, terms)."""

    affirmed: list[Evidence] = field(default_factory=list)
    negated: list[Evidence] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def fact_bool(self, what: str) -> Fact[bool]:
        if self.affirmed:
            negated_in = ", ".join(dict.fromkeys(e.reference for e in self.negated))
            note = f"also negated in {negated_in}" if negated_in else ""
            return Fact.present(True, *self.affirmed, note=note)
        if self.negated:
            return Fact.absent(*self.negated, value=False, note=f"{what} negated in the record")
        return Fact.absent(value=False, note=f"record read: no sign of {what}")

    def fact_values(self, what: str) -> Fact[tuple[str, ...]]:
        if self.affirmed:
            return Fact.present(tuple(dict.fromkeys(self.values)), *self.affirmed)
        if self.negated:
            return Fact.absent(*self.negated, value=(), note=f"{what} negated in the record")
        return Fact.absent(value=(), note=f"record read: no sign of {what}")


@dataclass
class FractureScan:
    """What one pass over the Conditions found."""

    fractures: list[Fracture] = field(default_factory=list)
    unstable_burst: list[Evidence] = field(default_factory=list)  # S22/S32 sixth character 2 (X11)
    osteoporosis: _Signals = field(default_factory=_Signals)
    malignancy: _Signals = field(default_factory=_Signals)
    myeloma: _Signals = field(default_factory=_Signals)
    healed: _Signals = field(default_factory=_Signals)
    kyphosis: _Signals = field(default_factory=_Signals)

    def context_facts(self) -> dict[str, Fact[Any]]:
        return {
            "osteoporosis": self.osteoporosis.fact_bool("osteoporosis"),
            "malignancy": self.malignancy.fact_values("malignancy"),
            "myeloma": self.myeloma.fact_bool("myeloma"),
            "healed": self.healed.fact_bool("an old healed fracture"),
            "kyphosis": self.kyphosis.fact_bool("kyphosis"),
        }


def _fracture_codes(ref: str, resource: Any) -> tuple[list[tuple[str, Coding, str]], list[str], str, list[Evidence]]:
    """(kinds with their coding, coded levels, seventh character, burst evidence) of a Condition's codes."""
    kinds: list[tuple[str, Coding, str]] = []
    levels: list[str] = []
    seventh = ""
    burst: list[Evidence] = []
    for coding, path in common.codings(resource.code, "code"):
        if coding.system == "icd-10-cm":
            key = icd_key(coding.code)
            for prefix, kind in icd10cm.FRACTURE_PREFIXES:
                if key.startswith(prefix):
                    kinds.append((kind, coding, path))
                    if len(key) == 7 and kind != "hemangioma":
                        seventh = seventh or key[6]
                    if kind == "traumatic":
                        level = icd10cm.TRAUMATIC_LEVEL.get(key[:5])
                        if level:
                            levels.append(level)
                        if len(key) >= 6 and key[5] == icd10cm.UNSTABLE_BURST_SIXTH:
                            burst.append(common.code_evidence(ref, path, coding, "ICD-10-CM unstable burst"))
                    if key.startswith(icd10cm.COLLAPSED_SACRAL):
                        levels.append("S1")
                    break
        elif coding.system == "snomed" and coding.code in snomed.FRACTURE:
            kinds.append((snomed.FRACTURE[coding.code][0], coding, path))
    return kinds, levels, seventh, burst


def _states(said: Assertion) -> bool:
    """Whether the text states the mention of the patient as fact: affirmed, or true before ("old
    healed T8 fracture", "history of osteoporosis"). Negated, resolved, possible, hypothetical and
    other-person mentions state nothing about the patient's fracture (input profile, "Reading report text")."""
    return said.status in (AFFIRMED, HISTORICAL)


def _text_kind(values: Iterable[str]) -> str | None:
    joined = " ".join(values)
    for kind, pattern in _TEXT_KINDS:
        m = pattern.search(joined)
        if m and _states(assertion.read_mention(joined, m.start(), m.end())):
            return kind
    return None


def _text_fracture(values: list[tuple[str, str]], *, vertebral_site: bool = False) -> tuple[str, str] | None:
    """The (text, element) that names a vertebral fracture, affirmed, if any. The fracture words
    must be about the spine: vertebral words or a level beside them, or a vertebra as body site
    ("Pathological fracture, other site" at bodySite T12)."""
    for value, element in values:
        spinal: bool | None = vertebral_site or None  # read once per text, not once per fracture word
        for _, said in assertion.scan(_FRACTURE_WORD, value):
            if not _states(said):
                continue
            if spinal is None:
                spinal = bool(_VERTEBRAL.search(value) or text.find_levels(value))
            if spinal:
                return value, element
    return None


def _onset(ref: str, resource: Any) -> tuple[date | None, str, Evidence | None]:
    onset = common.as_date(getattr(resource, "onsetDateTime", None))
    if onset:
        return onset, "onsetDateTime", Evidence(ref, "onsetDateTime", Method.CODE, onset.isoformat())
    period = getattr(resource, "onsetPeriod", None)
    onset = common.as_date(getattr(period, "start", None))
    if onset:
        return onset, "onsetPeriod.start", Evidence(ref, "onsetPeriod.start", Method.CODE, onset.isoformat())
    raw = getattr(resource, "onsetString", None)
    onset = parse_onset_string(raw)
    if onset:
        return onset, "onsetString", Evidence(ref, "onsetString", Method.TEXT, f"'{raw}' read as {onset.isoformat()}")
    recorded = common.as_date(getattr(resource, "recordedDate", None))
    if recorded:
        return recorded, "recordedDate", Evidence(
            ref, "recordedDate", Method.CODE, f"{recorded.isoformat()} (recorded date, no onset documented)"
        )
    return None, "", None


def _context_codes(scan: FractureScan, ref: str, resource: Any, current: bool) -> None:
    for coding, path in common.codings(resource.code, "code"):
        if coding.system == "icd-10-cm":
            key = icd_key(coding.code)
            ev = common.code_evidence(ref, path, coding, "ICD-10-CM")
            if key.startswith(icd10cm.HEALED_FRACTURE):
                scan.healed.affirmed.append(ev)
            if not current:
                continue
            if key.startswith(icd10cm.OSTEOPOROSIS):
                scan.osteoporosis.affirmed.append(ev)
            if key.startswith(icd10cm.MALIGNANCY):
                scan.malignancy.affirmed.append(ev)
                scan.malignancy.values.append(coding.code)
            if key.startswith(icd10cm.MYELOMA):
                scan.myeloma.affirmed.append(ev)
            if key.startswith(icd10cm.KYPHOSIS):
                scan.kyphosis.affirmed.append(ev)
        elif coding.system == "snomed":
            ev = common.code_evidence(ref, path, coding, "SNOMED CT")
            code = coding.code
            if code in snomed.HEALED_FRACTURE:
                scan.healed.affirmed.append(ev)
            if not current:
                continue
            if code in snomed.OSTEOPOROSIS or snomed.FRACTURE.get(code, ("",))[0] == "osteoporotic":
                scan.osteoporosis.affirmed.append(ev)
            if code in snomed.MALIGNANCY:
                scan.malignancy.affirmed.append(ev)
                scan.malignancy.values.append(code)
            if code in snomed.MYELOMA:
                scan.myeloma.affirmed.append(ev)
            if code in snomed.KYPHOSIS:
                scan.kyphosis.affirmed.append(ev)


def context_text(
    scan: FractureScan, ref: str, element: str, value: str, *, conditions: bool = True, skip_malignancy: bool = False
) -> None:
    """Etiology context in one piece of text (a Condition's words, a report conclusion)."""
    for signals, pattern, term_value in (
        (scan.osteoporosis, _OSTEOPOROSIS, False),
        (scan.malignancy, _MALIGNANCY, True),
        (scan.myeloma, _MYELOMA, False),
        (scan.healed, _HEALED, False),
        (scan.kyphosis, _KYPHOSIS, False),
    ):
        if skip_malignancy and (signals is scan.malignancy or signals is scan.myeloma):
            continue
        if signals is scan.osteoporosis and not conditions:
            # "osteoporotic" in a radiology report describes bone, not a diagnosis; only Conditions
            # and DXA conclusions ("consistent with osteoporosis") are read, via `conditions=True`.
            continue
        for m, said in assertion.scan(pattern, value):
            ev = Evidence(ref, element, Method.TEXT, said.said())
            normal = signals is scan.kyphosis and _normal_curve(value, m.start(), m.end())
            if normal or said.evidence == "absent":
                signals.negated.append(ev)
            elif _states(said):
                signals.affirmed.append(ev)
                if term_value:
                    signals.values.append(m.group(0).lower())
            # possible ("suspicious for metastasis"), hypothetical or someone else's: neither present nor absent


# "Normal thoracic kyphosis" is the spine's physiological curve, not a kyphotic deformity.
_NORMAL_BEFORE = re.compile(r"\b(?:normal|physiologic\w*|preserved|maintained)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)
_NORMAL_AFTER = re.compile(r"^\s+(?:is\s+|are\s+)?(?:normal|preserved|maintained|within\s+normal)", re.IGNORECASE)


def _normal_curve(value: str, start: int, end: int) -> bool:
    return bool(_NORMAL_BEFORE.search(value[max(0, start - 40) : start]) or _NORMAL_AFTER.match(value[end : end + 30]))


def scan_conditions(record: Any, *, reasons: frozenset[str] = frozenset()) -> FractureScan:
    """One pass over the visible Conditions: current fractures and the etiology context.

    `reasons`: references named by augmentation requests' reasonReference; a vertebral hemangioma
    (D18.09 names "other sites") counts as the indication only with vertebral words or when a request
    names it as its reason.
    """
    scan = FractureScan()
    for resource in record.of_type("Condition"):
        ref = record.ref(resource)
        current = not common.is_historical(resource)
        coded_malignancy = len(scan.malignancy.values)
        _context_codes(scan, ref, resource, current)
        coded_malignancy = len(scan.malignancy.values) > coded_malignancy
        code_texts = list(common.texts(resource.code, "code"))
        note_texts = list(common.notes(resource))
        if current:
            for value, element in code_texts + note_texts:
                # A coded neoplasm's display ("Multiple myeloma ...") would only repeat the code.
                context_text(scan, ref, element, value, skip_malignancy=coded_malignancy)
        else:
            for value, element in code_texts + note_texts:
                for _, said in assertion.scan(_HEALED, value):
                    if _states(said):
                        scan.healed.affirmed.append(Evidence(ref, element, Method.TEXT, said.said()))
        if not current:
            continue
        fracture = _fracture(record, scan, ref, resource, code_texts, note_texts, reasons)
        if fracture is not None:
            scan.fractures.append(fracture)
    return scan


def _is_healed_condition(resource: Any, code_texts: list[tuple[str, str]]) -> bool:
    for coding, _ in common.codings(resource.code, "code"):
        if coding.system == "icd-10-cm" and icd_key(coding.code).startswith(icd10cm.HEALED_FRACTURE):
            return True
        if coding.system == "snomed" and coding.code in snomed.HEALED_FRACTURE:
            return True
    for value, _ in code_texts:
        m = _HEALED.search(value)
        # "Compression fx L1; old healed T8 fx" is a current L1 fracture that also mentions an old one.
        if m and _states(assertion.read_mention(value, m.start(), m.end())) and not _current_sentences(value):
            return True
    return False


def _coded_as_something_else(resource: Any) -> bool:
    """An ICD-10-CM code that is not a fracture code says what the Condition is (coded first, text
    second): "Myelopathy from T10 fracture" coded G99.2 is a myelopathy that mentions its cause, not
    a second fracture whose onset could contradict the real one."""
    icd = [icd_key(coding.code) for coding, _ in common.codings(resource.code, "code") if coding.system == "icd-10-cm"]
    return bool(icd) and not any(code.startswith(icd10cm.FRACTURE_FAMILIES) for code in icd)


def _fracture(
    record: Any,
    scan: FractureScan,
    ref: str,
    resource: Any,
    code_texts: list[tuple[str, str]],
    note_texts: list[tuple[str, str]],
    reasons: frozenset[str],
) -> Fracture | None:
    kinds, coded_levels, seventh, burst = _fracture_codes(ref, resource)
    evidence: list[Evidence] = []
    if kinds:
        method = Method.CODE
        kind = min((k for k, _, _ in kinds), key=_KIND_ORDER.index)
        if kind == "hemangioma":
            vertebral = any(_HEMANGIOMA_CONTEXT.search(v) for v, _ in code_texts + note_texts)
            site_levels, _, _ = sites.body_site_levels(ref, getattr(resource, "bodySite", None))
            if not (vertebral or site_levels or ref in reasons):
                return None
        for _, coding, path in kinds:
            vocabulary = "ICD-10-CM" if coding.system == "icd-10-cm" else "SNOMED CT"
            evidence.append(common.code_evidence(ref, path, coding, vocabulary))
        if kind == "compression":
            # SNOMED "compression fracture" says nothing of the cause; the words beside it may.
            worded = _text_kind(v for v, _ in code_texts)
            if worded in {"pathologic", "osteoporotic", "traumatic"}:
                kind = worded
                evidence.append(Evidence(ref, "code.text", Method.TEXT, f"etiology from text: {worded}"))
        codes = tuple(coding for _, coding, _ in kinds)
    else:
        if _is_healed_condition(resource, code_texts) or _coded_as_something_else(resource):
            return None
        site_levels, _, _ = sites.body_site_levels(ref, getattr(resource, "bodySite", None))
        found = _text_fracture(code_texts, vertebral_site=bool(site_levels))
        if found is None:
            return None
        method = Method.TEXT
        # No etiology in the words: a burst fracture is "other" (not a compression fracture; the
        # rules send it to review), any other vertebral fracture or collapse is "compression".
        kind = _text_kind(v for v, _ in code_texts) or (
            "other" if any(_BURST.search(v) for v, _ in code_texts) else "compression"
        )
        value, element = found
        evidence.append(Evidence(ref, element, Method.TEXT, f"'{value}'"))
        codes = (Coding("text", kind, value),)
    if kinds and _is_healed_condition(resource, []):
        return None
    scan.unstable_burst.extend(burst)

    levels: list[str] = list(coded_levels)
    site_levels, site_ev, _ = sites.body_site_levels(ref, getattr(resource, "bodySite", None))
    levels.extend(site_levels)
    evidence.extend(site_ev)
    for value, element in code_texts + note_texts:
        found_levels = _fracture_text_levels(value)
        if found_levels:
            levels.extend(found_levels)
            evidence.append(Evidence(ref, element, Method.TEXT, f"levels {', '.join(found_levels)} in '{value}'"))

    onset, onset_element, onset_ev = _onset(ref, resource)
    if onset_ev is not None:
        evidence.append(onset_ev)
    return Fracture(
        reference=ref,
        kind=kind,
        codes=codes,
        levels=tuple(sort_levels(levels)),
        onset=onset,
        onset_element=onset_element,
        method=method,
        seventh=seventh,
        evidence=tuple(evidence),
    )


# Sentences (".", ";" or a line break; not a decimal point) and the words that make one about a
# fracture. A note on a fracture Condition often names other levels for other reasons ("Prior L3-L5
# fusion", "stenosis at L4-5", "s/p T10 kyphoplasty"): when the text has sentences about the fracture,
# its levels come from those only (input profile, rule 6: never invent a level).
_SENTENCE = re.compile(r"[^.;\n]+(?:\.(?=\d)[^.;\n]*)*")
_ABOUT_FRACTURE = re.compile(
    r"\b(?:fractur\w*|fx\b|collapse[sd]?|wedg\w*|vcf|compression\s+deformit\w*|burst|vertebra\s+plana|height\s+loss)",
    re.IGNORECASE,
)


# A sentence about an earlier fracture, in clinicians' shorthand: "Hx T8 fx 2018, healed", "H/o T8 fx",
# "Prior T8 fx, unchanged" (not "prior to admission": that dates the current one).
_EARLIER = re.compile(
    r"\b(?:hx|h/o|history\s+of|prior(?!\s+to\b)|previous|remote|healed|old)\b", re.IGNORECASE
)


def _fracture_text_levels(value: str) -> list[str]:
    """The levels a Condition's text gives its fracture: from the sentences about a current fracture
    when there are any ("old healed T8 fracture" is not one), else every level the text names."""
    if not text.find_levels(value):
        return []
    about = _fracture_sentences(value)
    if not about:
        return text.find_levels(value)
    return sort_levels(level for sentence, healed in about if not healed for level in text.find_levels(sentence))


def _fracture_sentences(value: str) -> list[tuple[str, bool]]:
    """(sentence, about an earlier fracture) for each sentence of the text that affirms a fracture."""
    about = []
    read = assertion.reading(value).read
    for m in _SENTENCE.finditer(value):
        sentence, at = m.group(0), m.start()
        if any(_states(read(at + f.start(), at + f.end())) for f in _ABOUT_FRACTURE.finditer(sentence)):
            earlier = any(read(at + h.start(), at + h.end()).evidence != "absent"
                          for pattern in (_HEALED, _EARLIER) for h in pattern.finditer(sentence))
            about.append((sentence, earlier))
    return about


def _current_sentences(value: str) -> list[str]:
    return [sentence for sentence, earlier in _fracture_sentences(value) if not earlier]


def with_levels(fracture: Fracture, levels: list[str], evidence: list[Evidence]) -> Fracture:
    """A fracture given levels found elsewhere (imaging), with the evidence that says why."""
    return replace(fracture, levels=tuple(sort_levels(levels)), evidence=fracture.evidence + tuple(evidence))


@dataclass(frozen=True)
class SeenEvent:
    """Imaging that shows a fracture: its date, the levels it names (empty: none) and the evidence."""

    day: date
    levels: tuple[str, ...]
    label: str  # "DX 2025-01-10 (ImagingStudy/x-1)"
    evidence: Evidence


def onset_facts(
    fractures: list[Fracture], keys: list[str], seen: list[SeenEvent]
) -> dict[str, Fact[date]]:
    """The onset Fact of each key level (see FractureFacts.onset)."""
    by_level: dict[str, list[Fracture]] = {}
    unleveled = [f for f in fractures if not f.levels]
    for f in fractures:
        for level in f.levels:
            by_level.setdefault(level, []).append(f)
    fracture_levels = sort_levels(level for f in fractures for level in f.levels)
    single_key = keys[0] if len(keys) == 1 else None
    single_fracture_level = fracture_levels[0] if len(fracture_levels) == 1 else single_key
    out: dict[str, Fact[date]] = {}
    for level in keys:
        note_prefix = ""
        candidates = by_level.get(level, [])
        if not candidates and unleveled and level == single_key:
            candidates = unleveled
            note_prefix = "fracture Condition names no level; the only level in question is used. "
        fact = _level_onset(level, candidates, note_prefix)
        if fact.value is not None:
            fact = _imaging_conflict(level, fact, seen, level == single_fracture_level)
        out[level] = fact
    return out


def _onset_evidence(f: Fracture) -> Evidence:
    ev = next((e for e in f.evidence if e.element == f.onset_element), None)
    return ev or Evidence(f.reference, f.onset_element, Method.CODE, str(f.onset))


def _level_onset(level: str, candidates: list[Fracture], note_prefix: str) -> Fact[date]:
    dated = [f for f in candidates if f.onset is not None and f.onset_element != "recordedDate"]
    recorded = [f for f in candidates if f.onset is not None and f.onset_element == "recordedDate"]
    if dated:
        dated.sort(key=lambda f: f.onset)
        first, last = dated[0], dated[-1]
        evidence = [_onset_evidence(f) for f in dated]
        if last.onset - first.onset > ONSET_TOLERANCE:
            listed = "; ".join(f"{f.reference} {f.onset.isoformat()}" for f in dated)
            return Fact.conflict(
                f"{note_prefix}onsets at {level} differ by {(last.onset - first.onset).days} days: {listed}",
                *evidence,
                value=first.onset,
            )
        return Fact.present(first.onset, *evidence, note=note_prefix.strip())
    if recorded:
        recorded.sort(key=lambda f: f.onset)
        return Fact.present(
            recorded[0].onset,
            *[_onset_evidence(f) for f in recorded],
            note=f"{note_prefix}recorded date used, no onset documented",
        )
    if candidates:
        return Fact.unknown(
            f"{note_prefix}no onset documented",
            *[Evidence(f.reference, "onset[x]", f.method, "no onset or recorded date") for f in candidates],
        )
    return Fact.unknown(f"no fracture Condition at {level}")


def _imaging_conflict(level: str, fact: Fact[date], seen: list[SeenEvent], single: bool) -> Fact[date]:
    onset = fact.value
    assert onset is not None
    # `onset - e.day`, not `e.day < onset - ONSET_TOLERANCE`: an onset near date.min (a valid
    # "0001-01-01") would overflow the subtraction of a timedelta.
    earlier = [
        e for e in seen if onset - e.day > ONSET_TOLERANCE and (level in e.levels or (not e.levels and single))
    ]
    if not earlier:
        return fact
    earlier.sort(key=lambda e: e.day)
    first = earlier[0]
    note = (
        f"{first.label} shows a fracture at {level} on {first.day.isoformat()}, "
        f"{(onset - first.day).days} days before the recorded onset {onset.isoformat()}"
    )
    if fact.note:
        note += f" ({fact.note})"
    return Fact.conflict(note, *fact.evidence, *(e.evidence for e in earlier), value=onset)

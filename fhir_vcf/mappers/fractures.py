"""Vertebral fracture Conditions, their levels and onsets, and the etiology context around them.

Coded first, text second (input profile, rule 1): a Condition is a fracture when its code says so
(ICD-10-CM M80.08X-/M80.88X-, M84.58X-, S22.0-/S32.0-, M48.5-, D18.09; the SNOMED codes of the
profile), else when its words do ("osteoporotic compression fracture T12"). Historical Conditions
(clinicalStatus inactive/resolved/remission) are not current fractures; a Condition that is itself
an "old healed fracture" feeds `healed` instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from fhir_vcf import clinical_time
from fhir_vcf.clinical_time import DayRange, When
from fhir_vcf.facts import Coding, Evidence, Fact, Fracture, Method
from fhir_vcf.frozen import frozen
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import assertion, common, sites, text
from fhir_vcf.mappers._context import TermFamilies
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
# "June 2, 2025", "2 June 2025"; partial dates are the range they name ("2025-06" and "June 2025" the
# month, a string that is only a year the year; input profile, "Dates and times"). Relative phrases
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
_ISO_MONTH = re.compile(r"\b(\d{4})-(\d{2})\b(?!-)")
_MONTH_YEAR = re.compile(r"\b([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")
_YEAR_ONLY = re.compile(r"\s*(\d{4})\s*")


def parse_onset_string(value: str | None) -> DayRange | None:
    """The days an onsetString names (one day, a month or a year), or None when it names none."""
    if not value:
        return None
    try:
        if m := _ISO.search(value):
            return DayRange.day(date(int(m[1]), int(m[2]), int(m[3])), value)
        if m := _SLASH.search(value):
            first, second, year = int(m[1]), int(m[2]), int(m[3])
            month, day = (second, first) if first > 12 else (first, second)
            return DayRange.day(date(year, month, day), value)
        if (m := _MONTH_FIRST.search(value)) and m[1].lower() in _MONTHS:
            return DayRange.day(date(int(m[3]), _MONTHS[m[1].lower()], int(m[2])), value)
        if (m := _DAY_FIRST.search(value)) and m[2].lower() in _MONTHS:
            return DayRange.day(date(int(m[3]), _MONTHS[m[2].lower()], int(m[1])), value)
        if m := _ISO_MONTH.search(value):
            return DayRange(*_month(int(m[1]), int(m[2])), value)
        if (m := _MONTH_YEAR.search(value)) and m[1].lower() in _MONTHS:
            return DayRange(*_month(int(m[2]), _MONTHS[m[1].lower()]), value)
        if m := _YEAR_ONLY.fullmatch(value):
            return DayRange(date(int(m[1]), 1, 1), date(int(m[1]), 12, 31), value)
    except ValueError:  # "02/30/2025": not a date
        return None
    return None


def _month(year: int, month: int) -> tuple[date, date]:
    days = clinical_time.parse(f"{year:04d}-{month:02d}")
    assert days is not None
    return days.first_day, days.last_day


def icd_key(code: str) -> str:
    """ICD-10-CM code without dots, upper case: "m80.08xa" -> "M8008XA"."""
    return code.replace(".", "").strip().upper()


class _Signals:
    """Affirmed and negated evidence for one context fact, with the values found (codes, terms).

    A plain class with slots, not a dataclass of default factories: five are made for every evaluation."""

    __slots__ = ("affirmed", "negated", "values")

    def __init__(self) -> None:
        self.affirmed: list[Evidence] = []
        self.negated: list[Evidence] = []
        self.values: list[str] = []

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


@frozen
class _Onset:
    """What a Condition says of its onset: the days (None when it gives none), the element, the evidence,
    and why a documented onset gave no date."""

    days: DayRange | None = None
    element: str = ""
    evidence: Evidence | None = None
    note: str = ""


def _onset(ref: str, resource: Any, birth: DayRange | None) -> _Onset:
    """The onset in the profile's order: onset[x] (dateTime, Period, Age, Range, String), then
    recordedDate only when no onset is documented at all (input profile, "onset"; the rules flag it).

    A documented onset that gives no date is never replaced by the recorded date: the record says when
    it began, in words the service cannot place, and a person must give the date.
    """
    value = getattr(resource, "onsetDateTime", None)
    if value is not None:
        return _dated(ref, "onsetDateTime", common.when(resource, value, "onsetDateTime"))
    period = getattr(resource, "onsetPeriod", None)
    if period is not None:
        start = common.when(resource, getattr(period, "start", None), "onsetPeriod.start")
        if start is not None:
            return _dated(ref, "onsetPeriod.start", start)
        end = common.when(resource, getattr(period, "end", None), "onsetPeriod.end")
        if end is not None:  # began on or before the end of the period, no earlier bound
            days = DayRange(date.min, end.last_day, f"period ending {end.written}")
            return _Onset(days, "onsetPeriod.end", Evidence(ref, "onsetPeriod.end", Method.CODE, str(days)))
    age = getattr(resource, "onsetAge", None)
    age_range = getattr(resource, "onsetRange", None)
    if age is not None:
        return _aged(ref, "onsetAge", age, age, f"age {_age_words(age)}", birth)
    low, high = getattr(age_range, "low", None), getattr(age_range, "high", None)
    if low is not None or high is not None:
        written = f"age {_age_words(low) if low else '…'} to {_age_words(high) if high else '…'}"
        return _aged(ref, "onsetRange", low, high, written, birth)
    raw = getattr(resource, "onsetString", None)
    if raw:
        days = parse_onset_string(raw)
        if days is None:
            return _undated(ref, "onsetString", Method.TEXT, f"'{raw}' names no date")
        found = f"'{raw}' read as {days.isoformat()}"
        return _Onset(days, "onsetString", Evidence(ref, "onsetString", Method.TEXT, found))
    recorded = common.when(resource, getattr(resource, "recordedDate", None), "recordedDate")
    if recorded is not None:
        return _Onset(recorded.days, "recordedDate", Evidence(
            ref, "recordedDate", Method.CODE, f"{recorded.days} (recorded date, no onset documented)"))
    return _Onset()


def _dated(ref: str, element: str, found: When | None) -> _Onset:
    assert found is not None
    return _Onset(found.days, element, Evidence(ref, element, Method.CODE, str(found.days)))


def _aged(ref: str, element: str, low: Any, high: Any, written: str, birth: DayRange | None) -> _Onset:
    """The days of an onset given as an age (or a range of ages): it needs the birth date."""
    bounds = [_age_bound(q) if q is not None else None for q in (low, high)]
    if any(q is not None and b is None for q, b in zip((low, high), bounds, strict=True)):
        return _undated(ref, element, Method.CODE, f"onset at {written}, a unit the service cannot count")
    if birth is None:
        return _undated(ref, element, Method.CODE, f"onset at {written}, and the patient's birth date is not on record")
    days = clinical_time.age_days(birth, bounds[0], bounds[1], written)
    return _Onset(days, element, Evidence(ref, element, Method.CODE, f"{written}, born {birth}: {days.isoformat()}"))


def _undated(ref: str, element: str, method: Method, why: str) -> _Onset:
    note = f"onset documented ({why}); the recorded date is not used in its place"
    return _Onset(None, element, Evidence(ref, element, method, why), note)


def _age_bound(quantity: Any) -> tuple[int, str] | None:
    """(whole units, UCUM unit) of an Age, or None when its unit is not one of a / mo / wk / d."""
    value = getattr(quantity, "value", None)
    unit = _AGE_UNIT_WORDS.get(str(getattr(quantity, "code", None) or getattr(quantity, "unit", None) or "").lower())
    if value is None or unit is None or value < 0:
        return None
    return int(value), unit


def _age_words(quantity: Any) -> str:
    unit = getattr(quantity, "unit", None) or getattr(quantity, "code", None) or ""
    return f"{getattr(quantity, 'value', '?')} {unit}".strip()


# Age units: UCUM codes (FHIR Age) and the words feeds put in `unit`.
_AGE_UNIT_WORDS = {
    "a": "a", "yr": "a", "yrs": "a", "year": "a", "years": "a", "y": "a",
    "mo": "mo", "month": "mo", "months": "mo",
    "wk": "wk", "week": "wk", "weeks": "wk",
    "d": "d", "day": "d", "days": "d",
}


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
    scan: FractureScan, ref: str, element: str, value: str, *, conditions: Callable[[], bool] | None = None,
    skip_malignancy: bool = False,
) -> None:
    """Etiology context in one piece of text (a Condition's words, a report conclusion). `conditions`:
    whether osteoporosis words count here (None: they do), asked only when one occurs (for a
    report: whether it is a DXA conclusion)."""
    present = _ANY_CONTEXT_TERM.present(value)
    if not present:
        return  # none of the five families below occurs: one pass instead of five
    for key, signals, term_value in (
        ("osteoporosis", scan.osteoporosis, False),
        ("malignancy", scan.malignancy, True),
        ("myeloma", scan.myeloma, False),
        ("healed", scan.healed, False),
        ("kyphosis", scan.kyphosis, False),
    ):
        if key not in present:
            continue  # no match of this family in the text
        if skip_malignancy and key in ("malignancy", "myeloma"):
            continue
        if key == "osteoporosis" and conditions is not None and not conditions():
            # "osteoporotic" in a radiology report describes bone, not a diagnosis; only Conditions
            # and DXA conclusions ("consistent with osteoporosis") are read, as `conditions` says.
            continue
        for said, affirmed, term in _context_mentions(key, value):
            ev = Evidence(ref, element, Method.TEXT, said)
            if not affirmed:
                signals.negated.append(ev)
            else:
                signals.affirmed.append(ev)
                if term_value:
                    signals.values.append(term)


def _context_mentions(key: str, value: str) -> tuple[tuple[str, bool, str], ...]:
    """(what the text says, affirmed or else negated, the term in lower case) of each mention of a
    context family that counts either way (`_read_context`), a short text's remembered."""
    if len(value) > _SHORT_TEXT:
        return _read_context(key, value)
    return _short_context(key, value)


@functools.lru_cache(maxsize=10_000)
def _short_context(key: str, value: str) -> tuple[tuple[str, bool, str], ...]:
    """A short text's context mentions, remembered: a Condition's words and its codes' displays recur on
    every call about the patient and across patients, and their reading (the assertion of each mention,
    its quote) depends on the family and the text alone. 0.28 M instructions of the benchmark's call."""
    return _read_context(key, value)


def _read_context(key: str, value: str) -> tuple[tuple[str, bool, str], ...]:
    """The mentions of one context family in a text: negated (or, for kyphosis, a normal curve), or
    stated (`_states`). Possible ("suspicious for metastasis"), hypothetical or someone else's mentions
    are neither present nor absent, and left out."""
    found = []
    for m, said in assertion.scan(_CONTEXT_TERMS[key], value, found=True):  # only asked of a family present
        normal = key == "kyphosis" and _normal_curve(value, m.start(), m.end())
        if normal or said.evidence == "absent":
            found.append((said.said(), False, ""))
        elif _states(said):
            found.append((said.said(), True, m.group(0).lower()))
    return tuple(found)


_CONTEXT_TERMS = {"osteoporosis": _OSTEOPOROSIS, "malignancy": _MALIGNANCY, "myeloma": _MYELOMA, "healed": _HEALED,
                  "kyphosis": _KYPHOSIS}
# The five families joined: which of them a text holds, in about one pass (`TermFamilies`). Short texts
# are remembered: a Condition's words and its codes' displays ("Age-related osteoporosis with current
# pathological fracture, vertebra(e), ...") recur on every fracture of every record.
_ANY_CONTEXT_TERM = TermFamilies(_CONTEXT_TERMS)

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
    patient = getattr(record, "patient_resource", None)
    birth = common.when(patient, getattr(patient, "birthDate", None), "birthDate") if patient is not None else None
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
        fracture = _fracture(record, scan, ref, resource, code_texts, note_texts, reasons,
                             birth.days if birth else None)
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
    birth: DayRange | None,
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

    onset = _onset(ref, resource, birth)
    if onset.evidence is not None:
        evidence.append(onset.evidence)
    return Fracture(
        reference=ref,
        kind=kind,
        codes=codes,
        levels=tuple(sort_levels(levels)),
        onset=onset.days,
        onset_element=onset.element,
        method=method,
        seventh=seventh,
        evidence=tuple(evidence),
        onset_note=onset.note,
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


# Texts of at most this many characters have their levels remembered (`_short_text_levels`).
_SHORT_TEXT = 200


def _fracture_text_levels(value: str) -> list[str]:
    """The levels a Condition's text gives its fracture (`_read_text_levels`), a short text's
    remembered (a new list each time: callers may extend it)."""
    if len(value) > _SHORT_TEXT:
        return _read_text_levels(value)
    return list(_short_text_levels(value))


@functools.lru_cache(maxsize=10_000)
def _short_text_levels(value: str) -> tuple[str, ...]:
    """A short text's levels, remembered: a Condition's code display or short note ("Osteoporotic
    vertebral collapse", "Age-related osteoporosis with current pathological fracture, vertebra(e)")
    repeats across patients, and its reading (sentences, assertions, level mentions) depends on the
    text alone."""
    return tuple(_read_text_levels(value))


def _read_text_levels(value: str) -> list[str]:
    """The levels a Condition's text gives its fracture: from the sentences about a current fracture
    when there are any ("old healed T8 fracture" is not one), else every level the text names."""
    levels = text.find_levels(value)
    if not levels:
        return []
    about = _fracture_sentences(value)
    if not about:
        return levels
    # A sentence that is the whole text ("Osteoporotic compression fracture T12") names its levels.
    return sort_levels(level for sentence, healed in about if not healed
                       for level in (levels if sentence == value else text.find_levels(sentence)))


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


@frozen
class SeenEvent:
    """Imaging that shows a fracture: its date, the levels it names (empty: none) and the evidence."""

    day: date
    levels: tuple[str, ...]
    label: str  # "DX 2025-01-10 (ImagingStudy/x-1)"
    evidence: Evidence


def onset_facts(
    fractures: list[Fracture], keys: list[str], seen: list[SeenEvent]
) -> dict[str, Fact[DayRange]]:
    """The onset Fact of each key level (see FractureFacts.onset)."""
    by_level: dict[str, list[Fracture]] = {}
    unleveled = [f for f in fractures if not f.levels]
    for f in fractures:
        for level in f.levels:
            by_level.setdefault(level, []).append(f)
    fracture_levels = sort_levels(level for f in fractures for level in f.levels)
    single_key = keys[0] if len(keys) == 1 else None
    single_fracture_level = fracture_levels[0] if len(fracture_levels) == 1 else single_key
    out: dict[str, Fact[DayRange]] = {}
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


def _level_onset(level: str, candidates: list[Fracture], note_prefix: str) -> Fact[DayRange]:
    """One onset for a level. Onsets that agree (within ONSET_TOLERANCE, ranges by their nearest days)
    give the most precise one (an exact day before a month); onsets that do not are a conflict.
    A documented onset that gives no date leaves the onset unknown, the recorded date unused."""
    dated = [f for f in candidates if f.onset is not None and f.onset_element != "recordedDate"]
    unread = [f for f in candidates if f.onset is None and f.onset_element]
    recorded = [f for f in candidates if f.onset is not None and f.onset_element == "recordedDate"]
    if dated:
        dated.sort(key=lambda f: (f.onset.first, f.onset.last))
        evidence = [_onset_evidence(f) for f in dated]
        apart = max(a.onset.gap(b.onset) for a in dated for b in dated)
        if apart > ONSET_TOLERANCE.days:
            listed = "; ".join(f"{f.reference} {f.onset}" for f in dated)
            return Fact.conflict(f"{note_prefix}onsets at {level} differ by {apart} days: {listed}", *evidence,
                                 value=dated[0].onset)
        best = min(dated, key=lambda f: (not f.onset.exact, f.onset.first, f.onset.last))
        return Fact.present(best.onset, *evidence, note=note_prefix.strip())
    if unread:
        notes = "; ".join(f"{f.reference}: {f.onset_note}" for f in unread)
        return Fact.unknown(f"{note_prefix}{notes}", *[_onset_evidence(f) for f in unread])
    if recorded:
        recorded.sort(key=lambda f: (f.onset.first, f.onset.last))
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


def _imaging_conflict(level: str, fact: Fact[DayRange], seen: list[SeenEvent], single: bool) -> Fact[DayRange]:
    onset = fact.value
    assert onset is not None
    # Against the earliest day the onset can be: imaging is a conflict only when it predates every one.
    # `onset.first - e.day`, not `e.day < onset.first - ONSET_TOLERANCE`: an onset near date.min (a
    # valid "0001-01-01", or an onset period with no start) would overflow the subtraction of a timedelta.
    earlier = [
        e for e in seen if onset.first - e.day > ONSET_TOLERANCE and (level in e.levels or (not e.levels and single))
    ]
    if not earlier:
        return fact
    earlier.sort(key=lambda e: e.day)
    first = earlier[0]
    note = (
        f"{first.label} shows a fracture at {level} on {first.day.isoformat()}, "
        f"{(onset.first - first.day).days} days before the recorded onset {onset}"
    )
    if fact.note:
        note += f" ({fact.note})"
    return Fact.conflict(note, *fact.evidence, *(e.evidence for e in earlier), value=onset)

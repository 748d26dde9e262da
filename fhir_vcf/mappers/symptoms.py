"""Symptoms: pain scores (with the setting they were taken in) and the Roland-Morris score.

Feeds `pain_scores` and `rdq` of FractureFacts (clinical rules I4). The mapper reports every score
of the fracture episode with its setting; it never decides which threshold applies.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from fhir_vcf.clinical_time import When
from fhir_vcf.facts import Evidence, Fact, Method, PainScore
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import _context as ctx
from fhir_vcf.mappers import assertion, common, text
from fhir_vcf.mappers.codes import encounter_class, finding, loinc, snomed
from fhir_vcf.mappers.visible import visible

# The episode when no fracture onset is known: the last 12 weeks (facts.py, `pain_scores`; the
# subacute limit of clinical rules I1).
DEFAULT_EPISODE_DAYS = 84

# Encounter.class → setting, by vocabulary (codes/encounter_class.py: v3 ActCode, the input profile's
# "hospitalized"; HL7 v2 table 0004 patient class, issue 9).
SETTINGS = {"act-code": encounter_class.ACT_CODE, "v2-0004": encounter_class.PATIENT_CLASS}
# Observation statuses whose value counts (a registered result has no value yet).
_RESULT_STATUSES = frozenset({"preliminary", "final", "amended", "corrected"})
# The value of a coded pain Observation written as a string: "8", "8/10", "NRS 8/10", "8 out of 10",
# "Pain 8/10 at rest". One number, optionally labelled; words may follow only a "/10" or "out of 10"
# (so "7-8/10", a range, and "8 apples" give nothing).
_BARE_SCORE = re.compile(
    r"\s*(?:(?:NRS|VAS|pain(?:\s+(?:score|level|scale|intensity))?|score)\s*:?\s*)?"
    r"(?P<value>\d{1,3}(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*(?P<den>10|100)\b)?(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
# Encounter statuses under which an Encounter with no period end is still going on.
_OPEN_STATUSES = frozenset({"arrived", "triaged", "in-progress", "onleave"})

# Pain scores written as text in an Observation's valueString: only when clearly labelled
# ("NRS 8/10", "numeric rating scale 7", "pain score: 6/10").
_PAIN_LABELS = (r"NRS", r"numeric\s+(?:pain\s+)?rating\s+scale", r"pain\s+score", r"pain\s+scale")

# Roland-Morris Disability Questionnaire total, in text (input profile, "RDQ").
_RDQ_LABELS = (r"Roland[\s\-]*Morris(?:\s+Disability(?:\s+Questionnaire)?)?(?:\s+(?:score|total))?", r"RDQ", r"RMDQ")
_RDQ_MAX = 24
_RDQ_MENTION = re.compile(r"\b(?:Roland[\s\-]*Morris|RDQ|RMDQ)\b", re.IGNORECASE)
# The same test for each free text, remembered for short ones (a visit's or a drug's name recurs on
# every visit): most texts name no RDQ and cost a remembered answer.
_RDQ_TERMS = ctx.TermFilter([_RDQ_MENTION])


def map_symptoms(record: Any, *, as_of: date, episode_start: date | None) -> dict[str, Any]:
    """`pain_scores` (oldest first, inside the episode and not after as_of) and `rdq` (latest).

    `record` is the record or its `VisibleRecord` for `as_of`. The Encounters a score may fall in, and
    the one it names, are read from the whole record, whatever their date.
    """
    view = visible(record, as_of)
    start = episode_start if episode_start is not None else as_of - timedelta(days=DEFAULT_EPISODE_DAYS)
    stays = _LazyStays(view.record)
    scores: list[PainScore] = []
    rdq: list[tuple[When | None, int, Evidence]] = []  # (when, value, evidence)
    coded_rdq: dict[int, tuple[When | None, int, Evidence] | None] = {}  # by id of the Observation
    for obs in view.of_type("Observation"):
        if obs.status not in _RESULT_STATUSES:
            continue
        when, _ = ctx.timestamp(obs)  # never after as_of: the view shows no resource dated after it
        # In the episode only when wholly inside it: a score dated "2025-06" may predate a 10 June onset.
        if when is not None and start <= when.first_day:
            scores.extend(_pain_scores(view.record, obs, when, stays))
        value = coded_rdq[id(obs)] = _rdq_coded(view, obs)
        if value is not None:
            rdq.append(value)
    for resource, ref, element, body in view.free_texts():
        if not _RDQ_TERMS.may_match(body):
            continue
        if resource.get_resource_type() == "Observation":
            coded = coded_rdq[id(resource)] if id(resource) in coded_rdq else _rdq_coded(view, resource)
            if coded is not None:
                continue  # the coded value already counts
        found = text.find_score(body, _RDQ_LABELS, maximum=_RDQ_MAX)
        m = _RDQ_MENTION.search(body)
        said = assertion.read_mention(body, m.start(), m.end()) if found and m else None
        # "If the RDQ exceeds 17, ...", "RDQ not done": no score of this patient (input profile, "Reading
        # report text": hypothetical and negated mentions are no facts).
        if said is not None and said.evidence in ("present", "uncertain"):
            when, _ = ctx.timestamp(resource)
            rdq.append((when, found[-1], Evidence(ref, element, Method.TEXT, said.said())))
    scores.sort(key=lambda s: s.when.order)  # instants, offsets included (input profile, "Dates and times")
    return {"pain_scores": tuple(scores), "rdq": _latest_rdq(rdq, start)}


# --- pain scores ---


def _pain_scores(record: Any, obs: Any, when: When, stays: _LazyStays) -> list[PainScore]:
    """The scores of one Observation: its own value, and each pain-coded `component` of a panel
    (input profile, "pain score": "the score as a component of a panel Observation")."""
    if _elsewhere(obs):
        return []
    found: list[tuple[float, str]] = []
    scale = _pain_code(obs.code)
    if scale is not None:
        value, label = _coded_value(obs, scale)
        if value is not None:
            found.append((value, label))
    elif obs.valueString:
        numbers = text.find_score(obs.valueString, _PAIN_LABELS, maximum=10)
        if numbers:
            found.append((float(numbers[0]), "NRS"))
    for component in common.field(obs, "component") or []:
        code = _pain_code(getattr(component, "code", None))
        if code is not None:
            value, label = _coded_value(component, code)
            if value is not None:
                found.append((value, label))
    if not found:
        return []
    setting, encounter = _setting_of(record, obs, when, stays)
    level = _level(obs)
    return [PainScore(reference=record.ref(obs), value=value, scale=label, when=when, setting=setting,
                      encounter=encounter, level=level) for value, label in found]


def _pain_code(concept: Any) -> str | None:
    """The LOINC pain-score code of a CodeableConcept (an Observation's or a component's), if any."""
    for coding, _ in common.codings(concept):
        if coding.system == "loinc" and coding.code in loinc.PAIN_SCORES:
            return coding.code
    return None


def _answer_value(concept: Any) -> float | None:
    """The number a coded answer of the 0-10 list gives (`valueCodeableConcept`), or None.

    A LOINC answer code (LA…) is read by its numeric display, checked against the answer list
    (codes/loinc.py PAIN_ANSWERS) when the code is listed: a listed code whose display names another
    number is a contradiction, not read. An ordinal-value extension on the coding gives the number
    too. One number, or none: two codings that disagree are not read.
    """
    numbers: set[float] = set()
    for coding in getattr(concept, "coding", None) or []:
        code = (getattr(coding, "code", None) or "").strip()
        display = (getattr(coding, "display", None) or "").strip()
        shown = float(display) if re.fullmatch(r"\d{1,2}", display) else None
        ordinal = next((float(e.valueDecimal) for e in getattr(coding, "extension", None) or []
                        if e.url == loinc.ORDINAL_VALUE_EXTENSION and e.valueDecimal is not None), None)
        if common.system_alias(getattr(coding, "system", None)) == "loinc" and code.upper().startswith("LA"):
            listed = loinc.PAIN_ANSWERS.get(code.upper())
            if listed is not None and shown is not None and shown != listed:
                return None
            number = listed if listed is not None else shown
            if number is not None:
                numbers.add(number)
        if ordinal is not None:
            numbers.add(ordinal)
    return numbers.pop() if len(numbers) == 1 else None


def _coded_value(obs: Any, code: str) -> tuple[float | None, str]:
    """The 0-10 value of a coded pain Observation (or component) and its scale label, or (None, "").

    VAS (38214-3) is 0-100 mm: divided by 10 unless the unit says cm, or the value is ≤ 10 with a
    unit-less / "{score}" reading (a VAS charted on a 0-10 line). A value outside its scale is
    dropped rather than clipped: the mapper never invents a number. A coded answer
    (`valueCodeableConcept`) is an answer of the 0-10 list, for every scale.
    """
    unit = ""
    value_string = common.field(obs, "valueString")
    if obs.valueInteger is not None:
        raw = float(obs.valueInteger)
    elif obs.valueQuantity is not None and obs.valueQuantity.value is not None:
        raw = float(obs.valueQuantity.value)
        unit = (obs.valueQuantity.code or obs.valueQuantity.unit or "").strip().lower()
    elif value_string and (m := _string_score(value_string)):
        raw = float(m["value"])
        unit = "mm" if m["den"] == "100" else ("{score}" if m["den"] else "")
    elif obs.valueCodeableConcept is not None and (answer := _answer_value(obs.valueCodeableConcept)) is not None:
        raw, unit = answer, "{score}"
    else:
        return None, ""
    if raw < 0:
        return None, ""
    scale = loinc.PAIN_SCORES[code]
    if scale == "VAS":
        if unit == "cm":
            value = raw
        elif unit == "mm" or raw > 10:
            value = raw / 10
        else:  # "{score}", "1", no unit, value 0-10
            value = raw
    else:
        value = raw
    if value > 10:
        return None, ""
    return value, scale


def _string_score(value: str) -> re.Match[str] | None:
    """The match of one clear score in a string value, or None (see _BARE_SCORE)."""
    m = _BARE_SCORE.match(value)
    if m is None:
        return None
    if not m["rest"].strip():
        return m
    return m if m["den"] is not None and not re.match(r"\s*[-–]?\d", m["rest"]) else None


def _setting(encounter: Any) -> str | None:
    """The setting an Encounter's class says. A code without a system is read as ActCode (the R4
    binding); a v2-0004 code only with its system ("I" alone could be anything)."""
    cls = getattr(encounter, "class_fhir", None)
    if cls is None or not cls.code:
        return None
    vocabulary = common.system_alias(cls.system) if cls.system else "act-code"
    return SETTINGS.get(vocabulary, {}).get(cls.code.strip().upper())


class _Stay(NamedTuple):
    """An Encounter with a setting, its period read once (every pain score is checked against every stay).

    `end` is None for an encounter still going on; a closed encounter with no end lasts its start day.
    A named tuple, not a frozen dataclass: built for every Encounter of the record (three years of
    visits are dozens), and three times cheaper to build.
    """

    encounter: Any
    setting: str
    start: When
    end: When | None
    length: float


def _stays(record: Any) -> list[_Stay]:
    stays = []
    for e in record.of_type("Encounter"):
        setting = _setting(e)
        if setting is None or e.status == "planned":
            continue
        period = getattr(e, "period", None)
        start, element = common.clinical_when(e)  # an Encounter's clinical date is its start, read once
        if element != "period.start":
            start = common.when(e, getattr(period, "start", None), "period.start")
        if start is None:
            continue  # no start: covers nothing (a stay found by its own reference still counts)
        written_end = common.when(e, getattr(period, "end", None), "period.end")
        end = written_end if written_end is not None or e.status in _OPEN_STATUSES else start
        length = (written_end.latest - start.earliest).total_seconds() if written_end else float("inf")
        stays.append(_Stay(e, setting, start, end, length))
    return stays


class _LazyStays:
    """The stays of a record (`_stays`), read when a score first needs them: most scores name their own
    Encounter, and a record with none needs no stay at all.

    Reading a period can fail only on a date written as text, or on a time in the first or last year
    a `datetime` holds (its UTC instant may fall outside them); a `date` or another `datetime` is
    read without fail. A record with such a period has its stays read at once, so that a bad date is
    the error it was, where it was.
    """

    __slots__ = ("_record", "_stays")

    def __init__(self, record: Any) -> None:
        self._record = record
        self._stays: list[_Stay] | None = _stays(record) if _written_periods(record) else None

    def get(self) -> list[_Stay]:
        if self._stays is None:
            self._stays = _stays(self._record)
        return self._stays


def _written_periods(record: Any) -> bool:
    """Whether an Encounter of the record has a period start or end whose reading may fail (`_LazyStays`).
    Every value is asked in one call, each element read as an attribute (an Encounter has a period, a
    period a start and an end): the benchmark's 33 Encounters, 149 -> 112 K instructions."""
    return _may_fail(*[value for e in record.of_type("Encounter") if (period := e.period) is not None
                       for value in (period.start, period.end)])


def _may_fail(*values: Any) -> bool:
    """Whether `clinical_time.parse` may refuse one of the values: text, or a time in year 1 or 9999."""
    for value in values:
        if isinstance(value, datetime):
            if value.year in (1, 9999):
                return True
        elif value is not None and not isinstance(value, date):
            return True
    return False


def _setting_of(record: Any, obs: Any, when: When, stays: _LazyStays) -> tuple[str, str | None]:
    """The setting of a score: its own Encounter, else the one Encounter whose period covers it."""
    if obs.encounter is not None:
        target = record.resolve(obs.encounter)
        if target is not None and target.get_resource_type() == "Encounter":
            setting = _setting(target)
            if setting is not None:
                return setting, record.ref(target)
    covering = [s for s in stays.get() if when.within(s.start, s.end)]
    settings = {s.setting for s in covering}
    if len(settings) == 1:
        # Several covering encounters of one setting: the shortest stay is the most specific.
        best = min(covering, key=lambda s: s.length)
        return settings.pop(), record.ref(best.encounter)
    # None, or covering encounters that disagree (an ED visit and an admission on the same day with
    # no times): the setting stays unknown rather than guessed.
    return "unknown", None


# Words of a bodySite that place a pain score on the spine or back (clinical rules I4: the pain of the fracture).
_SPINAL_SITE = re.compile(
    r"spin|back|lumb|thorac|vertebr|sacr|coccy|trunk|flank|torso|axial|\b[TL](?:1[0-2]|[1-9])\b", re.IGNORECASE
)


def _elsewhere(obs: Any) -> bool:
    """Whether the score's bodySite names a part of the body other than the spine ("Knee region",
    "Right shoulder"): an orthopaedic visit's knee pain is not the fracture's pain. A site with no
    readable words, a vertebra or a spine region keeps the score (nothing says it is elsewhere)."""
    site = common.field(obs, "bodySite")
    if site is None:
        return False
    for coding, _ in common.codings(site, "bodySite"):
        if coding.system == "snomed" and (coding.code in snomed.VERTEBRA or coding.code in snomed.SPINE_REGION):
            return False
    words = [body for body, _ in common.texts(site, "bodySite")]
    return bool(words) and not any(_SPINAL_SITE.search(body) for body in words)


def _level(obs: Any) -> str | None:
    """The one vertebra the Observation's bodySite names (a SNOMED vertebra code or its text)."""
    site = getattr(obs, "bodySite", None)
    if site is None:
        return None
    found: list[str] = []
    for coding, _ in common.codings(site, "bodySite"):
        if coding.system == "snomed" and coding.code in snomed.VERTEBRA:
            found.append(snomed.VERTEBRA[coding.code])
    for body, _ in common.texts(site, "bodySite"):
        found.extend(text.find_levels(body))
    levels = sort_levels(found)
    return levels[0] if len(levels) == 1 else None


# --- Roland-Morris ---


def _rdq_coded(record: Any, obs: Any) -> tuple[When | None, int, Evidence] | None:
    if ctx.finding_code(obs) != finding.RDQ_SCORE:
        return None
    if obs.valueInteger is not None:
        value = obs.valueInteger
    elif obs.valueQuantity is not None and obs.valueQuantity.value is not None:
        value = obs.valueQuantity.value
    else:
        return None
    if value != int(value) or not 0 <= value <= _RDQ_MAX:
        return None  # not a questionnaire total
    when, _ = ctx.timestamp(obs)
    ev = Evidence(record.ref(obs), "valueInteger" if obs.valueInteger is not None else "valueQuantity",
                  Method.CODE, f"finding {finding.RDQ_SCORE} = {int(value)}")
    return when, int(value), ev


def _latest_rdq(found: list[tuple[When | None, int, Evidence]], start: date) -> Fact[int]:
    """The latest RDQ in the episode (by instant). A score from before the fracture says nothing about it."""
    if not found:
        return Fact.unknown("no Roland-Morris (RDQ) score on record")
    in_episode = [f for f in found if f[0] is None or f[0].first_day >= start]
    if not in_episode:
        when, value, ev = max((f for f in found if f[0] is not None), key=lambda f: f[0].order)
        return Fact.unknown(f"the latest Roland-Morris score ({value}, {when.days}) predates the fracture episode", ev)
    dated = [f for f in in_episode if f[0] is not None]
    if not dated:
        return Fact.present(in_episode[0][1], in_episode[0][2], note="undated Roland-Morris score")
    when, value, ev = max(dated, key=lambda f: f[0].order)
    return Fact.present(value, ev, note=f"Roland-Morris {value}/24 on {when.days}")

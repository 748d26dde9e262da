"""Exclusions read from Conditions, findings, allergies, labs and text (clinical rules X1-X3, X5-X10).

Each exclusion is a Fact[bool]: PRESENT = the exclusion applies (with evidence); ABSENT = the record
was read and holds no sign of it (evidence: any negated or resolved mention or coded "no"); CONFLICT =
the sources disagree, or the text only raises the possibility or the past ("possible discitis",
"history of osteomyelitis"), so that a reviewer decides. Text is read by the one assertion reader
(input profile, "Reading report text"): hypothetical ("if pain persists, assess for discitis") and
other-person ("mother had osteomyelitis") mentions are no facts. The words of each exclusion are data
(`exclusion-terms.yaml`). The mapper never judges eligibility: the INR is reported as a number, the
limit is the policy's.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from fhir_vcf.errors import ConfigError
from fhir_vcf.facts import Evidence, Fact, Method, Status
from fhir_vcf.frozen import frozen
from fhir_vcf.mappers import _context as ctx
from fhir_vcf.mappers import assertion, common
from fhir_vcf.mappers.assertion import AFFIRMED, HISTORICAL, NEGATED, POSSIBLE, RESOLVED, Assertion
from fhir_vcf.mappers.codes import finding, icd10cm, loinc, rxnorm, snomed
from fhir_vcf.mappers.visible import visible

KEYS = (
    "pain_elsewhere",
    "infection",
    "pregnancy",
    "cement_allergy",
    "coagulopathy",
    "instability",
    "myelopathy",
    "neurologic_deficit",
    "neural_impingement",
)

# What each coded exclusion is, in ICD-10-CM prefixes and SNOMED codes (codes/icd10cm.py, snomed.py).
_CONDITION_CODES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "infection": (icd10cm.INFECTION, snomed.INFECTION),
    "pregnancy": (icd10cm.PREGNANCY, snomed.PREGNANCY),
    "cement_allergy": (icd10cm.CONTRAST_ALLERGY, {}),
    "coagulopathy": (icd10cm.COAGULOPATHY, snomed.COAGULOPATHY),
    "instability": (icd10cm.INSTABILITY, snomed.INSTABILITY),
    "myelopathy": (icd10cm.MYELOPATHY, snomed.MYELOPATHY),
}
_OTHER_GENERATORS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("radiculopathy", icd10cm.RADICULOPATHY, snomed.RADICULOPATHY),
    ("spinal stenosis", icd10cm.SPINAL_STENOSIS, snomed.SPINAL_STENOSIS),
)
# The same lists with their ICD-10-CM prefixes in `icd_key` form, made once (`ctx.icd_prefixes`).
_CONDITION_KEYS = {key: (ctx.icd_prefixes(icd), sct) for key, (icd, sct) in _CONDITION_CODES.items()}
_GENERATOR_KEYS = tuple((ctx.icd_prefixes(icd), sct) for _, icd, sct in _OTHER_GENERATORS)
_THROMBOPHILIA = ctx.icd_prefixes(icd10cm.THROMBOPHILIA)
_FINDINGS = {finding.NEUROLOGIC_DEFICIT: "neurologic_deficit", finding.SPINAL_INSTABILITY: "instability"}

TERMS_PATH = Path(__file__).with_name("exclusion-terms.yaml")


def load_terms(path: Path = TERMS_PATH) -> tuple[dict[str, re.Pattern[str]], dict[str, re.Pattern[str]]]:
    """(exclusion key → its terms, exclusion key → its statements of normality) from the terms file,
    each compiled into one pattern. Pregnancy and coagulopathy are read from codes only: "pregnancy
    test negative" and "no bleeding disorder" are too easily misread."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    terms: dict[str, list[str]] = {}
    normal: dict[str, list[str]] = {}
    for key, families in (data.get("exclusions") or {}).items():
        if key not in KEYS:
            raise ConfigError(f"{path.name}: unknown exclusion {key!r}; expected one of {', '.join(KEYS)}")
        for family in families:
            if not str(family.get("cite") or "").strip() or not family.get("terms"):
                raise ConfigError(f"{path.name}: {key}: every family needs a cite and terms")
            (normal if family.get("normal") else terms).setdefault(key, []).extend(family["terms"])
    try:
        return ({k: ctx.compile_terms(v) for k, v in terms.items()},
                {k: ctx.compile_terms(v) for k, v in normal.items()})
    except re.error as exc:
        raise ConfigError(f"{path.name}: a term is not a valid regular expression: {exc}") from None


# Exclusions in words, and the statements that they are not there ("strength 5/5 throughout").
_TEXT, _NORMAL = load_terms()
# Instability words count only with a spine word nearby ("unstable angina" is not spinal instability).
_INSTABILITY = re.compile(r"\b(?:unstable|instability)\b", re.IGNORECASE)
_SPINE_CONTEXT = re.compile(
    r"\b(?:spine|spinal|vertebra[el]?|vertebral|fracture|burst|column|segment(?:al)?|ligament(?:ous)?|PLC|"
    r"kyphos\w*|listhesis|spondylolisthesis|[TL](?:1[0-2]|[1-9]))\b",
    re.IGNORECASE,
)
_NOT_SPINE = re.compile(
    r"\b(?:angina|gait|vitals?|vital\s+signs|hemodynamic(?:ally)?|blood\s+pressure|mood|glucose|diabetes|"
    r"INR|clinically|medically|patient\s+is)\b",
    re.IGNORECASE,
)

# X1: the pain attributed to something other than the fracture, or to the fracture.
# The subject is how notes name the complaint ("pain", "LBP", "Sx", "symptoms"); the words between the
# verb and the generator may be levels ("L4-5") or abbreviations ("w/"), never a negation: "Sx are not
# due to the stenosis" must stay unread (a negation inside the match is invisible to the assertion reader).
_NOT_NEGATION = r"(?!(?:not|never|no)\b)"
_PAIN_ELSEWHERE = ctx.compile_terms([
    r"(?:pain|LBP|sx|symptoms?)\s+(?:is\s+|are\s+|was\s+|were\s+)?"
    r"(?:(?:felt|thought|believed|judged|considered)\s+to\s+be\s+)?"
    r"(?:primarily\s+|mainly\s+|mostly\s+|predominantly\s+|likely\s+|more\s+likely\s+|most\s+likely\s+)?"
    r"(?:attributed|attributable|due|secondary|related)\s+to\s+(?:" + _NOT_NEGATION + r"[\w/.\-]+\s+){0,4}"
    r"(?:stenosis|radiculopathy|sciatica|disc\s+herniation|herniated\s+disc|facet\s+arthropathy|spondylosis)",
    r"(?:stenosis|radiculopathy|sciatica)\s+(?:is\s+)?(?:the\s+)?(?:likely\s+|primary\s+|main\s+)?"
    r"(?:pain\s+generator|source\s+of\s+(?:\w+\s+)?pain|cause\s+of\s+(?:\w+\s+)?pain)",
    r"pain\s+(?:is\s+)?not\s+(?:due\s+to|from|related\s+to|attributable\s+to|caused\s+by)\s+"
    r"(?:the\s+)?(?:\w+\s+){0,2}fracture",
])
# Other pain generators named by a Condition's text (X1; the coded ones are in codes/).
_GENERATOR_TEXT = ctx.compile_terms([r"radiculopathy", r"(?:spinal|lumbar|thoracic|central|foraminal)\s+stenosis",
                                     r"sciatica"])
_PAIN_AT_FRACTURE = ctx.compile_terms([
    r"pain\s+(?:is\s+)?(?:concordant|consistent|correlat\w*)\s+with\s+(?:the\s+)?(?:\w+\s+){0,2}fracture",
    r"pain\s+(?:is\s+)?(?:attributed|attributable|due|secondary)\s+to\s+(?:the\s+)?(?:\w+\s+){0,2}fracture",
    r"point\s+tenderness\s+(?:over|at)\s+(?:the\s+)?(?:fracture|[TL](?:1[0-2]|[1-9]))",
])

# Cement / contrast allergy words, read in AllergyIntolerance only ("MRI with contrast" in a report
# is not an allergy). "Iodine" or "shellfish" alone is not a contrast allergy (input profile).
_ALLERGY_TEXT = ctx.compile_terms([
    r"PMMA", r"poly\s*methyl\s*methacrylate", r"methyl\s*methacrylate", r"bone\s+cement",
    r"(?:iodinated\s+|IV\s+|intravenous\s+|radiographic\s+|radio)?contrast(?:\s+(?:media|medium|dye|agents?))?",
    r"(?:IV|x[\s\-]?ray|radiographic)\s+dye",
    *rxnorm.IODINATED_CONTRAST_NAMES,
])
_ALLERGY_INACTIVE = frozenset({"inactive", "resolved"})
_PREGNANCY_EXCLUSION_NOTE = "pregnancy coded on a male patient"

# Where exclusions are written. ServiceRequests are left out: an order's text is the question
# ("MRI to evaluate for discitis"), not the answer. Allergies are read on their own (X5).
_TEXT_TYPES = ("Condition", "DiagnosticReport", "DocumentReference", "Observation", "ImagingStudy", "Procedure",
               "CarePlan")


class _Signals:
    """What the record says of one exclusion, by kind of statement. A plain class with slots, not a
    dataclass of default factories: nine are made for every evaluation, most of them left empty."""

    __slots__ = ("denied", "hedged", "negated", "negated_terms", "positive")

    def __init__(self) -> None:
        self.positive: list[Evidence] = []
        self.denied: list[Evidence] = []  # a coded "no" (finding false, "not pregnant")
        self.negated: list[Evidence] = []  # negated or normal text
        # Possible or past mentions, with their term: "possible discitis", "history of osteomyelitis",
        # a provisional Condition. The same term negated elsewhere answers the question ("r/o discitis"
        # in the indication, "no discitis" in the impression).
        self.hedged: list[tuple[str, Evidence]] = []
        self.negated_terms: set[str] = set()

    def add(self, said: Assertion, term: str, ev: Evidence) -> None:
        """One mention, by what the text asserts of it (input profile, "Reading report text")."""
        if said.status == AFFIRMED:
            self.positive.append(ev)
        elif said.status in (NEGATED, RESOLVED):
            self.negated.append(ev)
            self.negated_terms.add(term)
        elif said.status in (POSSIBLE, HISTORICAL):
            self.hedged.append((term, ev))
        # hypothetical ("if pain persists, assess for discitis") or someone else's: no fact at all

    def open_questions(self) -> list[Evidence]:
        if not self.hedged:
            return []
        return _unique([ev for term, ev in self.hedged if term not in self.negated_terms])


def map_exclusions(record: Any, *, as_of: date, sex: str | None) -> dict[str, Any]:
    """The exclusion facts (`KEYS`) and the latest INR. `record` is the record or its `VisibleRecord`
    for `as_of`: only what the date shows is read."""
    view = visible(record, as_of)
    signals = {key: _Signals() for key in KEYS}
    generators: list[Evidence] = []  # radiculopathy / stenosis Conditions (X1)
    inr: list[tuple[Any, float, Evidence]] = []
    thrombophilia: list[Evidence] = []  # D68.5-/D68.6-: a clotting, not a bleeding, disorder

    current = [c for c in view.of_type("Condition") if ctx.is_current_condition(c, as_of)]
    current_ids = {id(c) for c in current}
    for condition in current:
        ref = view.ref(condition)
        provisional = _provisional(condition)
        for coding, path in common.codings(condition.code):
            icd = ctx.icd_key(coding.code) if coding.system == "icd-10-cm" else None  # read once per coding
            for key, (prefixes, sct) in _CONDITION_KEYS.items():
                if not _matches(coding, icd, prefixes, sct):
                    continue
                ev = ctx.code_ev(ref, path, coding)
                if key == "coagulopathy" and icd is not None and icd.startswith(_THROMBOPHILIA):
                    thrombophilia.append(ev)
                elif provisional:
                    signals[key].hedged.append((f"{coding.system}|{coding.code}", ev))
                else:
                    signals[key].positive.append(ev)
            for prefixes, sct in _GENERATOR_KEYS:
                if _matches(coding, icd, prefixes, sct):
                    generators.append(ctx.code_ev(ref, path, coding))
        if not any(e.reference == ref for e in generators):
            # A Condition named only in words ("Lumbar radiculopathy") is on the problem list all the same.
            for body, path in common.texts(condition.code):
                for _, said in assertion.scan(_GENERATOR_TEXT, body):
                    if said.status == AFFIRMED:
                        generators.append(ctx.text_ev(ref, path, said))
                        break

    for allergy in view.of_type("AllergyIntolerance"):
        if _allergy_inactive(allergy):
            continue
        _read_allergy(view.ref(allergy), allergy, signals["cement_allergy"])

    for obs in view.of_type("Observation"):
        ref = view.ref(obs)
        code = ctx.finding_code(obs)
        if code is not None and obs.valueBoolean is not None:
            ev = ctx.finding_evidence(ref, code, str(obs.valueBoolean).lower())
            if code == finding.PAIN_AT_FRACTURE_LEVEL:
                # false = the clinician attributes the pain to something else: the exclusion applies.
                (signals["pain_elsewhere"].denied if obs.valueBoolean else signals["pain_elsewhere"].positive).append(
                    ev
                )
            elif code in _FINDINGS:
                target = signals[_FINDINGS[code]]
                (target.positive if obs.valueBoolean else target.denied).append(ev)
        for coding, _path in common.codings(obs.code):
            if coding.system != "loinc":
                continue
            if coding.code in loinc.INR:
                value = _number(obs)
                if value is not None:
                    when, _ = ctx.timestamp(obs)
                    element = "valueQuantity" if obs.valueQuantity is not None else "valueString"
                    found = f"LOINC {coding.code} INR {value:g} on {when.days if when else 'an unknown date'}"
                    inr.append((when, value, Evidence(ref, element, Method.CODE, found)))
            elif coding.code == loinc.PREGNANCY_STATUS:
                _read_pregnancy_status(ref, obs, signals["pregnancy"])

    # The Conditions that are not current: their words are no exclusion (every other type is read).
    not_current = {id(c) for c in view.of_type("Condition")} - current_ids
    for resource, ref, element, body in view.free_texts(*_TEXT_TYPES):
        if id(resource) in not_current:
            continue
        for mention in exclusion_mentions(body):
            target, said = signals[mention.key], mention.assertion
            ev = ctx.text_ev(ref, element, said)
            if mention.kind == TERM:
                target.add(said, _term(mention.match), ev)
            elif said.status == AFFIRMED:
                # "strength 5/5 throughout": the deficit is absent; "pain concordant with the fracture": X1 is
                (target.negated if mention.kind == NORMAL else target.denied).append(ev)

    facts: dict[str, Any] = {
        "infection": _combine(signals["infection"], "infection (osteomyelitis, discitis, epidural abscess, "
                              "sepsis, bacteremia, surgical-site infection)"),
        "pregnancy": _pregnancy(signals["pregnancy"], sex),
        "cement_allergy": _combine(signals["cement_allergy"], "allergy to bone cement (PMMA) or contrast",
                                   "among the allergies recorded"),
        "coagulopathy": _coagulopathy(signals["coagulopathy"], thrombophilia),
        "instability": _combine(signals["instability"], "spinal instability"),
        "myelopathy": _combine(signals["myelopathy"], "myelopathy or cord compression"),
        "neurologic_deficit": _combine(signals["neurologic_deficit"], "neurologic deficit"),
        "neural_impingement": _combine(signals["neural_impingement"], "neural impingement"),
        "pain_elsewhere": _pain_elsewhere(signals["pain_elsewhere"], generators),
        "inr": _latest_inr(inr),
    }
    return facts


# --- readers ---


def _matches(coding: Any, icd: str | None, prefixes: tuple[str, ...], sct: dict[str, str]) -> bool:
    """Whether a coding is one of the list's: an ICD-10-CM code (`icd`, its `icd_key`; None for other
    systems) by its prefixes (`ctx.icd_prefixes` form), a SNOMED code by the set."""
    if icd is not None:
        return icd.startswith(prefixes)
    return coding.system == "snomed" and coding.code in sct


# What an exclusion word says (`ExclusionMention.kind`): the exclusion itself, a statement that its
# finding is normal ("strength 5/5 throughout"), or that the pain is the fracture's (X1).
TERM, NORMAL, AT_FRACTURE = "term", "normal", "at-fracture"


@frozen
class ExclusionMention:
    """One exclusion word in a text and what the text asserts of it."""

    key: str  # the exclusion fact: infection, myelopathy, neurologic_deficit, ...
    kind: str  # TERM, NORMAL or AT_FRACTURE
    match: re.Match[str]
    assertion: Assertion


def exclusion_mentions(body: str | None) -> list[ExclusionMention]:
    """Every exclusion word of a text (terms of `exclusion-terms.yaml`, spinal instability, the pain's
    attribution), in reading order, each with its assertion. The mapper's one way of reading exclusion
    text, for any report or note ("INDICATION: r/o discitis" is the question the report answers:
    hypothetical, no finding)."""
    present = _ANY_EXCLUSION_TEXT.present(body) if body else frozenset()
    if not present:
        return []  # none of the words below occurs: one pass instead of one per family
    found = [ExclusionMention(key, kind, m, said)
             for (kind, key), pattern in _FAMILIES.items() if (kind, key) in present and kind != _SPINAL
             for m, said in assertion.scan(pattern, body, found=True)]
    if (_SPINAL, "instability") in present:
        found += [ExclusionMention("instability", TERM, m, assertion.read_mention(body, m.start(), m.end()))
                  for m in _INSTABILITY.finditer(body) if _spinal(body, m)]
    return sorted(found, key=lambda x: x.match.start())


# Every family `exclusion_mentions` reads, by (kind, exclusion key), in the order it reads them:
# instability words (kind `_SPINAL`) count only about the spine (`_spinal`).
_SPINAL = "spinal-term"
_FAMILIES: dict[tuple[str, str], re.Pattern[str]] = {
    **{(TERM, key): pattern for key, pattern in _TEXT.items()},
    (TERM, "pain_elsewhere"): _PAIN_ELSEWHERE,
    **{(NORMAL, key): pattern for key, pattern in _NORMAL.items()},
    (AT_FRACTURE, "pain_elsewhere"): _PAIN_AT_FRACTURE,
    (_SPINAL, "instability"): _INSTABILITY,
}
# ... joined: which of them a text holds, in about one pass (`ctx.TermFamilies`).
_ANY_EXCLUSION_TEXT = ctx.TermFamilies(_FAMILIES)


def _spinal(body: str, m: re.Match[str]) -> bool:
    """Instability words count only about the spine ("unstable angina" is not spinal instability)."""
    a = max(body.rfind(sep, 0, m.start()) for sep in ".;\n") + 1
    b = min((i for i in (body.find(sep, m.end()) for sep in ".;\n") if i != -1), default=len(body))
    near = body[max(a, m.start() - 40) : min(b, m.end() + 40)]
    tail = body[m.end() : min(b, m.end() + 25)]
    head = body[max(a, m.start() - 25) : m.start()]
    return bool(_SPINE_CONTEXT.search(near)) and not _NOT_SPINE.search(tail) and not _NOT_SPINE.search(head)


def _read_text(signals: _Signals, pattern: re.Pattern[str], ref: str, element: str, body: str) -> None:
    for m, said in assertion.scan(pattern, body):
        signals.add(said, _term(m), ctx.text_ev(ref, element, said))


def _provisional(condition: Any) -> bool:
    """A Condition recorded as a possibility (unconfirmed / provisional / differential)."""
    codes = {c.code for c in (getattr(condition.verificationStatus, "coding", None) or [])}
    return bool(codes & {"unconfirmed", "provisional", "differential"})


def _allergy_inactive(allergy: Any) -> bool:
    status = {c.code for c in (getattr(allergy.clinicalStatus, "coding", None) or [])}
    verification = {c.code for c in (getattr(allergy.verificationStatus, "coding", None) or [])}
    return bool(status & _ALLERGY_INACTIVE or verification & {"refuted", "entered-in-error"})


def _read_allergy(ref: str, allergy: Any, signals: _Signals) -> None:
    concepts = [("code", allergy.code)]
    for i, reaction in enumerate(allergy.reaction or []):
        concepts.append((f"reaction[{i}].substance", reaction.substance))
    for element, concept in concepts:
        for coding, path in common.codings(concept, element):
            if coding.system == "snomed" and coding.code in snomed.CEMENT_ALLERGY:
                signals.positive.append(ctx.code_ev(ref, path, coding))
        for body, path in common.texts(concept, element):
            _read_text(signals, _ALLERGY_TEXT, ref, path, body)
    for body, path in common.notes(allergy):
        _read_text(signals, _ALLERGY_TEXT, ref, path, body)


def _read_pregnancy_status(ref: str, obs: Any, signals: _Signals) -> None:
    for coding, path in common.codings(obs.valueCodeableConcept, "valueCodeableConcept"):
        if coding.system != "snomed":
            continue
        if coding.code in snomed.PREGNANCY:
            signals.positive.append(ctx.code_ev(ref, path, coding))
        elif coding.code in snomed.NOT_PREGNANT:
            signals.denied.append(ctx.code_ev(ref, path, coding))


def _number(obs: Any) -> float | None:
    if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
        return float(obs.valueQuantity.value)
    if obs.valueString:
        m = re.fullmatch(r"\s*(\d{1,2}(?:\.\d+)?)\s*", obs.valueString)
        if m:
            return float(m[1])
    return None


# --- facts ---


_READ_IN_TEXT = "in the conditions, findings, reports or notes"


def _combine(signals: _Signals, label: str, where: str = _READ_IN_TEXT) -> Fact[bool]:
    if not (signals.positive or signals.denied or signals.negated or signals.hedged):
        # Nothing read either way (most exclusions of most records): the last answer below, at once.
        return Fact.absent(value=False, note=f"no {label} {where}")
    positive = _unique(signals.positive)
    if positive and signals.denied:
        return Fact.conflict(f"{label}: a coded finding says no, other sources say yes",
                             *positive, *_unique(signals.denied), value=None)
    if positive:
        return Fact.present(True, *positive)
    questions = signals.open_questions()
    if questions:
        said = "; ".join(dict.fromkeys(f"{e.found} ({e.reference})" for e in questions))
        return Fact.conflict(f"{label} mentioned as possible or past: {said}: a reviewer must decide", *questions)
    against = _unique(signals.denied + signals.negated)
    # The note says what was looked for and where, so that "absent" reads as a finding, not a shrug.
    return Fact.absent(*against, value=False, note=("" if against else f"no {label} {where}"))


def _coagulopathy(signals: _Signals, thrombophilia: list[Evidence]) -> Fact[bool]:
    """X6 (coded). Thrombophilia sits inside D68.- but raises clotting, not bleeding, risk: a reviewer
    decides rather than the code list (input profile lists D68.- whole: an interpretation)."""
    fact = _combine(signals, "coded coagulopathy")
    if fact.status is Status.ABSENT and thrombophilia:
        return Fact.conflict("thrombophilia (ICD-10-CM D68.5-/D68.6-) coded: a clotting disorder, not a "
                             "bleeding coagulopathy - a reviewer must decide", *_unique(thrombophilia))
    return fact


def _pregnancy(signals: _Signals, sex: str | None) -> Fact[bool]:
    if signals.positive and (sex or "").lower() == "male":
        return Fact.conflict(_PREGNANCY_EXCLUSION_NOTE, *_unique(signals.positive))
    return _combine(signals, "pregnancy", "coded in the conditions or a pregnancy status")


def _pain_elsewhere(signals: _Signals, generators: list[Evidence]) -> Fact[bool]:
    """X1. A coded or written attribution decides; a radiculopathy or stenosis on the problem list
    with no attribution either way is a question for a reviewer, not a silent pass."""
    positive, at_fracture = _unique(signals.positive), _unique(signals.denied)
    if positive and at_fracture:
        return Fact.conflict("the pain is attributed both to the fracture and to something else",
                             *positive, *at_fracture)
    if positive:
        return Fact.present(True, *positive, *_unique(generators))
    if at_fracture:
        return Fact.absent(*at_fracture, *_unique(generators), value=False, note="pain attributed to the fracture")
    if signals.open_questions():
        return Fact.conflict("another pain generator raised as a possibility: a reviewer must decide",
                             *signals.open_questions())
    if generators:
        return Fact.conflict("radiculopathy/stenosis on record: is the fracture the pain generator?",
                             *_unique(generators))
    return Fact.absent(*_unique(signals.negated), value=False,
                       note="no radiculopathy, stenosis or other pain generator on the problem list or in the notes")


def _latest_inr(found: list[tuple[Any, float, Evidence]]) -> Fact[float]:
    dated = [f for f in found if f[0] is not None]
    if not dated:
        return Fact.unknown("no INR on record")
    when, value, ev = max(dated, key=lambda f: f[0].order)  # by instant, offsets included
    return Fact.present(value, ev, note=f"latest INR {value:g} on {when.days}")


def _term(m: re.Match[str]) -> str:
    return " ".join(m.group(0).lower().split())


def _unique(evidence: list[Evidence]) -> list[Evidence]:
    """One evidence line per element read (two terms in one sentence are one piece of evidence)."""
    if len(evidence) < 2:
        return list(evidence)  # nothing to merge
    seen: dict[tuple[str, str, str], Evidence] = {}
    for ev in evidence:
        seen.setdefault((ev.reference, ev.element, ev.method), ev)
    return list(seen.values())

"""The assertion reader: what report text says about one mention (input profile, "Reading report text").

Every mention has one assertion: affirmed (a current fact), negated, possible, historical, resolved,
hypothetical, or about another person. The reader follows ConText (Harkema et al. 2009), with the
triggers as data (`assertion-triggers.yaml`, see `assertion_rules`):

- A trigger's scope runs to the end of its sentence (through every item of a list) and stops at a
  termination word ("but", "however", "which", ...) or at a word window the trigger file sets. A line
  break inside a sentence does not end it (dictated reports); a blank line, a bullet, a "Label:" line,
  a section header or the end of a sentence does.
- Triggers act on four axes: certainty (negated, possible, resolved), time (historical), hypothetical,
  and experiencer (other person). On one axis a backward trigger stated of the mention in its own
  clause wins (the predicate: "possible edema at T12 has resolved" is resolved), else the nearest, a
  backward one on a tie. A pseudo-trigger takes part as "not this category", so "No change in the L1
  marrow edema" is affirmed and the explanation can say why.
- Across axes: another person's finding is never the patient's; a hypothetical is never a finding
  (unless a result stated after an order's question answers it: "testing for X was negative");
  between certainty and time the outer trigger wins ("denies prior fracture" is negated, "the prior
  MRI showed no edema" is historical), and when neither holds the other, resolved > historical >
  negated > possible ("history of discitis, now resolved" is resolved).
- Sections: a question section (INDICATION, REASON FOR EXAM) makes every mention hypothetical, a
  COMPARISON section historical, a history section (CLINICAL HISTORY) makes affirmed mentions
  historical and hedged ones hypothetical ("?discitis" there is the question), a FAMILY HISTORY
  section someone else's. FINDINGS / IMPRESSION are this study.
- "No other X" (and "elsewhere", "remaining levels") marks the assertion `elsewhere`: it is about places
  other than those the text names, so a mapper must not apply it to the named level.

Reading a text once (`TextReading`) finds its sentences and sections; the triggers of a sentence are
found (one scan) when a mention in it is first read; every mention is then a few bisections and a
look at the sentence's triggers. `read_mention` and `scan` use a cached reading per text.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from fhir_vcf.mappers import assertion_rules as rules
from fhir_vcf.mappers import text as text_search
from fhir_vcf.mappers.assertion_rules import (
    AFFIRMED,
    ELSEWHERE,
    HISTORICAL,
    HYPOTHETICAL,
    NEGATED,
    OTHER_PERSON,
    POSSIBLE,
    PSEUDO,
    RESOLVED,
    STATUSES,
    TERMINATION,
    TriggerRule,
    TriggerSet,
)

__all__ = [
    "AFFIRMED", "HISTORICAL", "HYPOTHETICAL", "NEGATED", "OTHER_PERSON", "POSSIBLE", "RESOLVED", "STATUSES",
    "Assertion", "Section", "TextReading", "Trigger", "read_mention", "reading", "scan",
]

TRIGGERS: TriggerSet = rules.load_triggers()

# What each status means for a mapper (input profile, "Reading report text"): only affirmed mentions
# are current facts; negated and resolved are evidence of absence; hypothetical and other-person
# mentions are not facts at all; possible and historical mentions of an exclusion need a person.
PRESENT = frozenset({AFFIRMED})
ABSENT = frozenset({NEGATED, RESOLVED})
NOT_A_FACT = frozenset({HYPOTHETICAL, OTHER_PERSON})
UNCERTAIN = frozenset({POSSIBLE, HISTORICAL})

_AXIS = {NEGATED: "certainty", POSSIBLE: "certainty", RESOLVED: "certainty", HISTORICAL: "time",
         HYPOTHETICAL: "hypothetical", OTHER_PERSON: "experiencer", ELSEWHERE: "elsewhere"}
# When a certainty and a time trigger both govern a mention and neither lies inside the other's scope.
_TIE_ORDER = (RESOLVED, HISTORICAL, NEGATED, POSSIBLE)
_LABEL = {NEGATED: "negation", POSSIBLE: "hedge", HISTORICAL: "history", RESOLVED: "resolution",
          HYPOTHETICAL: "hypothetical", OTHER_PERSON: "other person", PSEUDO: "pseudo-trigger"}


class Trigger(NamedTuple):
    """A trigger found in the text: what it says (`rule`) and where (`start`, `end`).

    (Assertions and triggers are named tuples, immutable like frozen dataclasses and three times
    cheaper to build, which counts when every mention of every text is read.)
    """

    text: str
    start: int
    end: int
    rule: TriggerRule

    @property
    def category(self) -> str:
        return self.rule.category

    @property
    def family(self) -> str:
        return self.rule.family

    @property
    def cite(self) -> str:
        return self.rule.cite


@dataclass(frozen=True)
class Section:
    """A report section: its header as written, its kind, and the text it covers (after the header)."""

    header: str
    kind: str
    start: int
    end: int
    cite: str


class Assertion(NamedTuple):
    """What the text says about the mention text[start:end], and why.

    `trigger` is the trigger that decided what the sentence says (None when no trigger governs the
    mention); `scope` the span of text it governs (containing the mention); `sentence_status` that
    sentence-level status; `section` the section the mention lies in (None outside any), which may
    override it; `decided_by` says what decided `status`: "trigger", "section" or "default"
    (affirmed: nothing says otherwise). `text` is the whole text read (not a copy).
    `elsewhere` is set when the statement is about places other than those the text names ("no other
    abnormal uptake", "no edema elsewhere"): a mapper must not apply it to a level named beside it.
    """

    status: str
    start: int
    end: int
    sentence: tuple[int, int]
    text: str
    trigger: Trigger | None
    scope: tuple[int, int] | None
    section: Section | None
    decided_by: str
    sentence_status: str
    elsewhere: Trigger | None = None

    @property
    def mention(self) -> str:
        return self.text[self.start : self.end]

    @property
    def sentence_text(self) -> str:
        return self.text[self.sentence[0] : self.sentence[1]]

    @property
    def category(self) -> str | None:
        """The deciding trigger's category ("pseudo", "negated", ...), "section", or None."""
        if self.decided_by == "section":
            return "section"
        return self.trigger.category if self.trigger is not None else None

    @property
    def evidence(self) -> str:
        """What the mention is worth as evidence: "present", "absent", "uncertain" or "none"."""
        if self.status in PRESENT:
            return "present"
        if self.status in ABSENT:
            return "absent"
        return "uncertain" if self.status in UNCERTAIN else "none"

    def quote(self, width: int = 100) -> str:
        """The sentence, one line, cut to about `width` characters around the mention and trigger."""
        a, b = self.sentence
        lo, hi = self.start, self.end
        if self.trigger is not None and self.decided_by == "trigger":
            lo, hi = min(lo, self.trigger.start), max(hi, self.trigger.end)
        text = self.sentence_text
        if b - a > width:
            pad = max(0, (width - (hi - lo)) // 2)
            cut_a, cut_b = max(a, lo - pad), min(b, hi + pad)
            text = ("…" if cut_a > a else "") + text[cut_a - a : cut_b - a] + ("…" if cut_b < b else "")
        return " ".join(text.split()).strip(" .;")

    def why(self) -> str:
        """What decided the status, for a reader: "negation 'no'", "section INDICATION (question)",
        "pseudo-trigger 'no change in'", or "no trigger"."""
        if self.decided_by == "section" and self.section is not None:
            return f"section {self.section.header.strip().upper()} ({self.section.kind})"
        if self.trigger is not None:
            return f"{_LABEL.get(self.trigger.category, self.trigger.category)} '{' '.join(self.trigger.text.split())}'"
        return "no trigger"

    def said(self) -> str:
        """The quote with what decided it, short enough for an evidence line: "'No change in the L1
        marrow edema' (affirmed: pseudo-trigger 'No change in')", "'No retropulsion' (negated: 'No')";
        a plain affirmed statement is just its quote."""
        if self.decided_by == "default" and self.trigger is None:
            return f"'{self.quote()}'"
        return f"'{self.quote()}' ({self.decided()})"

    def decided(self) -> str:
        """The status and what decided it, in a few words: "negated: 'No'", "affirmed: pseudo-trigger
        'No change in'", "hypothetical: section INDICATION"."""
        if self.decided_by == "section" and self.section is not None:
            return f"{self.status}: section {self.section.header.strip().upper()}"
        if self.trigger is None:
            return self.status
        word = " ".join(self.trigger.text.split())
        kind = "pseudo-trigger " if self.trigger.category == PSEUDO else ""
        return f"{self.status}: {kind}'{word}'"

    def explain(self) -> str:
        """One line a reviewer can read: "'No change in the L1 marrow edema': pseudo-trigger 'no
        change in' → affirmed"."""
        why = self.why()
        where = f"; elsewhere: '{' '.join(self.elsewhere.text.split())}'" if self.elsewhere is not None else ""
        return f"'{self.quote()}': {why} → {self.status}{where}"


# --- sentences ---

# Sentence ends: terminal punctuation before a space or the end; a blank line; a line that starts a
# bullet, a numbered item or a "Label:" field. A single line break is not one (dictated reports).
# Abbreviations whose period ends no sentence ("Dr. Smith", "e.g. edema", "vs. artifact").
_ABBREVIATIONS = frozenset({
    "dr", "mr", "mrs", "ms", "st", "vs", "e.g", "i.e", "eg", "ie", "approx", "p.o", "b.i.d", "t.i.d", "q.i.d",
    "q.d", "h.s", "p.r.n", "fig", "cf", "al", "neg", "incl", "resp", "pt", "hx", "sx", "dx", "tx",
})
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the period at `dot` belongs to an abbreviation or to "No." before a number."""
    m = _WORD_BEFORE.search(text, max(0, dot - 12), dot)
    if m is None:
        return False
    word = m.group(1).lower().rstrip(".")
    if word in _ABBREVIATIONS:
        return True
    return word == "no" and bool(re.match(r"\.\s*\d", text[dot : dot + 4]))


_STOP = re.compile(r"[.!?;]+(?=[\"')\]]*(?:\s|$))")
_LINE_BREAK = re.compile(
    r"\n[ \t]*\n"
    r"|\n(?=[ \t]*(?:[-*•]|\d{1,2}[.)])[ \t])"
    r"|\n(?=[ \t]*[A-Za-z][A-Za-z0-9 /&()'\-]{0,40}:)"
)


def _sentence_cuts(text: str) -> list[int]:
    """Where sentences end (see `_STOP` and `_LINE_BREAK`)."""
    cuts = []
    last = len(text.rstrip())
    body = text[: last - 1]
    if not ("." in body or ";" in body or "?" in body or "!" in body):
        return [m.end() for m in _LINE_BREAK.finditer(text)] if "\n" in text else cuts
    for m in _STOP.finditer(text):
        if m.end() >= last:
            break  # the end of the text ends its last sentence anyway
        ch = m.group(0)[0]
        if ch == "." and m.end() - m.start() == 1 and _is_abbreviation(text, m.start()):
            continue
        if ch == "?" and (m.start() == 0 or not text[m.start() - 1].isalnum()):
            continue  # "? fracture", "Indication: ? discitis": a query, not the end of a question
        cuts.append(m.end())
    if "\n" in text:
        cuts.extend(m.end() for m in _LINE_BREAK.finditer(text))
    return cuts


# --- the reading of one text ---


class TextReading:
    """One text read once: its sentences, sections and triggers. `read(start, end)` per mention."""

    __slots__ = ("_by_sentence", "_folded", "_reads", "_section_starts", "_sentence_starts", "rules", "sections",
                 "sentences", "text")

    def __init__(self, text: str, triggers: TriggerSet | None = None) -> None:
        self.text = text
        self.rules = triggers or TRIGGERS
        headers = _headers(text, self.rules)
        cuts = _sentence_cuts(text)
        for header_start, body_start, _, _ in headers:
            cuts.extend((header_start, body_start))
        if cuts:
            edges = sorted({0, *cuts, len(text)})
            self.sentences = [(a, b) for a, b in itertools.pairwise(edges) if a < b] or [(0, len(text))]
        else:
            self.sentences = [(0, len(text))]
        self._sentence_starts = [a for a, _ in self.sentences]
        self.sections = _sections(text, headers, self) if headers else []
        self._section_starts = [s.start for s in self.sections]
        self._folded = rules.fold(text)
        self._by_sentence: dict[int, tuple[list[tuple[int, int, TriggerRule]], list[int]]] = {}
        # A short text's assertions, by mention: a code's display recurs as its concept's text and on
        # other patients' records (`reading` keeps the reading), and a mention is asked of it again.
        self._reads: dict[tuple[int, int], Assertion] | None = {} if len(text) <= _SHORT_TEXT else None

    # -- where things are --

    def _sentence_index(self, pos: int) -> int:
        return max(0, bisect.bisect_right(self._sentence_starts, pos) - 1)

    def sentence_at(self, pos: int) -> tuple[int, int]:
        return self.sentences[self._sentence_index(pos)]

    def _triggers_of(self, i: int) -> tuple[list[tuple[int, int, TriggerRule]], list[int]]:
        """The triggers of sentence i (and their starts), found when first asked for: one scan per
        sentence that holds a mention, and no trigger reaches over a sentence's end ("SKIN: No rash")."""
        cached = self._by_sentence.get(i)
        if cached is None:
            a, b = self.sentences[i]
            found = self.rules.find(self._folded, a, b)
            cached = self._by_sentence[i] = (found, [t[0] for t in found])
        return cached

    def section_at(self, pos: int) -> Section | None:
        i = bisect.bisect_right(self._section_starts, pos) - 1
        if i >= 0 and pos < self.sections[i].end:
            return self.sections[i]
        return None

    def triggers(self, start: int = 0, end: int | None = None) -> list[Trigger]:
        """The triggers of the sentences between start and end (for display: `fhir-vcf read-text`)."""
        end = len(self.text) if end is None else end
        first, last = self._sentence_index(start), self._sentence_index(max(start, end - 1))
        return [Trigger(self.text[a:b], a, b, rule) for i in range(first, last + 1)
                for a, b, rule in self._triggers_of(i)[0] if start <= a < end]

    # -- assertions --

    def read(self, start: int, end: int) -> Assertion:
        """The assertion of the mention text[start:end] (remembered for a short text)."""
        reads = self._reads
        if reads is None:
            return self._read(start, end)
        found = reads.get((start, end))
        if found is None:
            found = reads[start, end] = self._read(start, end)
        return found

    def _read(self, start: int, end: int) -> Assertion:
        text = self.text
        i = self._sentence_index(start)
        a, b = self.sentences[i]
        found, starts = self._triggers_of(i)
        if b - a > 2 * _NEAR:
            found = found[bisect.bisect_left(starts, start - _NEAR) : bisect.bisect_right(starts, end + _NEAR)]
        if any(t[0] < end and t[1] > start for t in found):
            found = _around_mention(self.rules, self._folded, found, start, end)
        stops = [(t0, t1, rule.ends) for t0, t1, rule in found if rule.category == TERMINATION]
        best: dict[str, tuple[tuple[int, int, int], int, int, TriggerRule, bool]] = {}
        contested: set[str] = set()  # axes on which a real (not pseudo) trigger reached the mention
        for t0, t1, rule in found:
            if rule.category == TERMINATION:
                continue
            effect = rule.effect
            if t1 <= start and rule.forward is not None:
                if start >= _forward_limit(text, stops, b, t0, t1, effect):
                    continue
                distance = len(_WORD.findall(text, t1, start))
                backward = False
            elif t0 >= end and rule.backward is not None:
                if end < _backward_limit(text, stops, a, t0, effect):
                    continue
                distance = len(_WORD.findall(text, end, t0))
                backward = True
            else:
                continue
            if distance > (rule.backward if backward else rule.forward):
                continue
            axis = _AXIS[effect]
            # On one axis the nearest trigger wins, except that a backward trigger stated of the mention
            # in the same clause (no comma between) is its predicate and wins over a forward modifier:
            # "Possible marrow edema at T12 has resolved" is resolved.
            predicate = backward and not _CLAUSE_MARK.search(text, end, t0)
            key = (0 if predicate else 1, distance, 0 if backward else 1)
            if axis not in best or key < best[axis][0]:
                best[axis] = (key, t0, t1, rule, backward)
            if rule.category != PSEUDO:
                contested.add(axis)
        status, decider = _decide(best, contested)
        elsewhere = best.get("elsewhere")
        elsewhere_trigger = None
        if elsewhere is not None:
            elsewhere_trigger = Trigger(text[elsewhere[1] : elsewhere[2]], elsewhere[1], elsewhere[2], elsewhere[3])
        trigger = scope = None
        if decider is not None:
            _, t0, t1, rule, backward = decider
            trigger = Trigger(text[t0:t1], t0, t1, rule)
            scope = _scope_of(text, stops, (a, b), t0, t1, rule, backward)
            if rule.elsewhere and elsewhere_trigger is None:
                elsewhere_trigger = trigger
        section = self.section_at(start)
        final = _section_status(status, section.kind) if section is not None else status
        decided_by = "section" if final != status else "trigger" if trigger is not None else "default"
        return Assertion(final, start, end, (a, b), text, trigger, scope, section, decided_by, status,
                         elsewhere_trigger)

    def read_all(self, spans: Iterable[tuple[int, int]]) -> list[Assertion]:
        return [self.read(s, e) for s, e in spans]


# Texts of at most this many characters (a code's display, a short note) remember their assertions.
_SHORT_TEXT = 200

# How far a scope reaches at most, in characters: a sentence of a long unpunctuated text (a hostile
# or broken feed) then costs each mention a bounded look, never a scan of the whole text.
_NEAR = 400
_WORD = re.compile(r"\w+")
_CLAUSE_MARK = re.compile(r"[,;:()]")
_OPEN, _CLOSE = "([{", ")]}"
_LABEL_COLON = re.compile(r"\w[^:]*:")


def _forward_limit(text: str, stops: list[tuple[int, int, frozenset[str]]], sentence_end: int, t0: int, t1: int,
                   effect: str) -> int:
    """Where a forward scope that starts at t1 ends at the latest: the sentence's end, a termination
    word for its category, a field label ("... Not Obtainable  REFERRING DIAGNOSIS: syncope"), or,
    for a trigger inside brackets, the closing bracket ("(slides not submitted) indicates ...")."""
    limit = sentence_end
    for s0, _, ends in stops:
        if t1 <= s0 < limit and (not ends or effect in ends):
            limit = s0
    colon = text.find(":", t1, limit)
    if colon != -1:
        label = _LABEL_COLON.search(text, t1, colon + 1)
        if label is not None:
            limit = label.start()
    if any(c in text[t1:limit] for c in _CLOSE) and _inside_brackets(text, t0):
        limit = min(i for i in (text.find(c, t1, limit) for c in _CLOSE) if i != -1)
    return limit


def _inside_brackets(text: str, pos: int) -> bool:
    """Whether pos lies inside a bracket opened on its line (looking `_NEAR` characters back at most)."""
    depth = 0
    for ch in _line_before(text, pos):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
    return depth > 0


def _backward_limit(text: str, stops: list[tuple[int, int, frozenset[str]]], sentence_start: int, t0: int,
                    effect: str) -> int:
    """Where a backward scope that ends at t0 starts at the earliest: the sentence's start, the end of a
    termination word for its category, or, for a trigger inside brackets, the opening bracket ("PVP T12
    (L1 not to be treated)" denies L1, not T12)."""
    limit = sentence_start
    for _, s1, ends in stops:
        if limit < s1 <= t0 and (not ends or effect in ends):
            limit = s1
    opening = text.rfind("(", limit, t0)
    if opening != -1 and text.find(")", opening, t0) == -1 and text[opening + 1 : t0].strip():
        limit = opening + 1  # not a bracket that holds only the trigger: "pneumonia (cannot be excluded)"
    return limit


def _decide(best: dict, contested: set[str]) -> tuple[str, tuple | None]:
    """The status from the nearest trigger on each axis (see the module docstring for the order)."""
    experiencer = best.get("experiencer")
    if experiencer is not None and experiencer[3].category != PSEUDO:
        return OTHER_PERSON, experiencer
    hypothetical = best.get("hypothetical")
    certainty = best.get("certainty")
    # "Testing for BK virus is negative": a result stated after the question it answers decides.
    result = (certainty is not None and certainty[4] and certainty[3].category in (NEGATED, RESOLVED)
              and hypothetical is not None and hypothetical[3].question and not hypothetical[4])
    if hypothetical is not None and hypothetical[3].category != PSEUDO and not result:
        return HYPOTHETICAL, hypothetical
    contenders = [best[axis] for axis in ("certainty", "time") if axis in best and best[axis][3].category != PSEUDO]
    if not contenders:
        # Nothing says otherwise: affirmed, quoting the pseudo-trigger that kept it so when it looks like
        # a trigger itself ("no change in", "likely") or beat one ("again noted" over "previously seen").
        for axis in ("certainty", "time", "hypothetical", "experiencer"):
            if axis in best and (axis == "certainty" or axis in contested):
                return AFFIRMED, best[axis]
        return AFFIRMED, None
    if len(contenders) == 1:
        return contenders[0][3].category, contenders[0]
    certainty, time = contenders
    if certainty[4] == time[4]:  # same side of the mention: the farther trigger's scope holds the nearer
        outer = certainty if certainty[0][1] > time[0][1] else time if time[0][1] > certainty[0][1] else None
        if outer is not None:
            return outer[3].category, outer
    ranked = min(contenders, key=lambda v: _TIE_ORDER.index(v[3].category))
    return ranked[3].category, ranked


def _section_status(status: str, kind: str) -> str:
    """The status under a section (input profile: INDICATION / CLINICAL HISTORY / REASON FOR EXAM /
    COMPARISON state the question or the past, not this study's findings)."""
    if kind == "family":
        return OTHER_PERSON
    if status == OTHER_PERSON:
        return status
    if kind == "question":
        return HYPOTHETICAL
    if kind == "comparison" and status != HYPOTHETICAL:
        return HISTORICAL
    if kind == "history" and status == POSSIBLE:
        return HYPOTHETICAL  # "CLINICAL INFORMATION: ?discitis": the question, not the past
    if kind == "history" and status == AFFIRMED:
        return HISTORICAL
    return status


def _scope_of(text: str, stops: list, sentence: tuple[int, int], t0: int, t1: int, rule: TriggerRule,
              backward: bool) -> tuple[int, int]:
    """The span a trigger governs on the mention's side: to the sentence's edge, a termination word
    or the end of its word window, whichever is nearest."""
    a, b = sentence
    if not backward:
        end = _forward_limit(text, stops, b, t0, t1, rule.effect)
        window = rule.forward
        if window is not None and window < rules.UNLIMITED:
            words = _WORD.findall(text, t1, end)
            if len(words) > window:
                end = list(_WORD.finditer(text, t1, end))[window - 1].end() if window else t1
        return t1, end
    start = _backward_limit(text, stops, a, t0, rule.effect)
    window = rule.backward
    if window is not None and window < rules.UNLIMITED:
        words = list(_WORD.finditer(text, start, t0))
        if len(words) > window:
            start = words[len(words) - window].start() if window else t0
    return start, t0


# --- triggers ---


def _around_mention(triggers: TriggerSet, folded: str, found: list, start: int, end: int) -> list:
    """The triggers of a sentence when one overlaps the mention ("no worsening of" read for the mention
    "worsening"): the overlapping trigger is dropped and its parts outside the mention read again."""
    out = []
    for t in found:
        if t[0] < end and t[1] > start:
            if t[0] < start:
                out.extend(triggers.find(folded, t[0], start))
            if t[1] > end:
                out.extend(triggers.find(folded, end, t[1]))
        else:
            out.append(t)
    return sorted(out, key=lambda t: t[0])


# --- sections ---


_LABEL_WORD = re.compile(r"[A-Za-z][\w'/&()\-]*")
_LINE = re.compile(r"[^\n]+")
_LEAD = " \t>*#-"


def _at_boundary(text: str, pos: int) -> bool:
    """Whether a header may start at pos: at the start of a line (after any bullet), after the end of
    a sentence, or after a run of spaces (reports whose line breaks were flattened into spaces)."""
    prefix = _line_before(text, pos)
    if not prefix.strip(_LEAD) and (pos <= _NEAR or "\n" in text[pos - _NEAR - 1 : pos]):
        return True
    if prefix[-1:].isspace() and prefix.rstrip().endswith((".", ";", "!", "?")):
        return True
    return pos >= 2 and text[pos - 2 : pos].isspace()


def _headers(text: str, triggers: TriggerSet) -> list[tuple[int, int, str, rules.SectionRule | None]]:
    """(header start, body start, header text, rule) for each section header, in order: a label that
    starts a line or a sentence and ends with a colon, or stands alone on its line. The rule is None
    for an all-capitals label the file does not know at the start of a line ("EXAM:"), which still
    ends the section before it."""
    if not triggers.sections or (":" not in text and "\n" not in text):
        return []
    last_words = _last_words(triggers)
    found = []
    colon = text.find(":")
    while colon != -1:
        last = text[max(0, colon - 40) : colon].rsplit(None, 1)[-1:]
        words = _label_words(text, colon) if last and (last[0].lower() in last_words or last[0].isupper()) else []
        if words and (words[-1].group(0).lower() in last_words or words[-1].group(0).isupper()):
            for w in words:  # the longest label first
                if not _at_boundary(text, w.start()):
                    continue
                name = text[w.start() : colon].strip()
                rule = triggers.sections.get(rules.normalize(name))
                if rule is not None or (name.isupper() and len(name) > 1 and _starts_line(text, w.start())):
                    found.append((w.start(), colon + 1, name, rule))
                    break
        colon = text.find(":", colon + 1)
    if "\n" in text:
        for line in _LINE.finditer(text):
            name = line.group(0).strip(_LEAD + ":")
            if name and len(name) < 40 and rules.normalize(name) in triggers.sections:
                start = line.start() + line.group(0).find(name[0])
                if not any(h[0] <= start < h[1] for h in found):
                    found.append((start, line.end(), name, triggers.sections[rules.normalize(name)]))
        found.sort()
    return found


def _label_words(text: str, colon: int) -> list[re.Match[str]]:
    """The (at most five) words right before a colon, on its line, joined by spaces only."""
    if colon + 1 < len(text) and text[colon + 1].isdigit():
        return []  # "10:32", "1:2": a time or a ratio
    lo = max(text.rfind("\n", 0, colon) + 1, colon - 60)
    words = list(_LABEL_WORD.finditer(text, lo, colon))
    chain: list[re.Match[str]] = []
    end = colon
    for w in reversed(words):
        if text[w.end() : end].strip(" \t"):
            break
        chain.append(w)
        end = w.start()
        if len(chain) == 5:
            break
    return chain[::-1]


@functools.lru_cache(maxsize=8)
def _last_words(triggers: TriggerSet) -> frozenset[str]:
    return frozenset(name.rsplit(" ", 1)[-1] for name in triggers.sections)


def _starts_line(text: str, pos: int) -> bool:
    return not _line_before(text, pos).strip(_LEAD) and (pos <= _NEAR or "\n" in text[pos - _NEAR - 1 : pos])


def _line_before(text: str, pos: int) -> str:
    """The text of pos's line before it, at most `_NEAR` characters back (a long line costs no more)."""
    lo = max(0, pos - _NEAR)
    return text[text.rfind("\n", lo, pos) + 1 or lo : pos]


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _sections(text: str, headers: list, reading: TextReading) -> list[Section]:
    """Each known header's section: to the next header; a question, history, comparison or family
    section also ends at a blank line, and, when no header follows, at the end of its line (or of its
    first sentence in a one-line text), so that the answer written after it stays this study's."""
    sections = []
    for i, (_, body, name, rule) in enumerate(headers):
        if rule is None:
            continue
        end = headers[i + 1][0] if i + 1 < len(headers) else len(text)
        if rule.kind != "study":
            blank = _BLANK_LINE.search(text, body, end)
            if blank is not None:
                end = blank.start()
            if i + 1 == len(headers):
                line_end = text.find("\n", body)
                if line_end != -1 and text[body:line_end].strip():
                    end = min(end, line_end)
                elif line_end == -1:
                    first = next((s for s in reading.sentences if s[0] >= body and text[s[0] : s[1]].strip()), None)
                    if first is not None:
                        end = min(end, first[1])
        sections.append(Section(name, rule.kind, body, end, rule.cite))
    return sections


# --- the one-call form ---


@functools.lru_cache(maxsize=128)
def reading(text: str) -> TextReading:
    """The reading of a text with the packaged triggers, cached: mappers asking about several mentions
    of one text (or several mappers about the same text) read it once."""
    return TextReading(text)


def scan(pattern: re.Pattern[str], text: str | None, *, found: bool = False
         ) -> Iterator[tuple[re.Match[str], Assertion]]:
    """(match, assertion) for each match of a mapper's term pattern in the text, the text read once.
    `found`: the caller's own gate (`TermFamilies.present`) has already found the pattern in the text,
    so the cheap search that guards the reading would only say yes again, and is skipped (its
    `Caseless` form, 0.1-9 ms to build for an exclusion family, is then never made). What is yielded
    is the pattern's own matches either way: a wrong `found` costs a search, never an answer."""
    if not text or not (found or _caseless(pattern).found(text)):
        return  # most texts hold none of a family's terms: that answer costs a cheap search
    matches = list(pattern.finditer(text))
    if matches:
        found = reading(text)
        for m in matches:
            yield m, found.read(m.start(), m.end())


_CASELESS: dict[int, tuple[re.Pattern[str], text_search.Caseless]] = {}


def _caseless(pattern: re.Pattern[str]) -> text_search.Caseless:
    """The `Caseless` form of a term pattern, made once per pattern (kept by identity: hashing a
    compiled pattern hashes its whole program)."""
    known = _CASELESS.get(id(pattern))
    if known is None or known[0] is not pattern:
        if len(_CASELESS) >= 1024:  # patterns built at run time (find_score) cannot fill the memory
            _CASELESS.clear()
        known = _CASELESS[id(pattern)] = (pattern, text_search.Caseless(pattern))
    return known[1]


def read_mention(text: str, start: int, end: int) -> Assertion:
    """The assertion of the mention text[start:end] (see the module docstring)."""
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"mention span {start}:{end} is outside the text (length {len(text)})")
    return reading(text).read(start, end)

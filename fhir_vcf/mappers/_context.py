"""Helpers shared by the context mappers (symptoms, care, exclusions).

Small readers that the three modules need and `common.py` does not hold: ICD-10-CM prefix
matching, clinical timestamps (a date *and* time where the record has one), medication names, and
the treatments a text states as given (read by the one assertion reader, `assertion.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from typing import Any

from fhir_vcf.clinical_time import When
from fhir_vcf.facts import Evidence, Method
from fhir_vcf.mappers import assertion, common, text
from fhir_vcf.mappers.assertion import AFFIRMED, HISTORICAL, Assertion
from fhir_vcf.mappers.codes.systems import VOCABULARY_NAMES

# Assertions under which a treatment counts as tried (a past course is still NSM; dates decide recency).
# "Declined PT", "never tried a brace", "if pain persists, start a TLSO" are no treatment given.
TRIED = frozenset({AFFIRMED, HISTORICAL})


def tried(pattern: re.Pattern[str], body: str | None, *, found: bool = False
          ) -> Iterator[tuple[re.Match[str], Assertion]]:
    """(match, assertion) for each mention of the pattern the text states as given (`TRIED`); `found`
    as `assertion.scan`'s (a family gate has found the pattern in the text)."""
    for m, said in assertion.scan(pattern, body, found=found):
        if said.status in TRIED:
            yield m, said


def compile_terms(patterns: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive pattern matching any of the terms as whole words."""
    return re.compile(r"\b(?:" + "|".join(f"(?:{p})" for p in patterns) + r")\b", re.IGNORECASE)


_GROUP_REFERENCE = re.compile(r"\\[1-9]|\(\?P=")


class TermFilter:
    """Whether a text can hold a term of a family: one pass of the terms joined into one pattern,
    instead of one pass per term, and remembered for short texts (a vital sign's name, a drug's
    display, a visit type recur on every visit of a record). A text it passes is then read term by
    term as before; a text it stops holds none of the terms, so nothing is lost. The joined pattern
    is searched in its lower-case form where that is the same answer (`text.Caseless`).
    `remember=False` for a family read in report text only, which seldom recurs word for word.
    """

    SHORT = 200  # longer texts (report prose) are searched every time
    LIMIT = 10_000  # short texts remembered per family; then the memory is emptied and refills (~3 MiB)

    def __init__(self, patterns: Iterable[re.Pattern[str]], *, remember: bool = True) -> None:
        self.pattern = _joined(list(patterns))
        self._search = text.Caseless(self.pattern) if self.pattern is not None else None
        self._short = self.SHORT if remember else -1
        self._seen: dict[str, Any] = {}

    def may_match(self, body: str) -> bool:
        if self._search is None:
            return True
        found = self._seen.get(body)  # a remembered short text: the answer, with no further call
        return found if found is not None else self._remembered(body, self._search.found)

    def _remembered(self, body: str, read: Callable[[str], Any]) -> Any:
        """`read(body)`, remembered for short texts (bounded: at `LIMIT` the memory is emptied). The
        readers look the memory up first themselves (most texts are remembered ones)."""
        if len(body) > self._short:
            return read(body)
        found = self._seen.get(body)
        if found is None:
            found = read(body)
            if len(self._seen) >= self.LIMIT:
                self._seen.clear()
            self._seen[body] = found
        return found


class TermFamilies(TermFilter):
    """Which of several term families occur in a text, found with the one pass of the families joined
    (the `TermFilter` gate's own) instead of one search per family after the gate.

    A search of the joined pattern finds the leftmost place where any family matches; each family
    not yet found is then tried at that one place only (an anchored match: a character or two), and
    the search goes on from the next character. So every place where some family matches is
    visited, and every family that matches there is named: exactly the families whose own search
    finds something (a family whose match overlaps another's is still found at its own start).
    A text's families are then read one by one as before, absent ones skipped.
    `tests/test_term_families.py` holds `present` to each family's own search on every term of the
    data files, on the sample texts and on random text.
    """

    def __init__(self, families: Mapping[Any, re.Pattern[str]], *, remember: bool = True) -> None:
        super().__init__(families.values(), remember=remember)
        self._keys = tuple(families)
        self._families = tuple(families.values())
        # The lower-case forms (`text.Caseless`), all or none: positions must come from one kind of text.
        lowered = tuple(text._lowered(p) for p in (self.pattern, *self._families)) if self.pattern else (None,)
        # The joined search only finds where a family can start (`_find`): it looks at the first character
        # before trying the families' alternations (`text.first_char_search`, the same matches).
        self._lowered = None if None in lowered else (text.first_char_search(lowered[0]), lowered[1:])

    def present(self, body: str) -> frozenset[Any]:
        """The keys of the families that occur in the text (remembered for short texts, as `may_match`)."""
        found = self._seen.get(body)  # as in `may_match`
        return found if found is not None else self._remembered(body, self._find)

    def may_match(self, body: str) -> bool:  # the same memory holds the families found: one kind of answer
        return bool(self.present(body))

    def _find(self, body: str) -> frozenset[Any]:
        if self.pattern is None:
            return frozenset(k for k, p in zip(self._keys, self._families, strict=True) if p.search(body))
        lowered = self._lowered
        low = text.ascii_lower(body) if lowered is not None else None  # None: not ASCII, read as it is
        if low is not None and lowered is not None:
            value, (joined, families) = low, lowered
        else:
            value, joined, families = body, self.pattern, self._families
        m = joined.search(value)
        if m is None:
            return _NONE  # most texts: the gate's one search, nothing more
        found: set[int] = set()
        count = len(families)
        while m is not None:
            start = m.start()
            found.update(j for j in range(count) if j not in found and families[j].match(value, start))
            if len(found) == count or start >= len(value):  # a search past the end would start at the end again
                break
            m = joined.search(value, start + 1)
        return frozenset(self._keys[i] for i in found)


_NONE: frozenset[Any] = frozenset()


def _joined(patterns: list[re.Pattern[str]]) -> re.Pattern[str] | None:
    """One pattern matching wherever any of `patterns` would; None when they cannot be joined without
    changing their meaning (different flags, group back-references)."""
    if not patterns or len({p.flags for p in patterns}) != 1 or any(
            _GROUP_REFERENCE.search(p.pattern) for p in patterns):
        return None
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), patterns[0].flags)
    except re.error:  # e.g. one group name in two patterns
        return None


def icd_key(code: str) -> str:
    return code.replace(".", "").strip().upper()


def icd_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """ICD-10-CM prefixes in `icd_key` form, made once per list: `icd_key(code).startswith(...)` of the
    result is whether the code starts with one of the prefixes, dots ignored on both sides."""
    return tuple(icd_key(p) for p in prefixes)


def vocabulary(system: str) -> str:
    return VOCABULARY_NAMES.get(system, system)


def code_ev(ref: str, element: str, coding: Any) -> Evidence:
    return common.code_evidence(ref, element, coding, vocabulary(coding.system))


def text_ev(ref: str, element: str, said: Assertion) -> Evidence:
    """Text evidence quotes the sentence and what decided its assertion (issue 8: explanations quote)."""
    return Evidence(ref, element, Method.TEXT, said.said())


def timestamp(resource: Any) -> tuple[When | None, str]:
    """When an Observation (or any dated resource) was taken, as an interval of instants.

    effective[x] first, `issued` as a last resort (input profile, rule 4). That is the resource's
    clinical date, `common.clinical_when`, read once per resource: its order puts effective[x] before
    `issued`, and no R4B type that has either has another of its date elements in between (the tests
    check every type).
    """
    return common.clinical_when(resource)


def is_current_condition(condition: Any, as_of: date) -> bool:
    """A Condition that is current on the as-of date: not historical, not abated, not dated after it.

    Abated when the abatement is wholly on or before the as-of date (a month of abatement that runs
    past it may not have happened yet)."""
    if common.is_historical(condition) or common.after(condition, as_of):
        return False
    abated = common.when(condition, getattr(condition, "abatementDateTime", None), "abatementDateTime") or common.when(
        condition, getattr(getattr(condition, "abatementPeriod", None), "end", None), "abatementPeriod.end"
    )
    return not (abated is not None and abated.last_day <= as_of)


def finding_code(observation: Any) -> str | None:
    """The local `urn:fhir-vcf:finding` code of an Observation, if it has one."""
    for coding, _ in common.codings(getattr(observation, "code", None)):
        if coding.system == "finding":
            return coding.code
    return None


def finding_evidence(ref: str, code: str, value: Any) -> Evidence:
    return Evidence(ref, "valueBoolean", Method.CODE, f"finding {code} = {value}")


def medication_texts(resource: Any, record: Any) -> Iterator[tuple[str, str]]:
    """The names a medication resource carries: its concept's text and displays, the reference's
    display, and the referenced Medication's code (contained, or a Medication in the record)."""
    concept = getattr(resource, "medicationCodeableConcept", None)
    if concept is not None:
        yield from common.texts(concept, "medicationCodeableConcept")
    reference = getattr(resource, "medicationReference", None)
    if reference is not None:
        if getattr(reference, "display", None):
            yield reference.display, "medicationReference.display"
        medication = _medication_of(resource, record)
        if medication is not None:
            yield from common.texts(getattr(medication, "code", None), "medicationReference → Medication.code")


def medication_codings(resource: Any, record: Any) -> Iterator[tuple[Any, str]]:
    concept = getattr(resource, "medicationCodeableConcept", None)
    if concept is not None:
        yield from common.codings(concept, "medicationCodeableConcept")
    medication = _medication_of(resource, record)
    if medication is not None:
        yield from common.codings(getattr(medication, "code", None), "medicationReference → Medication.code")


def _medication_of(resource: Any, record: Any) -> Any:
    """The Medication a medicationReference points at: contained ("#med"), or in the record (real
    feeds send product-coded Medications as separate resources)."""
    reference = getattr(getattr(resource, "medicationReference", None), "reference", None)
    if not reference:
        return None
    if reference.startswith("#"):
        return next((c for c in getattr(resource, "contained", None) or [] if getattr(c, "id", None) == reference[1:]),
                    None)
    target = record.resolve(reference)
    return target if target is not None and target.get_resource_type() == "Medication" else None


class NameReader:
    """`match_names` of one table of names: which names a text states as given, remembered for short
    texts (a drug's display, "oxycodone 5 MG Oral Tablet", recurs on every refill of a record and on
    other patients' records). What a text gives depends on the text alone: the names found and their
    assertions (immutable, of the text itself); the caller adds the resource and element. Bounded as
    `TermFilter`'s memory is. Without it, a medication's names cost ~50 µs a resource (the assertion
    reader's scan, per family); `tests/test_name_reader.py` holds it to `read_names` on every text."""

    def __init__(self, names: Mapping[str, re.Pattern[str]]) -> None:
        self.names = names
        self.families = TermFamilies(names)
        self._seen: dict[str, tuple[tuple[str, Assertion], ...]] = {}

    def read(self, body: str) -> tuple[tuple[str, Assertion], ...]:
        found = self._seen.get(body)
        if found is None:
            found = read_names(self.names, self.families, body)
            if len(body) <= TermFilter.SHORT:
                if len(self._seen) >= TermFilter.LIMIT:
                    self._seen.clear()
                self._seen[body] = found
        return found


_READERS: dict[int, NameReader] = {}


def match_names(names: Mapping[str, re.Pattern[str]], body: str) -> tuple[tuple[str, Assertion], ...]:
    """(canonical name, assertion) for each name pattern a medication text states as given (a
    `NameReader` per table, made at its first use)."""
    reader = _READERS.get(id(names))
    if reader is None or reader.names is not names:
        reader = _READERS[id(names)] = NameReader(names)
    return reader.read(body)


def read_names(names: Mapping[str, re.Pattern[str]], families: TermFamilies, body: str
               ) -> tuple[tuple[str, Assertion], ...]:
    """What `match_names` answers, read now: `families` (the names joined) says which names occur,
    each of those is read by the assertion reader."""
    named = families.present(body)
    if not named:
        return ()
    found = []
    for name, pattern in names.items():
        if name not in named:
            continue  # no match of this name in the text: nothing to read
        for _, said in tried(pattern, body, found=True):
            found.append((name, said))
            break
    return tuple(found)

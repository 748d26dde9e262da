"""`TermFamilies.present` (one pass of the families joined) names exactly the families whose own search
finds something: on every term of the data files, on the sample texts and on random text."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strings import bundle_strings

from fhir_vcf.mappers import _context as ctx
from fhir_vcf.mappers import assertion, care, exclusions, fractures, text
from fhir_vcf.mappers.codes import rxnorm

ROOT = Path(__file__).resolve().parents[1]
# Every joined family set the mappers read text with.
FAMILIES = {
    "care": care._ANY_CARE_TEXT,
    "exclusions": exclusions._ANY_EXCLUSION_TEXT,
    "context": fractures._ANY_CONTEXT_TERM,
    "analgesics": ctx.TermFamilies(care._ANALGESIC_NAMES),
    "osteoporosis drugs": ctx.TermFamilies(care._OSTEOPOROSIS_NAMES),
    "anticoagulants": ctx.TermFamilies(care._ANTICOAGULANT_NAMES),
}


def _expected(families: ctx.TermFamilies, body: str) -> frozenset:
    """The slow path: each family's own search."""
    return frozenset(k for k, p in zip(families._keys, families._families, strict=True) if p.search(body))


def _check(body: str) -> None:
    for name, families in FAMILIES.items():
        assert families._find(body) == _expected(families, body), (name, body)
        assert families.present(body) == families.present(body) == _expected(families, body), (name, body)
        assert bool(families.present(body)) == families.may_match(body), (name, body)


def _data_terms() -> list[str]:
    """Every term of the data files the families are built from: exclusion-terms.yaml and the drug names."""
    data = yaml.safe_load((ROOT / "fhir_vcf" / "mappers" / "exclusion-terms.yaml").read_text(encoding="utf-8"))
    terms = [t for families in data["exclusions"].values() for family in families for t in family["terms"]]
    for names in (rxnorm.ANALGESIC_NAMES, rxnorm.OSTEOPOROSIS_NAMES, rxnorm.ANTICOAGULANT_NAMES):
        terms += names.values()
    return [*terms, *rxnorm.IODINATED_CONTRAST_NAMES]


def test_every_family_set_is_joined_with_its_lower_case_form() -> None:
    # Otherwise nothing is wrong, only slower: each family is searched on its own.
    assert all(f.pattern is not None and f._lowered is not None for f in FAMILIES.values())


_WORDS = st.sampled_from(["the", "no", "with", "L1", "T12", "pain", "fracture", "brace", "not", "of", "4/5",
                          "5/5", "compression", "cord", "nerve root", "osteoporosis", "ſepsis", "K", "İ", "é"])
_GAPS = st.sampled_from([" ", ", ", ". ", "\n", "-", "", "/", ": "])


@pytest.mark.parametrize("term", _data_terms(), ids=lambda t: t[:40])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_present_on_every_term_of_the_data_files(term: str, data: st.DataObject) -> None:
    said = data.draw(st.from_regex(re.compile(term, re.IGNORECASE), fullmatch=True), label="term")
    before = data.draw(st.lists(_WORDS, max_size=3).map(" ".join), label="before")
    after = data.draw(st.lists(_WORDS, max_size=3).map(" ".join), label="after")
    body = f"{before}{data.draw(_GAPS)}{said}{data.draw(_GAPS)}{after}"
    _check(body)
    _check(said)


def _family_text() -> st.SearchStrategy[str]:
    """A text of pieces each matching one family (of any set), words, gaps and random characters."""
    patterns = [p for f in FAMILIES.values() for p in f._families]
    piece = st.one_of(*(st.from_regex(p) for p in patterns), _WORDS, st.text(max_size=6))
    return st.lists(st.tuples(piece, _GAPS), max_size=6).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_family_text())
def test_present_on_random_text(body: str) -> None:
    _check(body)


def test_present_on_every_sample_text() -> None:
    texts: set[str] = set()

    def strings(node: object) -> None:
        if isinstance(node, dict):
            for v in node.values():
                strings(v)
        elif isinstance(node, list):
            for v in node:
                strings(v)
        elif isinstance(node, str):
            texts.add(node)

    for path in sorted((ROOT / "samples").rglob("*.json")):
        strings(json.loads(path.read_text(encoding="utf-8")))
    hits = 0
    for body in sorted(texts | {t.upper() for t in texts}):
        _check(body)
        hits += bool(FAMILIES["exclusions"].present(body))
    assert hits  # the samples exercise both answers


@pytest.mark.parametrize("lower", [True, False], ids=["ascii", "non-ascii"])
def test_a_family_hidden_by_another_is_still_found(lower: bool) -> None:
    # Overlapping matches of two families, matches at one start, an empty match at the end.
    families = ctx.TermFamilies({
        "cord": re.compile(r"\bcord\s+compression\b", re.IGNORECASE),
        "compression": re.compile(r"compression", re.IGNORECASE),
        "co": re.compile(r"\bco", re.IGNORECASE),
        "end": re.compile(r"$", re.IGNORECASE),
        "absent": re.compile(r"\bdiscitis\b", re.IGNORECASE),
    }, remember=False)
    body = "Spinal cord compression" + ("" if lower else " é")
    assert families.present(body) == _expected(families, body) == {"cord", "compression", "co", "end"}
    assert families.present("") == {"end"}


def test_families_that_cannot_be_joined_are_searched_one_by_one() -> None:
    families = ctx.TermFamilies({"a": re.compile(r"(x)\1"), "b": re.compile("y", re.IGNORECASE)})
    assert families.pattern is None
    assert families.present("xx y") == {"a", "b"} and families.present("x y") == {"b"}


def _scanned(pattern: re.Pattern[str], body: str, *, found: bool = False) -> list[tuple[tuple[int, int], object]]:
    return [(m.span(), said) for m, said in assertion.scan(pattern, body, found=found)]


def _check_scan_after_gate(body: str) -> None:
    """What the mappers do: a family `present` names is scanned with `found=True` (no second gate), one
    it does not name is not scanned. Both must be what the plain `scan` gives."""
    for name, families in FAMILIES.items():
        present = families.present(body)
        for key, pattern in zip(families._keys, families._families, strict=True):
            plain = _scanned(pattern, body)
            if key in present:
                assert _scanned(pattern, body, found=True) == plain, (name, key, body)
            else:
                assert plain == [], (name, key, body)


def _bundle_texts() -> list[str]:
    """Every string of every bundle under samples/ and tests/data/, and its upper-case form."""
    found = bundle_strings()
    return sorted({*found, *(t.upper() for t in found)})


def test_scan_after_the_family_gate_on_every_bundle_text() -> None:
    texts = _bundle_texts()
    for body in texts:
        _check_scan_after_gate(body)
    assert sum(bool(FAMILIES["exclusions"].present(b)) for b in texts) > 10  # both answers are exercised


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_family_text())
def test_scan_after_the_family_gate_on_random_text(body: str) -> None:
    _check_scan_after_gate(body)


@functools.cache
def _first_char_searches() -> list[tuple[re.Pattern[str], re.Pattern[str]]]:
    """(plain, first-character search) of every family set's joined pattern and of each of its
    families, in the lower-case form searched."""
    lowered = [p for families in FAMILIES.values() for p in (text._lowered(families.pattern), *families._lowered[1])]
    return [(p, text.first_char_search(p)) for p in lowered if p is not None]


def _check_first_char_search(body: str) -> None:
    low = body.lower()
    for plain, looked in _first_char_searches():
        assert [m.span() for m in looked.finditer(low)] == [m.span() for m in plain.finditer(low)], (
            plain.pattern[:60], body)


def test_every_family_set_searches_by_first_character() -> None:
    # Otherwise nothing is wrong, only slower: the joined search tries every family at every place.
    assert all(f._lowered[0].pattern.startswith("(?=[") for f in FAMILIES.values())


def test_first_char_search_on_every_bundle_text() -> None:
    for body in _bundle_texts():
        _check_first_char_search(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_family_text())
def test_first_char_search_on_random_text(body: str) -> None:
    _check_first_char_search(body)

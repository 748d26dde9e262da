"""The word gate of imaging text (issue 11: cheaper evaluation, no reading changed).

`text.required_words` derives from a pattern the words every match of it contains, and
`imaging_text._may_state` skips a text, sentence or part that holds none of the words of the patterns
`_segment_signals` and `_percent_change` search. Held here: the words are in every match of every
pattern (random texts made from the patterns themselves); the gate's lists are the patterns those
functions search; and the gate never changes what a text is read as (every text of the samples and
test data, each read with the gate and with it open); and a short text's remembered reading is
its plain reading under any other source's labels.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import random
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strings import strings_in

from fhir_vcf.mappers import assertion, care, exclusions, fractures, imaging, imaging_text, symptoms, text
from fhir_vcf.mappers._context import TermFilter
from fhir_vcf.mappers.imaging_signals import ImagingScan, SignalSource

ROOT = Path(__file__).resolve().parent.parent


def _mapper_patterns() -> dict[str, re.Pattern[str]]:
    """Every compiled pattern of the mappers that read text (module-level names), by name."""
    found: dict[str, re.Pattern[str]] = {}
    for module in (text, imaging_text, imaging, fractures, care, exclusions, assertion, symptoms):
        for name, value in vars(module).items():
            if isinstance(value, text.Caseless):
                value = value.pattern
            if isinstance(value, re.Pattern):
                found[f"{module.__name__.rsplit('.', 1)[-1]}.{name}"] = value
    return found


_PATTERNS = _mapper_patterns()


@pytest.mark.parametrize("name", sorted(_PATTERNS))
def test_every_match_holds_the_required_words(name: str) -> None:
    pattern = _PATTERNS[name]
    needed = text.required_words(pattern)
    if needed is None:
        return  # no words: the gate of such a pattern passes every text

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern, fullmatch=False, alphabet=st.characters(codec="ascii")))
    def check(value: str) -> None:
        m = pattern.search(value)
        assert m is not None
        low = value.lower()
        for words in needed:
            assert any(low.find(w, m.start(), m.end()) >= 0 for w in words), (m.group(0), sorted(words))

    check()


@pytest.mark.parametrize(("source", "needed"), [
    (r"\bo?edema(?:tous)?\b|\bBME\b", [{"edema", "bme"}]),
    (r"(?:stable|stir)", [{"stable", "stir"}]),
    (r"\bvertebra\s+plana\b", [{"vertebra"}, {"plana"}]),
    (r"height\s+loss|loss\s+of\s+height", [{"height"}, {"loss"}]),
    (r"(?:sub)?acute", [{"acute", "subacute"}]),
    (r"\d+\s*%?", None),  # no word in every match
    (r"a.*b|c", [{"a", "c"}, {"b", "c"}]),
])
def test_required_words_of_small_patterns(source: str, needed: list[set[str]] | None) -> None:
    found = text.required_words(re.compile(source, re.IGNORECASE))
    if needed is None:
        assert found is None
        return
    assert found is not None
    # Every set found is needed; the sets named here are among them, less any that holds a shorter word.
    for words in needed:
        assert any(set(text._shortest(c)) <= words for c in found), (found, words)


def test_a_gate_passes_text_that_is_not_ascii() -> None:
    gate = text.WordGate([re.compile(r"\bstir\b", re.IGNORECASE)])
    assert not gate.may_match("sag t2")
    assert gate.may_match(text.ascii_lower("ſtir"))  # IGNORECASE finds "stir" in "ſtir": never skipped
    assert re.compile(r"\bstir\b", re.IGNORECASE).search("ſtir")
    assert gate.may_match("a stir b", 2, 6) and not gate.may_match("a stir b", 3, 8)


def test_the_gate_lists_the_patterns_the_readers_search() -> None:
    # A pattern searched in `_segment_signals` or `_percent_change` but missing from the gate could
    # find a statement in a text the gate skips.
    gated = {id(p) for p in (*imaging_text._STATEMENTS, *imaging_text._AGE)}
    filters = {"_SOFT_TISSUE", "_DISC_LEVEL", "_HEIGHT_WORDS", "_ACUITY_CONTEXT", "_FRACTURE_CONTEXT"}  # only skip
    for function in (imaging_text._segment_signals, imaging_text._percent_change):
        source = inspect.getsource(function)
        for name in set(re.findall(r"\b(_[A-Z][A-Z_]+)\b", source)):
            value = getattr(imaging_text, name)
            if name in filters:
                continue
            items = value if isinstance(value, tuple) else (value,)
            for p in [v for v in items if isinstance(v, tuple | re.Pattern)]:
                for q in (p if isinstance(p, tuple) else (p,)):
                    if isinstance(q, re.Pattern):
                        assert id(q) in gated, name
        if "height_loss_percents" in source:
            assert all(id(p) in gated for p in text.PERCENT_PATTERNS)
    # Age words are read only where fracture words are (the second half of `_may_state`).
    assert "if fracture_context:" in inspect.getsource(imaging_text._segment_signals)


def _texts() -> list[str]:
    """Every string of the samples and the test data, the assertion sentences, and texts made of
    their sentences shuffled together (so that words of one meet words of another)."""
    found: set[str] = set()
    for folder in (ROOT / "samples", ROOT / "tests" / "data"):
        for path in sorted(folder.rglob("*.json")):
            found.update(s for s in strings_in(json.loads(path.read_text())) if len(s) > 3)
        for path in sorted(folder.rglob("*.tsv")):
            for line in path.read_text().splitlines()[1:]:
                found.update(field for field in line.split("\t") if len(field) > 3)
    rng = random.Random(11)
    sentences = sorted({s.strip() for t in found for s in re.split(r"[.;\n]", t) if len(s.strip()) > 3})
    for _ in range(400):
        found.add(". ".join(rng.sample(sentences, 3)) + ".")
        found.add(", ".join(rng.sample(sentences, 2)))
    return sorted(found)


def _read(value: str, modality: str | None) -> list[object]:
    scan = ImagingScan()
    source = SignalSource("DiagnosticReport/r", date(2025, 6, 5), modality, ("T12",), report=True)
    imaging_text._READINGS.clear()  # read afresh, never a remembered reading
    imaging_text.analyze_text(scan, source, "conclusion", value)
    return scan.signals


def test_the_gate_never_changes_a_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _texts()
    gated = {(v, m): _read(v, m) for v in values for m in ("MR", "DX", None)}
    skipped = sum(1 for v in values if not imaging_text._may_state(text.ascii_lower(v), 0, len(v)))
    monkeypatch.setattr(imaging_text, "_may_state", lambda low, pos, endpos: True)
    for (value, modality), signals in gated.items():
        assert signals == _read(value, modality), (value, modality)
    # The gate does skip: most strings of a record (names, codes, lab conclusions) state nothing.
    assert skipped > len(values) // 2
    assert sum(1 for signals in gated.values() if signals) > 100  # and the texts do state things


_SOURCES = (  # two labels of each reading: another resource, day, report flag and element
    (SignalSource("DiagnosticReport/a", date(2025, 6, 5), None, (), report=True), "conclusion"),
    (SignalSource("ImagingStudy/b", None, None, (), report=False), "series[1].description"),
)


@pytest.mark.parametrize("modality", ["MR", "CT", "NM", "PT", "DX", None])
@pytest.mark.parametrize("fallback", [(), ("T12",), ("L1", "L2")])
def test_a_remembered_reading_is_the_plain_reading(modality: str | None, fallback: tuple[str, ...]) -> None:
    # `analyze_text` remembers the signals of a short text and gives them again under another source's
    # labels: each must equal a fresh `_read_text` of that source, label for label.
    values = [*_texts(), "T12 fracture. " * 20]  # and one past `TermFilter.SHORT`, never remembered
    sources = [(dataclasses.replace(s, modality=modality, fallback_levels=fallback), e) for s, e in _SOURCES]
    imaging_text._READINGS.clear()
    stating = 0
    for value in values:
        plain = []
        for source, element in sources:
            scan = ImagingScan()
            if imaging_text._CUES.may_match(value):
                imaging_text._read_text(scan, source, element, value)
            plain.append(scan.signals)
        for _ in range(2):  # the first reading is remembered, the second given from memory
            for (source, element), expected in zip(sources, plain, strict=True):
                scan = ImagingScan()
                imaging_text.analyze_text(scan, source, element, value)
                assert scan.signals == expected, (value, source, element)
        stating += bool(plain[0])
    assert stating > 100 and len(imaging_text._READINGS) > 300
    assert all(len(v) <= TermFilter.SHORT for v, _, _ in imaging_text._READINGS)


def test_remembered_readings_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging_text, "_READINGS_LIMIT", 3)
    imaging_text._READINGS.clear()
    source = SignalSource("DiagnosticReport/r", date(2025, 6, 5), "MR", ())
    for i in range(10):
        imaging_text.analyze_text(ImagingScan(), source, "conclusion", f"T{i + 1} fracture.")
        assert 1 <= len(imaging_text._READINGS) <= 3


@pytest.mark.parametrize("pattern", [text._LEVEL, text._RANGE, text._PAIR, imaging_text._GENANT_WORDS, text._PERCENT],
                         ids=lambda p: p.pattern[:30])
def test_named_groups_have_a_lower_case_form_read_by_the_same_names(pattern: re.Pattern[str]) -> None:
    lowered = text._lowered(pattern)
    assert lowered is not None and lowered.groupindex == pattern.groupindex
    for value in [*_texts()[:3000], "T11-12 and L2 to L4, Th12, moderate wedge compression, 30 PERCENT"]:
        if not value.isascii():
            continue
        expected = [(m.span(), {k: (v or "").lower() for k, v in m.groupdict().items()})
                    for m in pattern.finditer(value)]
        assert [(m.span(), {k: v or "" for k, v in m.groupdict().items()})
                for m in lowered.finditer(value.lower())] == expected, value


class _Open:
    """A gate that passes every text (the slow path)."""

    def may_match(self, low: str | None, pos: int = 0, endpos: int = 0) -> bool:
        return True


def test_level_mentions_are_the_same_without_the_range_and_ordinal_gates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = [*_texts(), "T11-L1", "T11 to L1", "T11 thru L1", "T11–L1", "T-11 through L-1", "L2-4 and L5-S1 disc",
              "first lumbar vertebra", "twelfth thoracic and first lumbar vertebrae", "second sacral vertebra",
              "T11\u2014L1"]
    gated = {v: text.level_mentions(v) for v in values}
    monkeypatch.setattr(text, "_RANGE_WORDS", _Open())
    monkeypatch.setattr(text, "_ORDINAL_WORDS", _Open())
    for value, mentions in gated.items():
        assert text.level_mentions(value) == mentions, value
    assert gated["T11–L1"] == [(0, 6, ["T11", "T12", "L1"])] and gated["first lumbar vertebra"][0][2] == ["L1"]

"""`text.Caseless`: a case-insensitive pattern searched in lower case must give exactly the answer of
the pattern itself (issue 11: cheaper report-text reading, no reading changed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from json_strings import strings_in

from fhir_vcf.mappers import _context, assertion, care, exclusions, fractures, imaging, imaging_text, text

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

# Characters that IGNORECASE matches to an ASCII letter while str.lower() does not: such text must be
# searched with the pattern itself.
_ODD = ["ſacrum", "ſtir", "Kyphosis", "\u212aYPHOSIS", "dıscitis", "dİsc", "Straße", "ÉDEMA at L1", "oedème"]


def _texts() -> list[str]:
    found = {s for path in sorted(SAMPLES.glob("*.json")) for s in strings_in(json.loads(path.read_text()))}
    found |= {s.upper() for s in list(found)} | set(_ODD)
    return sorted(found)


def _patterns() -> list[re.Pattern[str]]:
    """Every pattern the mappers now search through `Caseless`, and the term families `assertion.scan` gates."""
    found = [imaging_text._ANY_CUE, imaging_text._OTHER_LEVELS.pattern, text._DISC_WORD.pattern, text._SACRUM,
             imaging_text._FRACTURE_CONTEXT.pattern, imaging_text._ACUITY_CONTEXT.pattern,
             *(w.pattern for _, w in imaging._MODALITY_WORDS), imaging._ANY_MODALITY_WORD.pattern,
             fractures._OSTEOPOROSIS, fractures._MALIGNANCY, fractures._MYELOMA, fractures._HEALED, fractures._KYPHOSIS,
             *care._TEXT_KINDS.values(), care._ANALGESIC_TEXT, care._OSTEOPOROSIS_TEXT, care._DXA_TEXT,
             care._PROGRAM_TEXT, *care._ANALGESIC_NAMES.values(), *exclusions._TEXT.values(),
             *exclusions._NORMAL.values()]
    families = (care._ANY_CARE_TEXT, exclusions._ANY_EXCLUSION_TEXT, fractures._ANY_CONTEXT_TERM, imaging_text._CUES)
    for family in families:
        assert family.pattern is not None
        found.append(family.pattern)
    return found


@pytest.mark.parametrize("pattern", _patterns(), ids=lambda p: p.pattern[:40])
def test_caseless_answers_as_the_pattern(pattern: re.Pattern[str]) -> None:
    searched = text.Caseless(pattern)
    for value in _texts():
        assert searched.found(value) == bool(pattern.search(value)), value
        middle = len(value) // 2
        assert searched.found(value, middle, len(value)) == bool(pattern.search(value, middle, len(value)))


def test_the_mapper_families_have_a_lower_case_form() -> None:
    # Otherwise nothing is wrong, only slower: the pattern itself is searched.
    assert all(text._lowered(p) is not None for p in (imaging_text._ANY_CUE, text._DISC_WORD.pattern,
                                                       care._ANY_CARE_TEXT.pattern))


@pytest.mark.parametrize(
    "source",
    [r"\S+fracture", r"\bfx\B", r"(a)\1", r"\x4Aewett", r"(?-i:TLSO)", r"[A-z]", r"[0-Z]", r"(?P<Region>t)1",
     "\u017facrum", r"stir", r"edema"],
)
def test_lower_case_form_only_where_lowering_keeps_the_meaning(source: str) -> None:
    pattern = re.compile(source, re.IGNORECASE)
    lowered = text._lowered(pattern)
    if lowered is None:
        return
    for value in ("STIR", "Edema", "stir", "edema"):
        assert bool(lowered.search(value.lower())) == bool(pattern.search(value))
    assert source in {"stir", "edema"}


def test_modality_gate_passes_every_word_a_family_finds() -> None:
    # The joined gate of `imaging._search_modality` may skip a word only when no family finds it.
    values = [*_texts(), "MR L-spine", "SPECT/CT", "Bone scan", "CAT scan", "x-ray", "plain film", "CBC panel"]
    for value in values:
        assert imaging._ANY_MODALITY_WORD.found(value) == any(w.found(value) for _, w in imaging._MODALITY_WORDS), value


def test_a_case_sensitive_pattern_is_searched_as_it_is() -> None:
    pattern = re.compile(r"BME")
    assert text._lowered(pattern) is None
    assert not text.Caseless(pattern).found("bme") and text.Caseless(pattern).found("BME")


def test_scan_gate_matches_scan() -> None:
    for value in _texts():
        for pattern in (fractures._MALIGNANCY, care._DXA_TEXT, _context.compile_terms([r"brace"])):
            assert [m.span() for m, _ in assertion.scan(pattern, value)] == [m.span() for m in pattern.finditer(value)]

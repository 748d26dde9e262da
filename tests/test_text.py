"""The free-text readers: levels, negation, percentages, scores (input profile, rules 1 and 6)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strings import bundle_strings

from fhir_vcf.mappers import assertion, text


@pytest.mark.parametrize(
    ("value", "levels"),
    [
        ("T12", ["T12"]),
        ("Th12", ["T12"]),
        ("T-12", ["T12"]),
        ("t 12 compression", ["T12"]),
        ("L1 vertebral body", ["L1"]),
        ("T11-L1", ["T11", "T12", "L1"]),
        ("T11 to L1", ["T11", "T12", "L1"]),
        ("T11–L1", ["T11", "T12", "L1"]),
        ("L2-4", ["L2", "L3", "L4"]),
        ("T12 and L1", ["T12", "L1"]),
        ("kyphoplasty T12, L1", ["T12", "L1"]),
        ("L1 and T12", ["T12", "L1"]),  # head to foot, whatever the order written
        ("sacrum", ["S1"]),
        ("sacral insufficiency fracture", ["S1"]),
        ("C7 fracture", ["C7"]),
        ("T1 vertebra", ["T1"]),
    ],
)
def test_levels(value, levels):
    assert text.find_levels(value) == levels


@pytest.mark.parametrize(
    "value",
    [
        "T2 hyperintense signal",
        "T1-weighted images",
        "T2/STIR",
        "sagittal T2 and STIR",
        # MRI series descriptions: a plane before, or a sequence / option after, makes T1/T2 a sequence.
        "SAG T2",
        "AX T2",
        "T1 SAG",
        "SAG T1 FSE",
        "T2 FS",
        "T2 TSE",
        "Sag T2 FS",
        "T2 STIR",
        "T1 post gad",
        "T1 + C",
        "sagittal T1 and T2",
        "Sag. T1",
        "T13",  # no such vertebra: dropped, never guessed
        "C8",
        "at12 units",
        "T-score -2.7",
        "L-spine series",
        "",
        None,
    ],
)
def test_not_levels(value):
    assert text.find_levels(value) == []


def test_mri_sequence_beside_a_real_level():
    assert text.find_levels("T2 hyperintense marrow signal at L1") == ["L1"]
    assert text.find_levels("AX T2 L1-S1") == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert text.find_levels("T2 compression fracture; T1 and T2 vertebral bodies") == ["T1", "T2"]


@pytest.mark.parametrize(
    ("sentence", "term", "negated"),
    [
        ("no marrow edema at T12", "marrow edema", True),
        ("without retropulsion", "retropulsion", True),
        ("negative for fracture", "fracture", True),
        ("No evidence of marrow edema", "marrow edema", True),
        ("marrow edema: none", "marrow edema", True),
        ("marrow edema is absent", "marrow edema", True),
        ("marrow edema at T12", "marrow edema", False),
        ("no fracture but marrow edema at T12", "marrow edema", False),
        ("No edema. Retropulsion of fragment.", "Retropulsion", False),
        # Report shorthand: "w/o" (without) and "neg for" / "neg. for" (negative for).
        ("L1 compression fx, STIR hyperintense, w/o retropulsion", "retropulsion", True),
        ("Neg for cord compression.", "cord compression", True),
        ("Neg. for discitis/osteomyelitis.", "osteomyelitis", True),
        ("w/ retropulsion", "retropulsion", False),
    ],
)
def test_negation(sentence, term, negated):
    # The mappers' one reader (assertion.py) decides negation; these are the first round's cases.
    start = sentence.index(term)
    assert (assertion.read_mention(sentence, start, start + len(term)).status == "negated") is negated


def test_scan_reads_each_mention_of_a_term():
    found = [(m.start(), said.status) for m, said in assertion.scan(
        re.compile(r"marrow\s+edema", re.IGNORECASE), "Marrow edema at T12. No marrow edema at L1.")]
    assert found == [(0, "affirmed"), (24, "negated")]


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("35% height loss", [35.0]),
        ("loss of 40% of height", [40.0]),
        ("40 percent collapse of L1", [40.0]),
        ("anterior wedging with 25.5 % height reduction", [25.5]),
        ("90% oxygen saturation", []),
        ("T-score at the 5th percentile", []),
        ("no 30% height loss", []),
        ("150% height loss", []),
        # A range supports only its lower bound (never a number beyond what the text supports):
        # "25-30%" is not "> 25 %" for certain.
        ("25-30% ht loss", [25.0]),
        ("approx 20 - 30% anterior height loss", [20.0]),
        ("height loss of 30 to 40 percent", [30.0]),
        ("20%-30% height loss", [20.0]),
        # ... but "from 20% to 35%" is a change between two studies: both values stand.
        ("height loss progressed from 20% to 35%", [20.0, 35.0]),
    ],
)
def test_height_loss_percent(value, found):
    # What the report affirms: the percentages worded as height loss, less those the reader negates.
    stated = [v for v, a, b in text.height_loss_percents(value)
              if assertion.read_mention(value, a, b).status == "affirmed"]
    assert stated == found


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("RDQ 19", [19]),
        ("Roland-Morris 19/24", [19]),
        ("RMDQ: 12 out of 24", [12]),
        ("RDQ 30", []),  # above the maximum
        ("RDQ 8/10", []),  # a fraction of the wrong scale
    ],
)
def test_scores(value, found):
    assert text.find_score(value, ["RDQ", "RMDQ", "Roland-Morris"], 24) == found


@pytest.mark.parametrize(
    ("value", "groups"),
    [
        ("T12, L1 and L2 with edema", [["T12", "L1", "L2"]]),
        ("T12 with 35% height loss and L1 with 20%", [["T12"], ["L1"]]),
        ("edema at T12 but not at L1", [["T12"], ["L1"]]),
        ("T11-L1 fractures", [["T11", "T12", "L1"]]),
        ("sacrum and L5", [["L5", "S1"]]),
        ("T2 hyperintense signal", []),
    ],
)
def test_level_mentions_group_lists(value, groups):
    assert [levels for _, _, levels in text.level_mentions(value)] == groups


@pytest.mark.parametrize(
    ("sentence", "term", "hedged"),
    [
        ("possible marrow edema at T12", "marrow edema", True),
        ("suspicious for metastatic disease", "metastatic", True),
        ("cannot rule out retropulsion", "retropulsion", True),
        ("marrow edema versus artifact", "marrow edema", True),
        ("marrow edema at T12", "marrow edema", False),
        ("no marrow edema", "marrow edema", False),
    ],
)
def test_hedging(sentence, term, hedged):
    start = sentence.index(term)
    assert (assertion.read_mention(sentence, start, start + len(term)).status == "possible") is hedged


# Disc notation: two adjacent levels named as a disc ("L4-L5 disc", "disc bulge at L5-S1", "the L4-5
# level", "T12/L1 interspace") are an intervertebral disc, not two fractured vertebrae.
@pytest.mark.parametrize(
    ("value", "levels"),
    [
        ("Degenerative disc disease at the L4-L5 disc", []),
        ("L5-S1 interspace narrowing", []),
        ("Mild disc bulge at L4-L5.", []),
        ("disc protrusion at L4-5 without stenosis", []),
        ("L5-S1 disc desiccation", []),
        ("T12/L1 disk space", []),
        ("L4-L5: disc bulge with mild foraminal narrowing", []),
        ("L4-5: Mild disc bulge.", []),
        ("T12-L1: acute compression fractures", ["T12", "L1"]),
        ("facet arthropathy at the L4-5 level", []),
        ("Acute L1 compression fracture; degenerative disc disease at L4-L5", ["L1"]),
        ("Acute L1 fracture. L5-S1 disc herniation.", ["L1"]),
        # Vertebrae, not discs: a range wider than one disc, plural "levels", no disc context.
        ("compression fractures T11-L1 with disc space preserved", ["T11", "T12", "L1"]),
        ("compression fractures at the L1-L2 levels", ["L1", "L2"]),
        ("fractures T12-L1", ["T12", "L1"]),
        ("T12 and L1 fractures; no disc herniation", ["T12", "L1"]),
    ],
)
def test_disc_notation_is_not_vertebral_levels(value, levels):
    assert text.find_levels(value) == levels


@pytest.mark.parametrize(
    ("value", "levels"),
    [
        ("Wedge compression fracture of first lumbar vertebra", ["L1"]),
        ("Bone structure of twelfth thoracic vertebra", ["T12"]),
        ("fracture of fifth lumbar vertebra", ["L5"]),
        ("seventh cervical vertebra", ["C7"]),
        ("second sacral vertebra", ["S2"]),
        ("first thoracic and first lumbar vertebrae", ["T1", "L1"]),
        ("first lumbar spine visit", []),  # an ordinal names a vertebra only with the word vertebra
        ("first lumbar vertebral body", ["L1"]),
        ("sixth lumbar vertebra", []),  # no such vertebra: never guessed
        ("first visit for lumbar pain", []),
    ],
)
def test_ordinal_vertebra_names(value, levels):
    assert text.find_levels(value) == levels


def test_a_query_mark_in_the_indication_is_the_question_not_a_finding():
    assert assertion.read_mention("INDICATION: ?discitis", 13, 21).status == "hypothetical"
    assert assertion.read_mention("INDICATION: ? discitis", 14, 22).status == "hypothetical"
    assert assertion.read_mention("What? Discitis at T11-T12.", 6, 14).status == "affirmed"


def test_an_ordinal_level_written_with_a_long_s_is_read_not_a_crash():
    """IGNORECASE lets "ſ" (U+017F) match "s", so the ordinal pattern matches "ſecond ſacral vertebra";
    the label is then looked up by casefold (lower keeps "ſ" and the lookup used to raise ValueError,
    a 500 for a report holding the character)."""
    assert text.find_levels("Fracture of ſecond ſacral vertebra") == ["S2"]
    assert text.find_levels("Fracture of second sacral vertebra") == ["S2"]
    assert text.find_levels("ſixth thoracic vertebra, healed") == ["T6"]


def _check_remembered_levels(value: str) -> None:
    fresh = text._read_levels(value)
    first = text.find_levels(value)
    assert first == fresh, value
    first.append("C1")  # a caller's list is its own: the memory is not changed through it
    assert text.find_levels(value) == fresh, value  # asked again: from memory for a short text


def test_remembered_levels_on_every_bundle_text() -> None:
    values = bundle_strings()
    for value in values:
        _check_remembered_levels(value)
    assert any(text.find_levels(v) for v in values if len(v) <= text.SHORT_TEXT)  # levels are remembered
    assert text._short_levels.cache_info().hits > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.lists(st.sampled_from(["T12", "L1", "-", "–", " to ", "L4-5", " disc", "SAG T2", " STIR", "sacrum",
                                        "first lumbar vertebra", ", ", " and ", "t 11", "Th12", "S1", "x"]),
                      max_size=8).map("".join))
def test_remembered_levels_on_generated_text(value: str) -> None:
    _check_remembered_levels(value)


def test_long_texts_are_not_remembered() -> None:
    long = "Compression fracture T12. " + "Stable. " * 30
    assert len(long) > text.SHORT_TEXT
    before = text._short_levels.cache_info().currsize
    assert text.find_levels(long) == ["T12"]
    assert text._short_levels.cache_info().currsize == before
    assert text._short_levels.cache_info().maxsize == 10_000  # bounded

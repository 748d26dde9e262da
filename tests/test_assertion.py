"""The assertion reader (issue 8; input profile, "Reading report text").

The table `tests/data/assertion/spine-sentences.tsv` holds spine-radiology sentences written for this
project, each with a finding and the status the input profile gives it (written before the reader
ran on them): construct, sentence (`\\n` = a line break), finding (`@N` = its Nth occurrence),
status, the deciding trigger when one must decide, and whether the statement is about other places
than those the text names ("no other").
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from fhir_vcf.errors import ConfigError
from fhir_vcf.mappers import assertion
from fhir_vcf.mappers.assertion import TextReading, read_mention
from fhir_vcf.mappers.assertion_rules import (
    DEFAULT_PATH,
    STATUSES,
    compile_triggers,
    expand,
    inflections,
    load_triggers,
)

TABLE = Path(__file__).parent / "data" / "assertion" / "spine-sentences.tsv"


def _rows() -> list[pytest.param]:
    with TABLE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [pytest.param(row, id=f"{n + 2}-{row['construct']}") for n, row in enumerate(rows)]


ROWS = _rows()


def _span(sentence: str, finding: str) -> tuple[int, int]:
    occurrence = 1
    if "@" in finding:
        finding, nth = finding.rsplit("@", 1)
        occurrence = int(nth)
    start = -1
    for _ in range(occurrence):
        start = sentence.find(finding, start + 1)
        assert start != -1, f"{finding!r} (occurrence {occurrence}) is not in {sentence!r}"
    return start, start + len(finding)


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def test_the_table_covers_every_construct_of_the_profile() -> None:
    rows = [p.values[0] for p in ROWS]
    assert len(rows) >= 150
    constructs = {r["construct"].split("-")[0] for r in rows}
    for construct in ("pseudo", "list", "resolved", "hypothetical", "other", "no", "termination", "line",
                      "none", "section", "hedge", "historical", "inflection"):
        assert construct in constructs
    assert {r["status"] for r in rows} == set(STATUSES)


@pytest.mark.parametrize("row", ROWS)
def test_spine_sentence(row: dict[str, str]) -> None:
    sentence = row["sentence"].replace("\\n", "\n")
    start, end = _span(sentence, row["finding"])
    found = read_mention(sentence, start, end)
    assert found.status == row["status"], found.explain()
    if row["trigger"]:
        assert found.trigger is not None, found.explain()
        assert _same(found.trigger.text, row["trigger"]), found.explain()
        assert sentence[found.trigger.start : found.trigger.end] == found.trigger.text
    if row["elsewhere"]:
        assert (found.elsewhere is not None) == (row["elsewhere"] == "yes"), found.explain()


# --- the Assertion's fields ---


def test_a_pseudo_trigger_is_quoted_with_its_scope() -> None:
    text = "No change in the L1 marrow edema."
    start = text.index("edema")
    found = read_mention(text, start, start + 5)
    assert found.status == "affirmed" and found.mention == "edema"
    assert found.decided_by == "trigger" and found.category == "pseudo"
    assert (found.trigger.start, found.trigger.end) == (0, len("No change in"))
    assert found.scope is not None and found.scope[0] <= start and found.scope[1] >= start + 5
    assert found.explain() == "'No change in the L1 marrow edema': pseudo-trigger 'No change in' → affirmed"
    assert found.evidence == "present"


def test_a_negated_list_scope_runs_to_the_last_item() -> None:
    text = "No evidence of fracture, cord compression, epidural abscess, or discitis. Edema at T12."
    found = read_mention(text, text.index("discitis"), text.index("discitis") + 8)
    assert found.status == "negated" and found.evidence == "absent"
    assert text[found.scope[0] : found.scope[1]].strip() == "fracture, cord compression, epidural abscess, or discitis."
    assert found.trigger.rule.family == "NegEx pre-negations" and "NegEx" in found.trigger.cite
    assert found.sentence == (0, text.index(" Edema") )


def test_a_termination_word_ends_the_scope() -> None:
    text = "No fracture but marrow edema at T12."
    negated = read_mention(text, 3, 11)
    assert negated.status == "negated"
    assert text[negated.scope[0] : negated.scope[1]].strip() == "fracture"
    affirmed = read_mention(text, text.index("marrow"), text.index("marrow") + 12)
    assert affirmed.status == "affirmed" and affirmed.trigger is None and affirmed.decided_by == "default"


def test_a_backward_trigger_scope_ends_where_it_starts() -> None:
    text = "Fracture/edema: none."
    found = read_mention(text, 0, 8)
    assert found.trigger.text == ": none" and found.trigger.rule.direction == "backward"
    assert found.scope == (0, text.index(":"))


def test_a_section_decides_and_says_so() -> None:
    text = "INDICATION: r/o discitis\nFINDINGS: Acute T12 fracture with marrow edema."
    found = read_mention(text, text.index("discitis"), text.index("discitis") + 8)
    assert found.status == "hypothetical"
    assert found.section is not None and found.section.kind == "question"
    assert found.section.header == "INDICATION"
    edema = read_mention(text, text.index("marrow"), text.index("marrow") + 12)
    assert edema.section is not None and edema.section.kind == "study" and edema.status == "affirmed"


def test_a_comparison_section_overrides_the_sentence_and_keeps_what_it_said() -> None:
    text = "COMPARISON: MRI 2025-05-01 without marrow edema.\nIMPRESSION: Marrow edema at L1."
    found = read_mention(text, text.index("marrow"), text.index("marrow") + 12)
    assert found.status == "historical" and found.decided_by == "section" and found.category == "section"
    assert found.sentence_status == "negated"
    assert "section COMPARISON (comparison) → historical" in found.explain()


def test_no_other_marks_the_assertion_elsewhere() -> None:
    text = "Intense uptake at T12. No other abnormal uptake."
    second = text.rindex("uptake")
    found = read_mention(text, second, second + 6)
    assert found.status == "negated" and found.elsewhere is not None
    assert found.elsewhere.text == "No other"
    assert found.explain().endswith("; elsewhere: 'No other'")
    first = read_mention(text, text.index("uptake"), text.index("uptake") + 6)
    assert first.status == "affirmed" and first.elsewhere is None


def test_one_reading_answers_every_mention_of_a_text() -> None:
    text = "IMPRESSION: Acute L1 fracture with marrow edema. No retropulsion. Possible discitis at L3-L4."
    reading = TextReading(text)
    spans = [(text.index(w), text.index(w) + len(w)) for w in ("marrow edema", "retropulsion", "discitis")]
    statuses = [a.status for a in reading.read_all(spans)]
    assert statuses == ["affirmed", "negated", "possible"]
    assert statuses == [read_mention(text, s, e).status for s, e in spans]
    assert [t.text for t in reading.triggers() if t.category != "pseudo"] == ["No", "Possible"]
    assert len(reading.sentences) == 4  # the header, then three sentences


def test_scan_reads_every_match_of_a_term_pattern() -> None:
    text = "CLINICAL HISTORY: discitis 2019.\nFINDINGS: No discitis. Mother had discitis."
    pattern = re.compile(r"\bdiscitis\b", re.IGNORECASE)
    assert [a.status for _, a in assertion.scan(pattern, text)] == ["historical", "negated", "other-person"]
    assert list(assertion.scan(pattern, "")) == []


def test_a_scope_reaches_a_bounded_distance_in_an_unpunctuated_text() -> None:
    text = "no " + "word " * 2000 + "edema " + "word " * 2000
    reading = TextReading(text)
    start = text.index("edema")
    assert reading.read(start, start + 5).status == "affirmed"  # 10,000 characters from the "no"
    assert reading.read(3, 7).status == "negated"


def test_read_mention_refuses_a_span_outside_the_text() -> None:
    with pytest.raises(ValueError, match="outside the text"):
        read_mention("No fracture.", 5, 40)


def test_text_is_matched_whatever_its_case_and_apostrophes() -> None:
    for text in ("NO EVIDENCE OF DISCITIS.", "no evidence of discitis.", "The fragment doesn’t reach the CORD."):
        word = "DISCITIS" if "DISCITIS" in text else "discitis" if "discitis" in text else "CORD"
        start = text.index(word)
        assert read_mention(text, start, start + len(word)).status == "negated", text


# --- the trigger file ---


def _data(*families: dict, sections: list | None = None) -> dict:
    return {"version": 1, "sections": sections or [], "families": list(families)}


def _family(**overrides: object) -> dict:
    family = {"family": "test", "category": "negated", "direction": "forward", "cite": "test", "triggers": ["nope"]}
    family.update(overrides)
    return family


def test_the_packaged_file_loads_and_every_family_cites_a_source() -> None:
    triggers = load_triggers()
    assert triggers.count > 500
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert all(f["cite"].strip() for f in data["families"])
    assert all(s["cite"].strip() for s in data["sections"])


@pytest.mark.parametrize(
    ("family", "message"),
    [
        (_family(category="negation"), "family 'test': unknown category 'negation'"),
        (_family(direction="sideways"), "direction must be one of forward, backward, bidirectional"),
        (_family(triggers=[{"regex": "no(t"}]), r"family 'test', trigger #1 \('no\(t'\): bad regex"),
        (_family(triggers=[{"regex": "(no)"}]), "capturing groups are reserved"),
        (_family(triggers=[{"regex": "x?"}]), "matches the empty string"),
        (_family(triggers=[False]), "quote it: YAML reads no/yes/on/off as booleans"),
        (_family(triggers=[{"phrase": "no", "scope": 3}]), "unknown key\\(s\\) scope"),
        (_family(triggers=[{"phrase": "no", "regex": "no"}]), "exactly one of 'phrase' or 'regex'"),
        (_family(triggers=["(no|not"]), "unbalanced or nested"),
        (_family(triggers=["de~ny"]), "'~' marks the end of a verb"),
        (_family(triggers=["2 levels"]), "write '#' for a number"),
        (_family(triggers=[]), "'triggers' must be a non-empty list"),
        (_family(window=-1), "window must be a whole number"),
        (_family(cite=""), "'cite' \\(where the family comes from\\) is required"),
        (_family(of="negated"), "'of' is for pseudo families"),
        (_family(category="termination", direction="forward"), "a termination family has no direction"),
        (_family(elsewhere=True, category="possible"), "'elsewhere: true' is for negated families only"),
        (_family(question=True), "'question: true' is for hypothetical families only"),
        (_family(colour="red"), "unknown key\\(s\\) colour"),
        ({"category": "negated"}, "family #1: 'family' \\(a name\\) is required"),
    ],
)
def test_a_mistake_in_the_trigger_file_names_the_entry(family: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compile_triggers(_data(family), source="triggers.yaml")


def test_a_phrase_with_two_meanings_is_refused() -> None:
    with pytest.raises(ConfigError, match="'nope' is already a negated trigger of family 'first'"):
        compile_triggers(_data(_family(family="first"), _family(family="second", category="possible")))


def test_a_phrase_listed_twice_with_one_meaning_scopes_both_ways() -> None:
    triggers = compile_triggers(_data(_family(family="a"), _family(family="b", direction="backward")))
    assert triggers.by_phrase["nope"].direction == "bidirectional"


def test_a_section_with_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="section #1: unknown kind 'prelude'"):
        compile_triggers(_data(_family(), sections=[{"kind": "prelude", "cite": "x", "headers": ["intro"]}]))


def test_a_broken_trigger_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "triggers.yaml"
    broken.write_text("families:\n  - family: x\n    cite: a: b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"triggers\.yaml: not valid YAML: line 3"):
        load_triggers(broken)
    with pytest.raises(ConfigError, match="cannot read the trigger file"):
        load_triggers(tmp_path / "missing.yaml")


def test_a_custom_trigger_file_changes_what_is_read(tmp_path: Path) -> None:
    path = tmp_path / "triggers.yaml"
    path.write_text(yaml.safe_dump(_data(
        _family(family="custom negations", triggers=["nope~", {"regex": r"\bnix\b"}, "sans (the|a) [bright]"]),
        {"family": "ends", "category": "termination", "cite": "test", "triggers": ["alas"]},
    )), encoding="utf-8")
    triggers = load_triggers(path)
    for text, status in (("Noped edema.", "negated"), ("NIX edema.", "negated"), ("Sans the bright edema.", "negated"),
                         ("Nope alas edema.", "affirmed"), ("No edema.", "affirmed")):
        start = text.index("edema")
        assert TextReading(text, triggers).read(start, start + 5).status == status, text


def test_a_regex_wins_over_a_phrase_of_the_same_length() -> None:
    triggers = compile_triggers(_data(
        _family(family="phrase", category="possible", triggers=["maybe"]),
        _family(family="regex", triggers=[{"regex": r"\bmaybe\b"}]),
    ))
    reading = TextReading("Maybe edema.", triggers)
    assert reading.read(6, 11).status == "negated"


def test_inflections_cover_the_literature_verbs() -> None:
    assert set(inflections("deny")) == {"deny", "denies", "denied", "denying"}
    assert set(inflections("exclude")) == {"exclude", "excludes", "excluded", "excluding"}
    assert set(inflections("see")) == {"see", "sees", "saw", "seen", "seeing"}
    assert set(inflections("impinge")) == {"impinge", "impinges", "impinged", "impinging"}
    assert sorted(expand("[was|were] not (seen|noted)")) == sorted(
        ["not seen", "not noted", "was not seen", "was not noted", "were not seen", "were not noted"])


def test_the_module_reads_the_packaged_triggers() -> None:
    assert assertion.TRIGGERS.source == DEFAULT_PATH.name

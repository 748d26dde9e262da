"""`read_report_text` and `fhir-vcf read-text`: what the mappers take from a text, and why (issue 8)."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from fhir_vcf.cli import main
from fhir_vcf.mappers.report_text import read_report_text

DOC = Path(__file__).resolve().parent.parent / "docs" / "report-language.md"


def _read(value: str, **kw) -> list[tuple[str, str, tuple[str, ...], str, str]]:
    return [(f.fact, f.reading, f.levels, f.assertion.status, f.assertion.mention)
            for f in read_report_text(value, **kw)]


def test_each_finding_with_its_level_assertion_and_reading() -> None:
    found = _read("No change in the L1 marrow edema. Possible discitis at T12-L1. Mother had osteomyelitis.")
    assert found == [
        ("acuity", "marrow edema present", ("L1",), "affirmed", "edema"),
        ("infection", "conflict: a reviewer decides", ("T12", "L1"), "possible", "discitis"),
        ("infection", "no fact", (), "other-person", "osteomyelitis"),
    ]


def test_the_trigger_and_scope_are_given() -> None:
    (finding,) = read_report_text("The L1 marrow edema has resolved.")
    assert (finding.fact, finding.reading, finding.assertion.status) == ("acuity", "no edema or uptake", "resolved")
    assert finding.assertion.trigger is not None and finding.assertion.trigger.text == "has resolved"
    assert finding.scope == "The L1 marrow edema"


def test_an_acute_age_word_is_not_shown_as_edema_seen() -> None:
    # "Acute L1 fracture" on an MRI feeds I3 as acuity (the age word), but names no edema: the
    # reading must say what it was read from, not "marrow edema present".
    acuity = [f for f in read_report_text("Acute L1 fracture.") if f.fact == "acuity"]
    assert [(f.reading, f.levels, f.assertion.mention) for f in acuity] == [
        ("acute (age word, read as marrow edema)", ("L1",), "Acute")]
    (scan,) = [f for f in read_report_text("Acute T12 fracture.", modality="NM") if f.fact == "acuity"]
    assert scan.reading == "acute (age word, read as increased uptake)"


def test_edema_in_a_clinic_note_or_ct_is_no_acuity() -> None:
    (ct,) = read_report_text("Marrow edema at L1 on dual-energy maps.", modality="CT")
    assert ct.reading.endswith("(not MRI / bone scan: no acuity)")


def test_the_exam_words_of_issue_9() -> None:
    found = _read("4/5 hip flexors on the left. Strength otherwise 5/5. No bowel or bladder dysfunction. "
                  "Blood cultures positive; MRSA bacteremia.", modality=None)
    assert [(fact, reading, status) for fact, reading, _, status, _ in found] == [
        ("neurologic_deficit", "present", "affirmed"),
        ("neurologic_deficit", "absent (normal)", "affirmed"),
        ("neurologic_deficit", "absent", "negated"),
        ("infection", "present", "affirmed"),
        ("infection", "present", "affirmed"),
    ]


def _cli(*args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO(stdin)
    try:
        code = main(list(args))
    finally:
        sys.stdout, sys.stderr, sys.stdin = old
    return code, out.getvalue(), err.getvalue()


def test_the_docs_example_prints_what_the_docs_show() -> None:
    doc = DOC.read_text()
    command = re.search(r'\.venv/bin/fhir-vcf read-text "([^"]+)"\n```\n\nprints\n\n```\n(.*?)```', doc, re.DOTALL)
    assert command is not None, "docs/report-language.md: the read-text example"
    code, out, _ = _cli("read-text", command.group(1))
    assert (code, out) == (0, command.group(2))


def test_json_output_and_stdin() -> None:
    report = "INDICATION: back pain, discitis.\nIMPRESSION: No discitis."
    code, out, _ = _cli("read-text", "-", "--format", "json", stdin=report)
    assert code == 0
    items = json.loads(out)
    assert [(i["fact"], i["assertion"], i["decidedBy"], i["section"]) for i in items] == [
        ("infection", "hypothetical", "section", "INDICATION"),
        ("infection", "negated", "trigger", "IMPRESSION"),
    ]
    assert items[1]["trigger"]["text"] == "No" and items[1]["reading"] == "absent"


@pytest.mark.parametrize("args", [("read-text", "   "), ("read-text", "x", "--modality", "XX")])
def test_bad_input_is_a_clear_error(args: tuple[str, ...]) -> None:
    code, out, err = _cli(*args)
    assert code == 2 and out == "" and err.strip()


def test_a_text_with_nothing_to_read_says_so() -> None:
    code, out, _ = _cli("read-text", "Mild degenerative disc disease.")
    assert code == 0 and out.startswith("no finding the mappers read")


@pytest.mark.parametrize("sentence", ["No evidence of fracture at L2.", "Rule out pathologic fracture at T10."])
def test_a_fracture_not_affirmed_is_no_finding_and_the_message_does_not_deny_the_word(sentence: str) -> None:
    # Input profile, "Reading report text": only an affirmed mention is a current fact; a denied or
    # asked-about fracture shows no level as fractured. The message must not claim the text has no
    # fracture word (it has one), but say why nothing was taken.
    code, out, _ = _cli("read-text", sentence)
    assert code == 0 and out.startswith("no finding the mappers read")
    assert "no edema, fracture" not in out and "a fracture only when the text affirms it" in out


# Issue 9: infection and neurologic deficits as notes write them (input profile, rows "infection" and
# "myelopathy / cord / neuro"); what the exclusions mapper makes of each, written from the profile.
EXAM_WORDS = [
    ("Strength: 4/5 in the left hip flexors.", "neurologic_deficit", "present"),
    ("4+/5 right EHL and ankle dorsiflexion.", "neurologic_deficit", "present"),
    ("RLE 4/5 throughout.", "neurologic_deficit", "present"),
    ("Hip flexion 3/5 on the right.", "neurologic_deficit", "present"),
    ("Left quadriceps weakness.", "neurologic_deficit", "present"),
    ("Weak left dorsiflexors.", "neurologic_deficit", "present"),
    ("Paraparesis since yesterday.", "neurologic_deficit", "present"),
    ("Sensory level at T10.", "neurologic_deficit", "present"),
    ("Saddle anesthesia on exam.", "neurologic_deficit", "present"),
    ("Hyperreflexia and sustained clonus at the ankles.", "neurologic_deficit", "present"),
    ("Reflexes diminished at the ankles.", "neurologic_deficit", "present"),
    ("Decreased rectal tone.", "neurologic_deficit", "present"),
    ("Urinary retention requiring a catheter.", "neurologic_deficit", "present"),
    ("Motor strength 5/5 in all extremities.", "neurologic_deficit", "absent (normal)"),
    ("Motor: 5/5 bilateral LE.", "neurologic_deficit", "absent (normal)"),
    ("Sensation intact to light touch.", "neurologic_deficit", "absent (normal)"),
    ("Denies numbness or weakness of the legs.", "neurologic_deficit", "absent"),
    ("No bowel or bladder incontinence.", "neurologic_deficit", "absent"),
    ("Possible left foot drop.", "neurologic_deficit", "conflict: a reviewer decides"),
    ("Return if leg weakness develops.", "neurologic_deficit", "no fact"),
    ("Clinical sepsis.", "infection", "present"),
    ("Patient appears septic.", "infection", "present"),
    ("Known MRSA bacteremia.", "infection", "present"),
    ("Blood cultures positive for S. aureus.", "infection", "present"),
    ("Superficial surgical site infection of the laminectomy incision.", "infection", "present"),
    ("Postoperative wound infection.", "infection", "present"),
    ("No signs of sepsis.", "infection", "absent"),
    ("Bacteremia has resolved.", "infection", "absent"),
    ("History of urosepsis in 2019.", "infection", "conflict: a reviewer decides"),
    ("r/o sepsis", "infection", "no fact"),
]


@pytest.mark.parametrize(("words", "fact", "reading"), EXAM_WORDS, ids=[w for w, _, _ in EXAM_WORDS])
def test_exam_and_infection_words(words: str, fact: str, reading: str) -> None:
    found = [(f.fact, f.reading) for f in read_report_text(words, modality=None)]
    assert found and set(found) == {(fact, reading)}


@pytest.mark.parametrize("words", ["Aseptic loosening of the hip prosthesis.", "Pain 4/5 with walking.",
                                   "Legs 5/5.", "Sepsis protocol education given to the family.",
                                   "Nurse reviewed the sepsis bundle order set.", "Sepsis pathway not activated."])
def test_words_that_are_no_exclusion(words: str) -> None:
    assert [(f.fact, f.reading) for f in read_report_text(words, modality=None)
            if f.reading == "present"] == []

"""Imaging facts: acuity per level, height loss, progression, retropulsion and the other morphology."""

from __future__ import annotations

from datetime import date

import pytest
from fhir_builders import (
    coding,
    condition,
    diagnostic_report,
    finding,
    imaging_study,
    observation,
    record,
    series_,
    vertebra,
    vertebra_coding,
)

from fhir_vcf.facts import FractureFacts, Method, Status
from fhir_vcf.mappers import assertion, imaging_text, map_record
from fhir_vcf.mappers.imaging_signals import ImagingScan, SignalSource
from fhir_vcf.mappers.imaging_text import analyze_text

AS_OF = date(2025, 6, 30)
M80 = coding("icd", "M80.08XA")


def fracture(cid: str = "vcf", level: str = "T12", onset: str = "2025-06-02") -> dict:
    return condition(cid, M80, onset=onset, body_sites=[vertebra(level)])


def facts(*resources) -> FractureFacts:
    return map_record(record(*resources), as_of=AS_OF)


def mri(sid: str = "mri", day: str = "2025-06-05", level: str | None = "T12") -> dict:
    site = vertebra_coding(level) if level else None
    return imaging_study(sid, "MR", day, series=[series_("MR", body_site=site, description="SAG STIR")])


# ---------------------------------------------------------------- acuity


def test_edema_by_finding_code():
    f = facts(fracture(), mri(), finding("e", "marrow-edema", True, level="T12", study="ImagingStudy/mri"))
    fact = f.acuity["T12"]
    assert fact.status is Status.PRESENT and fact.value == "marrow-edema"
    assert fact.evidence[0].method is Method.CODE and fact.references == ["Observation/e"]


def test_no_edema_by_finding_code():
    f = facts(fracture(), mri(), finding("e", "marrow-edema", False, level="T12", study="ImagingStudy/mri"))
    assert f.acuity["T12"].status is Status.ABSENT and f.acuity["T12"].value == "no-edema"


def test_increased_uptake_on_bone_scan_finding():
    f = facts(fracture(), imaging_study("nm", "NM", "2025-06-05"),
              finding("u", "increased-uptake", True, level="T12", study="ImagingStudy/nm"))
    assert f.acuity["T12"].status is Status.PRESENT and f.acuity["T12"].value == "increased-uptake"


def test_edema_by_report_text():
    f = facts(
        fracture(),
        mri(),
        diagnostic_report("r", text="MRI thoracic spine", effective="2025-06-05", studies=["ImagingStudy/mri"],
                          conclusion="Acute T12 compression fracture with STIR hyperintense marrow oedema."),
    )
    fact = f.acuity["T12"]
    assert fact.status is Status.PRESENT and fact.value == "marrow-edema"
    assert all(e.method is Method.TEXT for e in fact.evidence)


def test_bone_scan_report_by_loinc_code():
    f = facts(
        fracture(),
        diagnostic_report("r", coding("loinc", "39879-2"), effective="2025-06-05",
                          conclusion="Intense increased radiotracer uptake at T12."),
    )
    assert f.acuity["T12"].value == "increased-uptake"


@pytest.mark.parametrize(
    "conclusion",
    [
        "T12 compression fracture without marrow edema.",
        "No marrow edema at T12.",
        "Chronic T12 compression deformity.",
        "Healed sclerotic T12 fracture.",
        "T12 wedge compression. No edema.",
    ],
)
def test_no_edema_or_old_on_mri_text(conclusion):
    f = facts(fracture(), mri(),
              diagnostic_report("r", text="MRI spine", effective="2025-06-05", conclusion=conclusion,
                                studies=["ImagingStudy/mri"]))
    assert f.acuity["T12"].status is Status.ABSENT
    assert f.acuity["T12"].value == "no-edema"


def test_mri_report_describing_fracture_silent_on_edema_leaves_acuity_unknown():
    # Input profile, "I3 and silence": only an explicit statement (no edema, chronic, healed) makes I3
    # not met; a report that names the level and says nothing of edema leaves it unknown.
    f = facts(fracture(), mri(),
              diagnostic_report("r", text="MRI spine", effective="2025-06-05", studies=["ImagingStudy/mri"],
                                conclusion="T12 compression fracture with 30% height loss."))
    assert f.acuity["T12"].status is Status.UNKNOWN
    assert "states neither edema nor uptake" in f.acuity["T12"].note
    assert f.acuity["T12"].references == ["DiagnosticReport/r"]


def test_radiograph_only():
    f = facts(
        fracture(),
        imaging_study("xr", "DX", "2025-06-03"),
        diagnostic_report("r", text="XR thoracic spine", effective="2025-06-03", studies=["ImagingStudy/xr"],
                          conclusion="Acute-appearing T12 compression fracture."),
    )
    fact = f.acuity["T12"]
    assert fact.status is Status.UNKNOWN and fact.value == "radiograph-only"
    assert "DiagnosticReport/r" in fact.references


def test_ct_calling_the_fracture_chronic_is_still_radiograph_only():
    f = facts(fracture(), imaging_study("ct", "CT", "2025-06-03"),
              diagnostic_report("r", text="CT spine", effective="2025-06-03", studies=["ImagingStudy/ct"],
                                conclusion="Chronic T12 compression fracture."))
    assert f.acuity["T12"].value == "radiograph-only"
    assert "chronic" in f.acuity["T12"].note.lower()


def test_no_imaging_is_unknown_none():
    f = facts(fracture())
    assert f.acuity["T12"].status is Status.UNKNOWN and f.acuity["T12"].value is None


def test_mri_without_report_is_unknown():
    f = facts(fracture(), mri())
    assert f.acuity["T12"].status is Status.UNKNOWN and f.acuity["T12"].value is None
    assert "without a report" in f.acuity["T12"].note


def test_conflicting_mri_at_the_same_level():
    f = facts(
        fracture(),
        mri("mri-1", "2025-06-05"),
        finding("e1", "marrow-edema", True, level="T12", study="ImagingStudy/mri-1"),
        mri("mri-2", "2025-06-20"),
        diagnostic_report("r2", text="MRI", effective="2025-06-20", studies=["ImagingStudy/mri-2"],
                          conclusion="No marrow edema at T12."),
    )
    fact = f.acuity["T12"]
    assert fact.status is Status.CONFLICT
    assert set(fact.references) == {"Observation/e1", "DiagnosticReport/r2"}


def test_per_level_attribution_in_one_report():
    f = facts(
        fracture("a", "T12"),
        fracture("b", "L1"),
        diagnostic_report("r", text="MRI spine", effective="2025-06-05",
                          conclusion="Acute T12 compression fracture with marrow edema, chronic L1 compression "
                                     "deformity without edema. Other levels without edema."),
    )
    assert f.acuity["T12"].status is Status.PRESENT
    assert f.acuity["L1"].status is Status.ABSENT


def test_finding_without_level_goes_to_the_single_fracture_level():
    f = facts(fracture(), mri(level=None), finding("e", "marrow-edema", True, study="ImagingStudy/mri"))
    assert f.acuity["T12"].status is Status.PRESENT
    assert f.acuity_unassigned == ()


def test_finding_without_level_stays_unassigned_with_two_levels():
    f = facts(fracture("a", "T12"), fracture("b", "L1"), mri(level=None),
              finding("e", "marrow-edema", True, study="ImagingStudy/mri"))
    assert f.acuity["T12"].status is Status.UNKNOWN and f.acuity["L1"].status is Status.UNKNOWN
    (unassigned,) = f.acuity_unassigned
    assert unassigned.status is Status.PRESENT and unassigned.references == ["Observation/e"]


def test_snomed_edema_observation_with_vertebra():
    f = facts(fracture(), observation("o", coding("snomed", "79654002", "Edema"), effective="2025-06-05",
                                      value=True, body_site=vertebra("T12")))
    assert f.acuity["T12"].status is Status.PRESENT


def test_report_text_in_presented_form():
    f = facts(fracture(), diagnostic_report("r", text="MRI lumbar spine", effective="2025-06-05",
                                            presented_text="IMPRESSION: T12 fracture with bone marrow edema."))
    assert f.acuity["T12"].status is Status.PRESENT


def test_soft_tissue_edema_is_not_marrow_edema():
    f = facts(fracture(), mri(), diagnostic_report("r", text="MRI", effective="2025-06-05",
                                                   studies=["ImagingStudy/mri"],
                                                   conclusion="T12 fracture. Paraspinal soft tissue edema."))
    assert f.acuity["T12"].status is Status.UNKNOWN  # described fracture, silent on marrow edema


# ---------------------------------------------------------------- height loss, progression


@pytest.mark.parametrize(
    ("modality", "conclusion", "status", "value"),
    [
        # MRI fluid-sensitive signal written with punctuation or as "increased ... signal".
        ("MR", "STIR: hyperintense T12 vertebral body.", Status.PRESENT, "marrow-edema"),
        ("MR", "Increased T2/STIR signal in T12.", Status.PRESENT, "marrow-edema"),
        ("MR", "Increased STIR signal within the T12 vertebral body.", Status.PRESENT, "marrow-edema"),
        # Bone scan uptake without the word "increased", or a sentence whose only cue is "increased activity".
        ("NM", "Focal increased activity at the T12 vertebral body.", Status.PRESENT, "increased-uptake"),
        ("NM", "Intense tracer uptake at T12.", Status.PRESENT, "increased-uptake"),
        ("NM", "Marked uptake at T12 in keeping with a recent fracture.", Status.PRESENT, "increased-uptake"),
        ("NM", "T12 shows no abnormal uptake.", Status.ABSENT, "no-edema"),
        # Radiologists' shorthand: "bright on STIR", "STIR-bright", "BME" (bone marrow edema).
        ("MR", "T12 VB bright on STIR, new since prior.", Status.PRESENT, "marrow-edema"),
        ("MR", "STIR-bright T12 vertebral body.", Status.PRESENT, "marrow-edema"),
        ("MR", "Fx T12 w/ BME.", Status.PRESENT, "marrow-edema"),
        ("MR", "Fx T12 w/o BME.", Status.ABSENT, "no-edema"),
    ],
)
def test_acuity_wordings(modality, conclusion, status, value):
    f = facts(fracture(), imaging_study("s", modality, "2025-06-05"),
              diagnostic_report("r", text="report", effective="2025-06-05", studies=["ImagingStudy/s"],
                                conclusion=conclusion))
    assert (f.acuity["T12"].status, f.acuity["T12"].value) == (status, value)


@pytest.mark.parametrize(
    "conclusion",
    [
        # CT reports say what CT cannot show; neither sentence is MRI edema (clinical rules I3: CT alone
        # shows the fracture, not its acuity).
        "T12 compression fx. Cannot assess marrow edema on CT; MRI recommended.",
        "T12 compression fx, possibly acute; marrow edema cannot be assessed.",
        "T12 compression fx with suggestion of marrow edema on dual-energy maps.",
    ],
)
def test_ct_report_words_about_edema_are_not_mri_acuity(conclusion):
    ct = imaging_study("ct", "CT", "2025-06-05", series=[series_("CT", body_site=vertebra_coding("T12"))])
    report = diagnostic_report("r", coding("loinc", "24966-4", "CT Thoracic and Lumbar spine"), effective="2025-06-05",
                               studies=["ImagingStudy/ct"], conclusion=conclusion)
    f = facts(fracture(), ct, report)
    assert (f.acuity["T12"].status, f.acuity["T12"].value) == (Status.UNKNOWN, "radiograph-only")


@pytest.mark.parametrize(
    "conclusion",
    [
        "Marrow edema cannot be assessed due to motion; T12 compression fx.",
        "Unable to evaluate for marrow edema at T12 (no STIR).",
    ],
)
def test_mri_that_cannot_assess_edema_does_not_show_it(conclusion):
    report = diagnostic_report("r", text="MRI", effective="2025-06-05", studies=["ImagingStudy/mri"],
                               conclusion=conclusion)
    f = facts(fracture(), mri(), report)
    assert f.acuity["T12"].status is not Status.PRESENT


@pytest.mark.parametrize(
    "old_reading",
    ["Normal vertebral body heights. No fracture. No marrow edema.", "T12 normal; chronic changes elsewhere."],
)
def test_mri_from_years_before_the_onset_does_not_speak_for_the_new_fracture(old_reading):
    """A 2019 spine MRI without edema cannot contradict the edema of a fracture that began in 2025."""
    old = mri("old", day="2019-11-04")
    new = mri("new", day="2025-06-05")
    f = facts(
        fracture(),
        old, diagnostic_report("r-old", text="MRI spine", effective="2019-11-04", studies=["ImagingStudy/old"],
                               conclusion=old_reading),
        new, diagnostic_report("r-new", text="MRI spine", effective="2025-06-05", studies=["ImagingStudy/new"],
                               conclusion="Acute T12 compression fracture with marrow edema."),
    )
    assert (f.acuity["T12"].status, f.acuity["T12"].value) == (Status.PRESENT, "marrow-edema")


def test_mri_without_edema_after_the_onset_still_contradicts():
    f = facts(
        fracture(),
        mri("a", day="2025-06-05"), diagnostic_report("ra", text="MRI", effective="2025-06-05",
                                                      studies=["ImagingStudy/a"], conclusion="T12 marrow edema."),
        mri("b", day="2025-06-20"), diagnostic_report("rb", text="MRI", effective="2025-06-20",
                                                      studies=["ImagingStudy/b"], conclusion="T12: no marrow edema."),
    )
    assert f.acuity["T12"].status is Status.CONFLICT


def test_parenthesised_per_level_findings_stay_with_their_level():
    """Commas inside parentheses do not split the sentence: "(chronic, sclerotic)" belongs to L1."""
    two = condition("vcf", M80, text="compression fractures T12 and L1", onset="2025-06-02")
    f = facts(two, mri(level=None), diagnostic_report(
        "r", text="MRI", effective="2025-06-05", studies=["ImagingStudy/mri"],
        conclusion="Compression fractures of T12 (acute, marrow edema) and L1 (chronic, sclerotic, no edema)."))
    assert f.acuity["T12"].status is Status.PRESENT
    assert f.acuity["L1"].status is Status.ABSENT


@pytest.mark.parametrize(("value", "expected"), [(25, 25.0), (26, 26.0), (25.5, 25.5)])
def test_height_loss_finding(value, expected):
    f = facts(fracture(), finding("h", "height-loss-percent", value, level="T12", unit="%"))
    assert f.height_loss["T12"].status is Status.PRESENT and f.height_loss["T12"].value == expected


def test_largest_height_loss_wins():
    f = facts(
        fracture(),
        finding("h", "height-loss-percent", 22, level="T12", unit="%"),
        diagnostic_report("r", text="XR", effective="2025-06-05", conclusion="T12 with 35% height loss."),
    )
    assert f.height_loss["T12"].value == 35.0
    assert len(f.height_loss["T12"].evidence) == 2


@pytest.mark.parametrize(
    ("conclusion", "value", "note"),
    [
        ("Moderate compression fracture of T12.", 26.0, "Genant moderate (25–40 %)"),
        ("Severe wedge deformity T12.", 41.0, "Genant severe (> 40 %)"),
        ("Mild height loss at T12.", 20.0, "Genant mild (20–25 %)"),
        ("T12 fracture, Genant grade 2.", 26.0, "Genant moderate (25–40 %)"),
    ],
)
def test_genant_words(conclusion, value, note):
    f = facts(fracture(), diagnostic_report("r", text="XR spine", effective="2025-06-05", conclusion=conclusion))
    assert f.height_loss["T12"].value == value
    assert f.height_loss["T12"].note == note


def test_severe_pain_is_not_a_genant_grade():
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-05",
                                            conclusion="Severe back pain from T12 fracture."))
    assert f.height_loss["T12"].status is Status.UNKNOWN


@pytest.mark.parametrize(
    ("conclusion", "heights"),
    [
        # A level and its percentage in one comma part, the height-loss words elsewhere in the sentence.
        ("T12 30%, L1 20% height loss.", {"T12": 30.0, "L1": 20.0}),
        ("Height loss: T12 30%, L1 20%.", {"T12": 30.0, "L1": 20.0}),
        ("T12 compression fracture with 30% height loss and L1 with 20%.", {"T12": 30.0, "L1": 20.0}),
        ("T12 and L1 compression fractures with 30% and 20% height loss respectively.", {"T12": 30.0, "L1": 20.0}),
        # One percentage for a list of levels is read for each; several without "respectively" are
        # ambiguous and give none (never a number the text does not tie to the level).
        ("T12 and L1 compression fractures with 30% height loss.", {"T12": 30.0, "L1": 30.0}),
        ("T12 and L1 compression fractures with 30% and 20% height loss.", {}),
    ],
)
def test_height_loss_per_level_in_one_sentence(conclusion, heights):
    two = condition("vcf", M80, text="compression fractures T12 and L1", onset="2025-06-02")
    f = facts(two, diagnostic_report("r", text="XR", effective="2025-06-05", conclusion=conclusion))
    found = {lv: fact.value for lv, fact in f.height_loss.items() if fact.status is Status.PRESENT}
    assert found == heights


@pytest.mark.parametrize(
    "conclusion",
    [
        "Height loss at T12 has increased from 25% to 40%.",
        "T12 now 40% height loss (previously 25%).",
        "T12: 40% height loss, increased from 25% on the prior study.",
        "T12 compression has worsened since the prior study.",
        "Worsening T12 compression deformity.",
        "Increased T12 compression compared with 06/05.",
    ],
)
def test_progression_in_words_and_numbers_of_one_report(conclusion):
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-20", conclusion=conclusion))
    assert f.progression.status is Status.PRESENT


@pytest.mark.parametrize(
    "conclusion",
    ["Height loss at T12 decreased from 40% to 25% after kyphoplasty.", "Increased cord compression at T12.",
     "Worsening back pain at T12 level."],
)
def test_not_progression_of_the_collapse(conclusion):
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-20", conclusion=conclusion))
    assert f.progression.status is not Status.PRESENT


def test_progression_from_two_measurements():
    f = facts(
        fracture(),
        finding("h1", "height-loss-percent", 20, level="T12", effective="2025-06-03", unit="%"),
        finding("h2", "height-loss-percent", 35, level="T12", effective="2025-06-24", unit="%"),
    )
    assert f.progression.status is Status.PRESENT
    assert set(f.progression.references) == {"Observation/h1", "Observation/h2"}
    assert f.height_loss["T12"].value == 35.0


def test_no_progression_when_later_measurement_smaller_or_single():
    f = facts(
        fracture(),
        finding("h1", "height-loss-percent", 35, level="T12", effective="2025-06-03", unit="%"),
        finding("h2", "height-loss-percent", 30, level="T12", effective="2025-06-24", unit="%"),
    )
    assert f.progression.status is Status.UNKNOWN


def test_progression_finding_and_text():
    f = facts(fracture(), finding("p", "height-loss-progression", True, level="T12"))
    assert f.progression.status is Status.PRESENT
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-20",
                                            conclusion="Interval progression of T12 height loss."))
    assert f.progression.status is Status.PRESENT
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-20",
                                            conclusion="Further collapse of T12."))
    assert f.progression.status is Status.PRESENT
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-20",
                                            conclusion="Stable T12 compression deformity, no interval change."))
    assert f.progression.status is Status.ABSENT


@pytest.mark.parametrize(
    ("conclusion", "status"),
    [
        # Telegraphic report style, no verb: still a statement that the height did not change.
        ("Acute T12 compression fracture. Height unchanged compared with the radiograph of 2025-06-03.", Status.ABSENT),
        ("T12 vertebral body height unchanged.", Status.ABSENT),
        ("T12 compression deformity unchanged since May.", Status.ABSENT),
        ("T12 fracture stable.", Status.ABSENT),
        # Something else is unchanged: silent on progression.
        ("Acute T12 compression fracture with alignment unchanged.", Status.UNKNOWN),
    ],
)
def test_no_progression_in_telegraphic_wording(conclusion, status):
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-20", conclusion=conclusion))
    assert f.progression.status is status


# ---------------------------------------------------------------- retropulsion, plana, cleft, lines


@pytest.mark.parametrize(
    ("conclusion", "status"),
    [
        ("T12 burst fracture with retropulsed fragment.", Status.PRESENT),
        ("Canal compromise at L1.", Status.PRESENT),
        ("Posterior wall involvement at T12.", Status.PRESENT),
        ("T12 fracture without retropulsion.", Status.ABSENT),
        ("No retropulsion. Posterior wall intact.", Status.ABSENT),
        ("T12 compression fracture.", Status.ABSENT),
    ],
)
def test_retropulsion_text(conclusion, status):
    f = facts(fracture(), diagnostic_report("r", text="CT", effective="2025-06-05", conclusion=conclusion))
    assert f.retropulsion.status is status


def test_retropulsion_findings_and_conflict():
    f = facts(fracture(), finding("rp", "canal-compromise", True, level="T12"))
    assert f.retropulsion.status is Status.PRESENT
    f = facts(fracture(), finding("rp", "retropulsion", True, level="T12"),
              diagnostic_report("r", text="MRI", effective="2025-06-05", conclusion="No retropulsion."))
    assert f.retropulsion.status is Status.CONFLICT


def test_vertebra_plana_and_cleft():
    f = facts(fracture(), finding("vp", "vertebra-plana", True, level="T12"),
              diagnostic_report("r", text="CT", effective="2025-06-05",
                                conclusion="Intravertebral vacuum cleft at T12."))
    assert f.vertebra_plana.status is Status.PRESENT
    assert f.intravertebral_cleft.status is Status.PRESENT
    f = facts(fracture())
    assert f.vertebra_plana.status is Status.ABSENT and f.intravertebral_cleft.status is Status.ABSENT


def test_imaging_lines():
    f = facts(fracture(), mri(), diagnostic_report("r", text="MRI thoracic spine", effective="2025-06-06",
                                                  studies=["ImagingStudy/mri"], conclusion="T12 marrow edema."))
    assert f.imaging[0] == "MR 2025-06-05 (ImagingStudy/mri), T12, STIR"
    assert f.imaging[1].startswith("MR report 2025-06-06 (DiagnosticReport/r): T12 marrow edema")


def test_imaging_after_as_of_is_ignored():
    f = facts(fracture(), mri("late", "2025-07-05"),
              finding("e", "marrow-edema", True, level="T12", study="ImagingStudy/late", effective="2025-07-05"))
    assert f.acuity["T12"].status is Status.UNKNOWN
    assert f.imaging == ()


# ---------------------------------------------------------------- words that must not count


@pytest.mark.parametrize(
    "conclusion",
    [
        "Possible marrow edema at T12.",
        "T12 fracture, cannot rule out marrow edema.",
    ],
)
def test_hedged_edema_is_not_evidence(conclusion):
    f = facts(fracture(), diagnostic_report("r", text="XR", effective="2025-06-05", conclusion=conclusion))
    assert f.acuity["T12"].status is Status.UNKNOWN  # an X-ray that hedges about edema shows no acuity


def test_pedal_edema_and_avid_node_in_a_clinic_report_are_not_acuity():
    f = facts(fracture(), diagnostic_report("r", text="Clinic summary", effective="2025-06-05",
                                            conclusion="Bilateral pedal edema. FDG-avid mediastinal node."))
    assert f.acuity["T12"].status is Status.UNKNOWN and f.acuity["T12"].value is None


def test_unleveled_edema_sentence_keeps_levels_from_reading_as_no_edema():
    f = facts(
        fracture("a", "T12"),
        fracture("b", "L1"),
        diagnostic_report("r", text="MRI spine", effective="2025-06-05",
                          conclusion="T12 and L1 compression fractures. Marrow edema is present."),
    )
    assert f.acuity["T12"].status is Status.UNKNOWN and f.acuity["L1"].status is Status.UNKNOWN
    assert len(f.acuity_unassigned) == 1 and f.acuity_unassigned[0].status is Status.PRESENT


def test_clinic_note_fracture_before_onset_is_not_a_radiograph():
    f = facts(fracture(onset="2025-06-01"),
              diagnostic_report("note", text="Clinic summary", effective="2025-01-01",
                                conclusion="History of T12 fracture."))
    assert f.onset["T12"].status is Status.PRESENT


def test_nearest_level_mention_within_one_clause():
    f = facts(
        fracture("a", "T12"),
        fracture("b", "L1"),
        diagnostic_report("r", text="MRI spine", effective="2025-06-05",
                          conclusion="T12 fracture with marrow edema and L1 fracture without edema. "
                                     "T12 with 35% height loss and L1 with 20% height loss."),
    )
    assert f.acuity["T12"].status is Status.PRESENT
    assert f.acuity["L1"].status is Status.ABSENT
    assert (f.height_loss["T12"].value, f.height_loss["L1"].value) == (35.0, 20.0)


def test_a_level_list_shares_the_finding():
    f = facts(
        fracture("a", "T12"),
        fracture("b", "L1"),
        diagnostic_report("r", text="MRI spine", effective="2025-06-05",
                          conclusion="Compression fractures of T12 and L1 with marrow edema."),
    )
    assert f.acuity["T12"].status is Status.PRESENT and f.acuity["L1"].status is Status.PRESENT


def test_no_other_fracture_sentence_does_not_touch_the_level():
    conclusion = "Acute T12 fracture with edema. No other acute fracture."
    f = facts(fracture(), mri(), diagnostic_report("r", text="MRI", effective="2025-06-05",
                                                   studies=["ImagingStudy/mri"], conclusion=conclusion))
    # One evidence line: the sentence that affirms edema (its "acute" and "edema" are one statement);
    # the "no other" sentence is not about T12.
    assert f.acuity["T12"].status is Status.PRESENT
    assert [e.found for e in f.acuity["T12"].evidence] == ["'Acute T12 fracture with edema'"]


def test_stable_burst_fracture_is_not_a_statement_about_progression():
    f = facts(fracture(), diagnostic_report("r", text="CT", effective="2025-06-05",
                                            conclusion="Stable burst fracture of T12."))
    assert f.progression.status is Status.UNKNOWN


def test_height_in_millimetres_is_not_a_percentage():
    f = facts(fracture(), finding("h", "height-loss-percent", 8, level="T12", unit="mm"))
    assert f.height_loss["T12"].status is Status.UNKNOWN


def test_mri_study_description_alone_is_not_a_reading():
    f = facts(fracture(), imaging_study("mri", "MR", "2025-06-05", description="MRI for T12 compression fracture",
                                        series=[series_("MR", body_site=vertebra_coding("T12"))]))
    assert f.acuity["T12"].status is Status.UNKNOWN and "without a report" in f.acuity["T12"].note


def test_degenerative_canal_compromise_is_not_retropulsion():
    f = facts(fracture(), diagnostic_report("r", text="MRI", effective="2025-06-05",
                                            conclusion="T12 fracture. Disc bulge at L4-5 with canal compromise."))
    assert f.retropulsion.status is Status.ABSENT


def test_series_descriptions_naming_mri_sequences_give_no_level():
    """"SAG T2" is a sequence, not the T2 vertebra: it must not become the study's level (nor, through
    it, the level of a report that names none, nor of a fracture Condition that names none)."""
    study = imaging_study("mri", "MR", "2025-06-05", series=[series_("MR", description="SAG T2 FS")])
    f = facts(condition("vcf", M80, onset="2025-06-02"), study,
              diagnostic_report("r", text="MRI", effective="2025-06-05", studies=["ImagingStudy/mri"],
                                conclusion="Acute compression fracture with marrow edema."))
    assert f.fracture_levels == []
    assert "T2" not in f.acuity


def test_a_text_whose_cue_words_find_no_mention_is_read_without_an_assertion_reading() -> None:
    # The assertion reading (sentences, sections, triggers) is made only when a mention is read.
    source = SignalSource("DiagnosticReport/r", date(2025, 6, 5), "MR", ())
    assertion.reading.cache_clear()
    imaging_text._READINGS.clear()  # read afresh, not from the remembered readings
    scan = ImagingScan()
    analyze_text(scan, source, "conclusion", "Moderate medial compartment joint space narrowing. SAG STIR")
    assert scan.signals == [] and assertion.reading.cache_info().misses == 0
    analyze_text(scan, source, "conclusion", "Acute L1 fracture with marrow edema.")
    assert scan.signals and assertion.reading.cache_info().misses == 1


@pytest.mark.parametrize(("kind", "category", "line"), [
    ("Spine report", "MRI", "MR report"),  # the category's words when the kind's name no modality
    ("CT lumbar spine", "MRI", "CT report"),  # the kind's words first
    ("Spine report", "Radiology", "imaging report"),
])
def test_report_modality_from_its_kind_then_its_category(kind: str, category: str, line: str) -> None:
    report = diagnostic_report("r", text=kind, category=category, effective="2025-06-05",
                               studies=["ImagingStudy/none"], conclusion="T12 compression fracture.")
    f = facts(fracture(), report)
    assert f.imaging == (f"{line} 2025-06-05 (DiagnosticReport/r): T12 compression fracture.",)

"""Fracture Conditions: kind, levels, 7th character, onset (and its conflicts), etiology context."""

from __future__ import annotations

from datetime import date

import pytest
from fhir_builders import (
    coding,
    concept,
    condition,
    diagnostic_report,
    finding,
    imaging_study,
    patient,
    record,
    series_,
    service_request,
    vertebra,
)

from fhir_vcf.clinical_time import DayRange
from fhir_vcf.facts import FractureFacts, Method, Status
from fhir_vcf.mappers import map_record
from fhir_vcf.mappers.fractures import parse_onset_string

AS_OF = date(2025, 6, 30)


def facts(*resources, request: str | None = None, as_of: date = AS_OF) -> FractureFacts:
    return map_record(record(*resources), as_of=as_of, request=request)


M80 = coding("icd", "M80.08XA", "Age-related osteoporosis w current pathological fracture, vertebra(e), init")


# ---------------------------------------------------------------- which Conditions are fractures


def test_coded_osteoporotic_fracture_with_body_site():
    f = facts(condition("vcf-1", M80, onset="2025-06-02", body_sites=[vertebra("T12")]))
    (fracture,) = f.fractures
    assert fracture.reference == "Condition/vcf-1"
    assert fracture.kind == "osteoporotic"
    assert fracture.levels == ("T12",)
    assert fracture.seventh == "A"
    assert fracture.method is Method.CODE
    assert fracture.onset == DayRange.day(date(2025, 6, 2)) and fracture.onset_element == "onsetDateTime"
    assert f.onset["T12"].status is Status.PRESENT and f.onset["T12"].value == DayRange.day(date(2025, 6, 2))
    assert f.osteoporosis.status is Status.PRESENT  # implied by M80.-


@pytest.mark.parametrize(
    ("code", "kind", "seventh"),
    [
        (coding("icd", "M80.88XS"), "osteoporotic", "S"),
        (coding("icd", "M84.58XA"), "pathologic", "A"),
        (coding("icd", "M48.56XA"), "collapsed-nec", "A"),
        (coding("icd", "S32.010A"), "traumatic", "A"),
        (coding("icd", "m8008xd"), "osteoporotic", "D"),  # lower case, no dot
        (coding("snomed", "240198002"), "osteoporotic", ""),
        (coding("snomed", "866087009"), "pathologic", ""),
        (coding("snomed", "42942008"), "compression", ""),
    ],
)
def test_fracture_kinds_by_code(code, kind, seventh):
    (fracture,) = facts(condition("c", code, onset="2025-06-02")).fractures
    assert (fracture.kind, fracture.seventh, fracture.method) == (kind, seventh, Method.CODE)


def test_snomed_compression_fracture_takes_etiology_from_its_words():
    (fracture,) = facts(
        condition("c", coding("snomed", "42942008"), text="Osteoporotic compression fracture L1", onset="2025-06-02")
    ).fractures
    assert fracture.kind == "osteoporotic" and fracture.levels == ("L1",)


@pytest.mark.parametrize(
    ("words", "kind", "levels"),
    [
        ("Osteoporotic compression fracture of T12", "osteoporotic", ("T12",)),
        ("Insufficiency fracture L2 vertebral body", "osteoporotic", ("L2",)),
        ("Pathologic vertebral fracture T9, metastatic breast cancer", "pathologic", ("T9",)),
        ("Compression fracture T11-L1", "compression", ("T11", "T12", "L1")),
        ("Burst fracture L1", "other", ("L1",)),
        ("Sacral insufficiency fracture", "osteoporotic", ("S1",)),
        # The common abbreviation, and ICD-10-CM / SNOMED display wording with ordinal vertebrae.
        ("Osteoporotic compression fx T12", "osteoporotic", ("T12",)),
        ("Wedge compression fracture of first lumbar vertebra", "compression", ("L1",)),
        ("Collapse of twelfth thoracic vertebra due to osteoporosis", "osteoporotic", ("T12",)),
    ],
)
def test_text_only_fractures(words, kind, levels):
    (fracture,) = facts(condition("c", text=words, onset="2025-06-02")).fractures
    assert fracture.method is Method.TEXT
    assert (fracture.kind, fracture.levels) == (kind, levels)


@pytest.mark.parametrize(
    "words",
    ["Hip fracture", "Fracture of left wrist", "No compression fracture", "Low back pain", "Old healed T8 fracture",
     "Wrist fx", "h/o fx of radius"],
)
def test_not_current_vertebral_fractures(words):
    assert facts(condition("c", text=words, onset="2025-06-02")).fractures == ()


def test_resolved_and_entered_in_error_conditions_are_skipped():
    f = facts(
        condition("old", M80, onset="2024-01-01", body_sites=[vertebra("L2")], clinical="resolved"),
        condition("err", M80, onset="2025-06-02", body_sites=[vertebra("L3")], verification="entered-in-error"),
        condition("ok", M80, onset="2025-06-02", body_sites=[vertebra("T12")]),
    )
    assert [fr.reference for fr in f.fractures] == ["Condition/ok"]
    assert set(f.onset) == {"T12"}


def test_sacral_fracture_by_snomed_body_site_is_s1():
    (fracture,) = facts(
        condition("c", M80, onset="2025-06-02", body_sites=[concept(coding("snomed", "54735007", "Sacrum"))])
    ).fractures
    assert fracture.levels == ("S1",)


def test_region_codes_give_no_level():
    (fracture,) = facts(
        condition("c", M80, onset="2025-06-02", body_sites=[concept(coding("snomed", "122496007", "Lumbar spine"))])
    ).fractures
    assert fracture.levels == ()


@pytest.mark.parametrize(
    ("code", "levels"),
    [
        ("S22.010A", ("T1",)),  # first thoracic vertebra
        ("S32.040A", ("L4",)),
        ("S22.080A", ()),  # T11-T12: a group, left to bodySite/text
        ("S32.009A", ()),  # unspecified lumbar vertebra
    ],
)
def test_traumatic_fifth_character_gives_a_level_only_when_single(code, levels):
    (fracture,) = facts(condition("c", coding("icd", code), onset="2025-06-02")).fractures
    assert fracture.levels == levels


def test_unstable_burst_sixth_character_is_retropulsion():
    f = facts(condition("c", coding("icd", "S32.012A"), onset="2025-06-02"))
    assert f.retropulsion.status is Status.PRESENT
    assert f.retropulsion.evidence[0].method is Method.CODE


def test_levels_from_several_body_sites_and_notes():
    (fracture,) = facts(
        condition("c", M80, onset="2025-06-02", body_sites=[vertebra("T12"), concept(text="L1 vertebral body")],
                  notes=["also wedging at L2"])
    ).fractures
    assert fracture.levels == ("T12", "L1", "L2")


@pytest.mark.parametrize(
    ("note", "levels"),
    [
        # Other levels named for other reasons in the same note are not fractured levels.
        ("Acute L1 compression fracture. Prior L3-L5 fusion.", ("L1",)),
        ("Acute L1 compression fracture. Spinal stenosis at L4-5.", ("L1",)),
        ("Acute L1 compression fracture; grade 1 spondylolisthesis L4 on L5.", ("L1",)),
        ("Fell at home; L1 fracture on MRI. Also s/p T10 kyphoplasty in 2021.", ("L1",)),
        ("Acute L1 compression fracture. Old healed T8 fracture.", ("L1",)),
        ("Acute L1 compression fracture. Kyphotic deformity centred at T8.", ("L1",)),
        ("L1 compression deformity. T8 normal.", ("L1",)),
        # Every sentence about the fracture counts, and a note with no fracture words still names its level.
        ("Acute L1 compression fracture. Also wedging at L2.", ("L1", "L2")),
        ("Kyphoplasty planned at L1.", ("L1",)),
        # Clinicians' shorthand for an earlier fracture: "fx", "hx", "h/o", "prior", "healed" after the level.
        ("Hx T8 fx 2018, healed. Now new L1 fx after lifting groceries.", ("L1",)),
        ("Compression fx L1; old healed T8 fx", ("L1",)),
        ("New L1 fx. H/o T8 compression fx (2018).", ("L1",)),
        ("L1 fx. Prior T8 fx, unchanged.", ("L1",)),
        ("L1 fx with pain prior to admission.", ("L1",)),
    ],
)
def test_note_levels_come_from_the_sentences_about_the_fracture(note, levels):
    (fracture,) = facts(condition("c", M80, onset="2025-06-02", notes=[note])).fractures
    assert fracture.levels == levels


def test_text_only_fracture_that_also_mentions_an_old_one_is_current():
    (fracture,) = facts(condition("c", text="Compression fx L1; old healed T8 fx", onset="2025-06-02")).fractures
    assert fracture.levels == ("L1",)


def test_lone_unleveled_fracture_ignores_an_old_healed_level_in_imaging():
    f = facts(
        condition("c", M80, onset="2025-06-02"),
        imaging_study("mri", "MR", "2025-06-05"),
        diagnostic_report("r", text="MRI", effective="2025-06-05", studies=["ImagingStudy/mri"],
                          conclusion="Acute L1 compression fracture with marrow edema. Old healed T8 fracture."),
    )
    assert f.fracture_levels == ["L1"]


def test_lone_unleveled_fracture_keeps_a_chronic_level_when_it_is_the_only_one():
    f = facts(
        condition("c", M80, onset="2025-06-02"),
        imaging_study("mri", "MR", "2025-06-05"),
        diagnostic_report("r", text="MRI", effective="2025-06-05", studies=["ImagingStudy/mri"],
                          conclusion="Chronic L1 compression fracture without edema."),
    )
    assert f.fracture_levels == ["L1"]
    assert f.acuity["L1"].status is Status.ABSENT


def test_hemangioma_needs_vertebral_context():
    hemangioma = coding("icd", "D18.09", "Hemangioma of other sites")
    assert facts(condition("c", hemangioma, onset="2025-06-02")).fractures == ()
    (fracture,) = facts(condition("c", hemangioma, onset="2025-06-02", body_sites=[vertebra("L2")])).fractures
    assert fracture.kind == "hemangioma"


# ---------------------------------------------------------------- onset


def test_onset_period_and_string():
    f = facts(
        condition("a", M80, onset_period="2025-06-03", body_sites=[vertebra("T11")]),
        condition("b", M80, onset_string="06/04/2025", body_sites=[vertebra("T12")]),
    )
    by_ref = {fr.reference: fr for fr in f.fractures}
    assert by_ref["Condition/a"].onset_element == "onsetPeriod.start"
    assert by_ref["Condition/b"].onset == DayRange.day(date(2025, 6, 4))
    assert by_ref["Condition/b"].onset_element == "onsetString"
    assert f.onset["T12"].evidence[0].method is Method.TEXT


JUNE_2025 = DayRange(date(2025, 6, 1), date(2025, 6, 30))


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("2025-06-02", date(2025, 6, 2)),
        ("onset 2025-06-02 after a fall", date(2025, 6, 2)),
        ("06/02/2025", date(2025, 6, 2)),  # US month/day/year
        ("25/06/2025", date(2025, 6, 25)),  # first number above 12: day/month
        ("June 2, 2025", date(2025, 6, 2)),
        ("2 June 2025", date(2025, 6, 2)),
        ("Sept 3rd, 2025", date(2025, 9, 3)),
        ("June 2025", JUNE_2025),  # no day: the month, never an invented day (input profile, "Dates and times")
        ("2025-06", JUNE_2025),
        ("2025", DayRange(date(2025, 1, 1), date(2025, 12, 31))),
        ("late 2025", None),  # a year inside words is no date
        ("3 weeks ago", None),
        ("02/30/2025", None),
        ("", None),
    ],
)
def test_parse_onset_string(value, parsed):
    found = parse_onset_string(value)
    assert found == (DayRange.day(parsed) if isinstance(parsed, date) else parsed)


def test_recorded_date_fallback_is_flagged():
    f = facts(condition("c", M80, recorded="2025-06-05", body_sites=[vertebra("T12")]))
    (fracture,) = f.fractures
    assert fracture.onset == DayRange.day(date(2025, 6, 5)) and fracture.onset_element == "recordedDate"
    assert f.onset["T12"].status is Status.PRESENT
    assert f.onset["T12"].note == "recorded date used, no onset documented"


def test_no_onset_at_all_is_unknown():
    f = facts(condition("c", M80, body_sites=[vertebra("T12")]))
    assert f.onset["T12"].status is Status.UNKNOWN
    assert f.onset["T12"].references == ["Condition/c"]


def test_two_onsets_more_than_14_days_apart_conflict():
    f = facts(
        condition("a", M80, onset="2025-06-01", body_sites=[vertebra("T12")]),
        condition("b", coding("snomed", "240198002"), onset="2025-04-01", body_sites=[vertebra("T12")]),
    )
    fact = f.onset["T12"]
    assert fact.status is Status.CONFLICT
    assert fact.value == DayRange.day(date(2025, 4, 1))
    assert set(fact.references) == {"Condition/a", "Condition/b"}


def test_two_onsets_within_14_days_agree_on_the_earliest():
    f = facts(
        condition("a", M80, onset="2025-06-01", body_sites=[vertebra("T12")]),
        condition("b", M80, onset="2025-06-14", body_sites=[vertebra("T12")]),
    )
    assert f.onset["T12"].status is Status.PRESENT
    assert f.onset["T12"].value == DayRange.day(date(2025, 6, 1))


def test_radiograph_showing_the_fracture_months_before_onset_conflicts():
    f = facts(
        condition("c", M80, onset="2025-06-01", body_sites=[vertebra("T12")]),
        imaging_study("xr", "DX", "2025-02-10"),
        diagnostic_report("xr-r", text="XR thoracic spine", effective="2025-02-10",
                          conclusion="Mild compression deformity of T12.", studies=["ImagingStudy/xr"]),
    )
    fact = f.onset["T12"]
    assert fact.status is Status.CONFLICT
    assert "DiagnosticReport/xr-r" in fact.references and "before the recorded onset" in fact.note


def test_radiograph_without_fracture_or_after_onset_does_not_conflict():
    f = facts(
        condition("c", M80, onset="2025-06-01", body_sites=[vertebra("T12")]),
        diagnostic_report("old", text="XR spine", effective="2025-02-10", conclusion="No fracture. T12 normal."),
        diagnostic_report("new", text="XR spine", effective="2025-05-25", conclusion="T12 compression fracture."),
    )
    assert f.onset["T12"].status is Status.PRESENT


def test_unleveled_finding_before_onset_counts_with_a_single_fracture_level():
    f = facts(
        condition("c", M80, onset="2025-06-01", body_sites=[vertebra("L1")]),
        diagnostic_report("old", text="XR lumbar spine", effective="2025-01-05", conclusion="Compression fracture."),
    )
    assert f.onset["L1"].status is Status.CONFLICT


# ---------------------------------------------------------------- keys, as-of, imaging levels


def test_every_request_level_has_per_level_keys():
    f = facts(
        condition("c", M80, onset="2025-06-02", body_sites=[vertebra("T12")]),
        service_request("sr", coding("cpt", "22513"), status="draft", body_sites=[vertebra("T12"), vertebra("L1")]),
    )
    for per_level in (f.onset, f.acuity, f.height_loss):
        assert set(per_level) == {"T12", "L1"}
    assert f.onset["L1"].status is Status.UNKNOWN


def test_resources_after_as_of_are_invisible():
    f = facts(
        condition("c", M80, onset="2025-06-02", body_sites=[vertebra("T12")]),
        condition("later", M80, onset="2025-07-15", body_sites=[vertebra("L2")]),
    )
    assert f.fracture_levels == ["T12"]


def test_lone_unleveled_fracture_takes_its_level_from_imaging():
    f = facts(
        condition("c", M80, onset="2025-06-02"),
        imaging_study("mri", "MR", "2025-06-05"),
        finding("edema", "marrow-edema", True, level="L1", study="ImagingStudy/mri"),
    )
    (fracture,) = f.fractures
    assert fracture.levels == ("L1",)
    assert any("taken from imaging" in e.found for e in fracture.evidence)
    assert f.acuity["L1"].status is Status.PRESENT


def test_two_unleveled_fractures_never_get_imaging_levels():
    f = facts(
        condition("a", M80, onset="2025-06-02"),
        condition("b", M80, onset="2025-06-03"),
        imaging_study("mri", "MR", "2025-06-05"),
        finding("edema", "marrow-edema", True, level="L1", study="ImagingStudy/mri"),
    )
    assert all(fr.levels == () for fr in f.fractures)
    assert f.onset == {}


def test_sex_and_birth_date():
    f = map_record(record(patient(gender="male", birth_date="1950-02-03")), as_of=AS_OF)
    assert f.sex == "male" and f.birth_date == date(1950, 2, 3)
    assert f.patient == "Patient/p1"


# ---------------------------------------------------------------- etiology context


def test_context_absent_when_record_read_and_silent():
    f = facts(condition("c", text="Compression fracture T12", onset="2025-06-02"))
    for fact in (f.osteoporosis, f.malignancy, f.myeloma, f.healed, f.kyphosis):
        assert fact.status is Status.ABSENT
    assert f.malignancy.value == ()


def test_osteoporosis_by_snomed_subtype_and_icd():
    f = facts(condition("o", coding("snomed", "390833005", "Corticosteroid-induced osteoporosis")))
    assert f.osteoporosis.status is Status.PRESENT
    f = facts(condition("o", coding("icd", "M81.0")))
    assert f.osteoporosis.status is Status.PRESENT and f.osteoporosis.evidence[0].method is Method.CODE


def test_malignancy_codes_and_myeloma():
    f = facts(
        condition("m", coding("icd", "C90.00", "Multiple myeloma not having achieved remission")),
        condition("b", coding("snomed", "94222008")),
        condition("c", coding("icd", "M84.58XA"), onset="2025-06-02", body_sites=[vertebra("L2")]),
    )
    assert f.malignancy.status is Status.PRESENT
    assert {"C90.00", "94222008"} <= set(f.malignancy.value)
    assert f.myeloma.status is Status.PRESENT


def test_malignancy_from_text_and_negated_text():
    f = facts(condition("m", text="Metastatic breast cancer"))
    assert f.malignancy.status is Status.PRESENT and f.malignancy.value == ("metastatic",)
    f = facts(diagnostic_report("r", text="MRI", conclusion="No evidence of metastatic disease."))
    assert f.malignancy.status is Status.ABSENT and f.malignancy.evidence


def test_healed_by_code_even_when_historical():
    f = facts(condition("h", coding("icd", "Z87.310"), clinical="resolved"))
    assert f.healed.status is Status.PRESENT
    f = facts(condition("h", coding("snomed", "307136000")))
    assert f.healed.status is Status.PRESENT


def test_healed_by_text_in_a_report():
    f = facts(diagnostic_report("r", text="XR", conclusion="Old healed T8 compression fracture."))
    assert f.healed.status is Status.PRESENT and f.healed.evidence[0].method is Method.TEXT


def test_kyphosis_code_text_and_negation():
    assert facts(condition("k", coding("icd", "M40.204"))).kyphosis.status is Status.PRESENT
    assert facts(condition("k", coding("snomed", "414564002"))).kyphosis.status is Status.PRESENT
    f = facts(diagnostic_report("r", text="XR", conclusion="Kyphotic deformity at the thoracolumbar junction."))
    assert f.kyphosis.status is Status.PRESENT
    f = facts(diagnostic_report("r", text="XR", conclusion="No kyphosis."))
    assert f.kyphosis.status is Status.ABSENT and f.kyphosis.evidence


def test_kyphoplasty_is_not_kyphosis():
    f = facts(service_request("sr", text="kyphoplasty T12", status="draft"),
              diagnostic_report("r", text="XR", conclusion="Status post kyphoplasty."))
    assert f.kyphosis.status is Status.ABSENT


def test_imaging_series_text_is_not_a_fracture_condition():
    f = facts(imaging_study("mri", "MR", "2025-06-05", series=[series_("MR", description="T12 fracture")]))
    assert f.fractures == ()


def test_fracture_words_with_a_vertebral_body_site():
    (fracture,) = facts(
        condition("c", coding("icd", "M84.48XA", "Pathological fracture, other site"), onset="2025-06-02",
                  body_sites=[vertebra("T12")])
    ).fractures
    assert fracture.method is Method.TEXT and fracture.levels == ("T12",)


def test_suspected_fracture_text_is_not_a_fracture():
    assert facts(condition("c", text="Possible T12 compression fracture", onset="2025-06-02")).fractures == ()


def test_coded_myeloma_display_does_not_repeat_as_a_text_term():
    f = facts(condition("m", coding("icd", "C90.00", "Multiple myeloma not having achieved remission")))
    assert f.malignancy.value == ("C90.00",)


def test_earlier_mri_without_edema_does_not_show_a_fracture():
    f = facts(
        condition("c", M80, onset="2025-06-01", body_sites=[vertebra("T12")]),
        imaging_study("mri", "MR", "2025-01-10"),
        finding("e", "marrow-edema", False, level="T12", study="ImagingStudy/mri"),
    )
    assert f.onset["T12"].status is Status.PRESENT


def test_earlier_mri_with_edema_conflicts_with_onset():
    f = facts(
        condition("c", M80, onset="2025-06-01", body_sites=[vertebra("T12")]),
        imaging_study("mri", "MR", "2025-01-10"),
        finding("e", "marrow-edema", True, level="T12", study="ImagingStudy/mri"),
    )
    assert f.onset["T12"].status is Status.CONFLICT
    assert "Observation/e" in f.onset["T12"].references


@pytest.mark.parametrize("conclusion", ["Normal thoracic kyphosis.", "Thoracic kyphosis is preserved."])
def test_normal_kyphosis_is_not_a_deformity(conclusion):
    f = facts(diagnostic_report("r", text="XR", conclusion=conclusion))
    assert f.kyphosis.status is Status.ABSENT


def test_a_condition_coded_as_something_else_is_not_a_second_fracture():
    """G99.2 "Myelopathy from T10 fracture" names its cause; it must not add a fracture whose onset
    would contradict the real one (it did, and made I1 a conflict in the X8 sample)."""
    f = facts(
        condition("vcf", coding("icd", "M80.08XA"), onset="2025-06-02", body_sites=[vertebra("T10")]),
        condition("myelo", coding("icd", "G99.2", "Myelopathy in diseases classified elsewhere"),
                  text="Myelopathy from T10 fracture", onset="2025-06-22"),
    )
    assert [fx.reference for fx in f.fractures] == ["Condition/vcf"]
    assert f.onset["T10"].status is Status.PRESENT


def test_onset_at_the_first_representable_day_does_not_overflow():
    # "0001-01-01" is a valid FHIR date; the imaging check once computed onset - 14 days (OverflowError).
    f = facts(
        condition("c", M80, onset="0001-01-01", body_sites=[vertebra("T12")]),
        diagnostic_report("xr", text="XR spine", effective="2025-02-10", conclusion="T12 compression fracture."),
    )
    assert f.onset["T12"].value == DayRange.day(date(1, 1, 1))

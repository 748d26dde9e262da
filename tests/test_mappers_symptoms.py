"""Pain scores (scale, setting, episode window) and the Roland-Morris score."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from fhir_builders import coding, concept, encounter, observation, record, vertebra

from fhir_vcf.facts import Method, Status
from fhir_vcf.mappers.symptoms import map_symptoms

AS_OF = date(2025, 6, 30)
EPISODE = date(2025, 6, 1)


def nrs(id: str, value, *, effective: str = "2025-06-10", unit: str | None = None, **kw):
    return observation(id, coding("loinc", "72514-3"), effective=effective, value=value, unit=unit, **kw)


def vas(id: str, value, *, effective: str = "2025-06-10", unit: str | None = None, **kw):
    return observation(id, coding("loinc", "38214-3"), effective=effective, value=value, unit=unit, **kw)


def scores(*resources, episode_start=EPISODE, as_of=AS_OF):
    return map_symptoms(record(*resources), as_of=as_of, episode_start=episode_start)["pain_scores"]


def test_nrs_value_integer_and_quantity():
    found = scores(nrs("a", 8), nrs("b", 7, unit="{score}", effective="2025-06-12"))
    assert [(s.reference, s.value, s.scale) for s in found] == [
        ("Observation/a", 8.0, "NRS"),
        ("Observation/b", 7.0, "NRS"),
    ]


def test_vas_mm_divided_by_ten():
    (score,) = scores(vas("v", 72, unit="mm"))
    assert score.value == 7.2 and score.scale == "VAS"


def test_vas_cm_and_small_unitless_not_divided():
    found = scores(vas("cm", 6.5, unit="cm"), vas("int", 8, effective="2025-06-11"))
    assert [s.value for s in found] == [6.5, 8.0]


def test_vas_large_unitless_divided_and_out_of_range_dropped():
    found = scores(vas("big", 85), nrs("bad", 14, effective="2025-06-11"))
    assert [(s.reference, s.value) for s in found] == [("Observation/big", 8.5)]


def test_pain_severity_38208_read_only_on_0_10_scale():
    found = scores(
        observation("ok", coding("loinc", "38208-5"), effective="2025-06-10", value=6),
        observation("no", coding("loinc", "38208-5"), effective="2025-06-11", value=60),
    )
    assert [s.reference for s in found] == ["Observation/ok"]


def test_hospitalized_via_encounter_reference():
    enc = encounter("e1", "IMP", start="2025-06-09", end="2025-06-14")
    (score,) = scores(enc, nrs("a", 9, encounter="Encounter/e1"))
    assert score.setting == "hospitalized" and score.encounter == "Encounter/e1"


def test_hospitalized_via_covering_period():
    (score,) = scores(
        encounter("amb", "AMB", start="2025-05-01", end="2025-05-01"),
        encounter("adm", "ACUTE", start="2025-06-08T10:00:00Z", end="2025-06-15T12:00:00Z"),
        nrs("a", 8, effective="2025-06-10T09:00:00Z"),
    )
    assert score.setting == "hospitalized" and score.encounter == "Encounter/adm"


def test_old_actcode_uri_accepted():
    enc = encounter("e1", "AMB", start="2025-06-10", end="2025-06-10")
    enc["class"]["system"] = "http://hl7.org/fhir/v3/ActCode"
    (score,) = scores(enc, nrs("a", 6, encounter="Encounter/e1"))
    assert score.setting == "ambulatory"


def test_observation_encounter_class():
    enc = encounter("o", "OBSENC", start="2025-06-10", end="2025-06-11")
    (score,) = scores(enc, nrs("a", 8, encounter="Encounter/o"))
    assert score.setting == "observation"


@pytest.mark.parametrize(("start", "end"), [("2025-06", "2025-06-12"), ("2025-06-09", "2025"), ("2025", None)])
def test_an_encounter_with_a_partial_period_date_covers_nothing(start, end):
    # "2025-06" is a valid FHIR dateTime naming no day (the models keep it as a string): the covering
    # check once compared None with a date (TypeError). Such an encounter cannot place a score.
    enc = encounter("e", "IMP", start=start, end=end)
    (score,) = scores(enc, nrs("a", 8, effective="2025-06-10"))
    assert (score.setting, score.encounter) == ("unknown", None)


def test_no_encounter_is_unknown_and_disagreeing_cover_is_unknown():
    found = scores(
        nrs("lonely", 7, effective="2025-06-02"),
        encounter("ed", "EMER", start="2025-06-10", end="2025-06-10"),
        encounter("ip", "IMP", start="2025-06-10", end="2025-06-12"),
        nrs("ambiguous", 8, effective="2025-06-10"),
    )
    assert [(s.reference, s.setting, s.encounter) for s in found] == [
        ("Observation/lonely", "unknown", None),
        ("Observation/ambiguous", "unknown", None),
    ]


def test_scores_outside_episode_or_after_as_of_excluded_and_sorted():
    found = scores(
        nrs("late", 9, effective="2025-07-02"),
        nrs("before", 9, effective="2025-05-20"),
        nrs("second", 8, effective="2025-06-20"),
        nrs("first", 6, effective="2025-06-05"),
    )
    assert [s.reference for s in found] == ["Observation/first", "Observation/second"]


def test_default_episode_is_84_days():
    found = scores(nrs("in", 7, effective="2025-04-10"), nrs("out", 7, effective="2025-04-01"), episode_start=None)
    assert [s.reference for s in found] == ["Observation/in"]


def test_datetime_kept_and_level_from_body_site():
    found = scores(
        nrs("a", 8, effective="2025-06-10T08:30:00Z", body_site=vertebra("T12")),
        nrs("b", 7, effective="2025-06-11", body_site=concept(text="L1 vertebra")),
    )
    assert found[0].when.timed and found[0].when.earliest == datetime(2025, 6, 10, 8, 30, tzinfo=UTC)
    assert found[0].level == "T12"
    assert not found[1].when.timed and found[1].when.day == date(2025, 6, 11) and found[1].level == "L1"


def test_labelled_text_pain_score_only():
    found = scores(
        observation("t", coding("loinc", "11111-1"), text="pain", effective="2025-06-10", value="NRS 8/10 at rest"),
        observation("u", text="note", effective="2025-06-11", value="patient rates 8 of 10"),
    )
    assert [(s.reference, s.value) for s in found] == [("Observation/t", 8.0)]


# --- Roland-Morris ---


def rdq(id: str, value, effective: str = "2025-06-15"):
    return observation(id, coding("finding", "rdq-score"), effective=effective, value=value)


def test_rdq_coded_latest_wins():
    fact = map_symptoms(record(rdq("old", 12, "2025-06-05"), rdq("new", 19, "2025-06-20")), as_of=AS_OF,
                        episode_start=EPISODE)["rdq"]
    assert fact.status is Status.PRESENT and fact.value == 19
    assert fact.references == ["Observation/new"] and fact.evidence[0].method is Method.CODE


def test_rdq_text():
    obs = observation("n", text="functional status", effective="2025-06-18", value="Roland-Morris 19/24 today")
    fact = map_symptoms(record(obs), as_of=AS_OF, episode_start=EPISODE)["rdq"]
    assert fact.value == 19 and fact.evidence[0].method is Method.TEXT


def test_rdq_text_rmdq_and_wrong_denominator():
    ok = observation("a", text="x", effective="2025-06-18", value="RMDQ 18")
    wrong = observation("b", text="x", effective="2025-06-19", value="RDQ 19/30")
    fact = map_symptoms(record(ok, wrong), as_of=AS_OF, episode_start=EPISODE)["rdq"]
    assert fact.value == 18


def test_rdq_unknown_when_none_or_after_as_of_or_before_episode():
    assert map_symptoms(record(), as_of=AS_OF, episode_start=EPISODE)["rdq"].status is Status.UNKNOWN
    late = map_symptoms(record(rdq("late", 20, "2025-07-05")), as_of=AS_OF, episode_start=EPISODE)["rdq"]
    assert late.status is Status.UNKNOWN
    old = map_symptoms(record(rdq("old", 20, "2024-01-05")), as_of=AS_OF, episode_start=EPISODE)["rdq"]
    assert old.status is Status.UNKNOWN and "predates" in old.note


def test_rdq_out_of_range_ignored():
    fact = map_symptoms(record(rdq("bad", 30)), as_of=AS_OF, episode_start=EPISODE)["rdq"]
    assert fact.status is Status.UNKNOWN


def test_registered_score_skipped_and_bare_string_value_read():
    found = scores(
        nrs("reg", 9, status="registered"),
        observation("s", coding("loinc", "72514-3"), effective="2025-06-12", value="7/10"),
        vas("v", None, effective="2025-06-13") | {"valueString": "65/100"},
    )
    assert [(s.reference, s.value) for s in found] == [("Observation/s", 7.0), ("Observation/v", 6.5)]


def test_planned_encounter_does_not_cover():
    enc = encounter("p", "IMP", start="2025-06-10", end="2025-06-12")
    enc["status"] = "planned"
    (score,) = scores(enc, nrs("a", 8, effective="2025-06-11"))
    assert score.setting == "unknown"


def test_recorded_date_does_not_open_the_pain_episode():
    """A fracture Condition with only a recordedDate (entered after the visits) must not drop the pain
    scores charted before it: the recorded date is not the onset (input profile, "onset")."""
    from fhir_builders import condition, vertebra

    from fhir_vcf.mappers import map_record

    vcf = condition("vcf", coding("icd", "M80.08XA"), recorded="2025-06-25", body_sites=[vertebra("T12")])
    facts = map_record(record(vcf, nrs("a", 6, effective="2025-06-09"), nrs("b", 7, effective="2025-06-23")),
                       as_of=AS_OF)
    assert [s.reference for s in facts.pain_scores] == ["Observation/a", "Observation/b"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("8", 8.0), ("8/10", 8.0), ("NRS 8/10", 8.0), ("8 out of 10", 8.0), ("Pain 8/10", 8.0), ("8/10 at rest", 8.0),
     ("7-8/10", None), ("severe", None), ("8 apples", None), ("80/100", None)],  # 80/100 is not a 0-10 NRS
)
def test_coded_pain_score_written_as_text(value, expected):
    """A LOINC-coded pain Observation whose value is a string: the score is read when it is one clear
    number on its scale ("8 out of 10"), never from a range ("7-8/10") or a word."""
    found = scores(nrs("a", value))
    assert [s.value for s in found] == ([expected] if expected is not None else [])


@pytest.mark.parametrize(
    ("site", "kept"),
    [
        # A pain score charted for another body part (an orthopaedic knee visit, a shoulder) is not the
        # fracture's pain: it must not become the "latest score" of the episode.
        (concept(coding("snomed", "72696002", "Knee region structure")), False),
        (concept(text="Right shoulder"), False),
        # Back, spine, a region or a vertebra: the fracture's pain.
        (concept(coding("snomed", "77568009", "Back structure, excluding neck")), True),
        (concept(coding("snomed", "122496007", "Lumbar spine structure")), True),
        (vertebra("L1"), True),
        (concept(text="low back"), True),
        # A code we cannot read and no words: keep (nothing says it is elsewhere).
        (concept(coding("snomed", "123037004")), True),
    ],
)
def test_pain_score_for_another_body_site_is_not_the_fracture_pain(site, kept):
    found = scores(nrs("a", 3, body_site=site))
    assert bool(found) is kept


def test_a_timestamp_is_the_clinical_date_for_every_r4b_type():
    """`_context.timestamp` (effective[x], then `issued`) reads the memoised clinical date: that holds only
    while no type has a date element that `common.clinical_when` reads between effective[x] and
    `issued`, or before effective[x]. A new date element in that order must not change a timestamp."""
    import importlib
    import pkgutil

    import fhir.resources.R4B as r4b

    from fhir_vcf.mappers.common import _DATE_ELEMENTS

    stamps = {"effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"}
    checked = 0
    for info in pkgutil.iter_modules(r4b.__path__):
        module = importlib.import_module(f"fhir.resources.R4B.{info.name}")
        for name, model in vars(module).items():
            if getattr(model, "__resource_type__", None) != name or not hasattr(model, "model_fields"):
                continue
            order = [e for e in _DATE_ELEMENTS if e.split(".")[0] in model.model_fields]
            last = max((i for i, e in enumerate(order) if e in stamps), default=-1)
            assert last < 0 or all(e in stamps for e in order[:last]), (name, order)
            checked += 1
    assert checked > 100

"""Every boundary of the clinical rules, end to end: FHIR JSON -> map_record -> judge.

The rules tests judge hand-built facts; these build a small FHIR record (tests/fhir_builders.py) that
is eligible as written, change one thing, and check the decision and the criterion that moved. So a
boundary is right only if the mappers read it AND the rules judge it as clinical-rules.md says.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fhir_builders import (
    bundle,
    coding,
    concept,
    condition,
    diagnostic_report,
    encounter,
    finding,
    imaging_study,
    medication_request,
    observation,
    patient,
    record,
    series_,
    service_request,
    vertebra,
    vertebra_coding,
)
from rules_support import crit, run

from fhir_vcf.errors import InputError
from fhir_vcf.mappers import map_record
from fhir_vcf.record import load_document

AS_OF = date(2025, 6, 30)


def vcf(levels=("T12",), *, code="M80.08XA", onset="2025-06-02", **kw) -> dict:
    sites = [vertebra(lv) if lv[0] in "TL" else concept(text=lv) for lv in levels]
    return condition("vcf", coding("icd", code), onset=onset, body_sites=sites, **kw)


def mri(levels=("T12",), conclusion: str | None = None, day: str = "2025-06-05") -> list[dict]:
    series = [series_("MR", body_site=vertebra_coding(lv) if lv[0] in "TL" else None, description="SAG STIR")
              for lv in levels]
    words = conclusion or f"Acute compression fracture of {' and '.join(levels)} with bone marrow edema on STIR."
    return [imaging_study("mri", "MR", day, series=series),
            diagnostic_report("rmri", text="MRI spine", effective=day, studies=["ImagingStudy/mri"], conclusion=words)]


def pain(first: int | None = 6, second: int = 7, *, setting: str = "AMB") -> list[dict]:
    out = [encounter("e2", setting, start="2025-06-23T09:00:00Z", end="2025-06-23T10:00:00Z"),
           observation("nrs2", coding("loinc", "72514-3"), effective="2025-06-23T09:10:00Z", value=second,
                       encounter="Encounter/e2")]
    if first is not None:
        out += [encounter("e1", setting, start="2025-06-09T09:00:00Z", end="2025-06-09T10:00:00Z"),
                observation("nrs1", coding("loinc", "72514-3"), effective="2025-06-09T09:10:00Z", value=first,
                            encounter="Encounter/e1")]
    return out


CARE = [
    condition("ost", coding("icd", "M81.0")),
    medication_request("apap", coding("rxnorm", "161", "acetaminophen"), authored="2025-06-05"),
    service_request("dxa", coding("cpt", "77080"), authored="2025-06-05"),
    medication_request("aln", coding("rxnorm", "46041", "alendronate"), authored="2025-06-05"),
    observation("inr", coding("loinc", "6301-6"), effective="2025-06-20", value=1.0, unit="{INR}"),
]


def judged(*resources: dict, fracture: dict | None = None, imaging: list[dict] | None = None,
           symptoms: list[dict] | None = None) -> Any:
    items = [fracture or vcf(), *(imaging if imaging is not None else mri()),
             *(symptoms if symptoms is not None else pain()), *CARE, *resources]
    return run(map_record(record(*items), as_of=AS_OF))


def test_the_base_record_is_eligible():
    j = judged()
    assert (j.decision, j.levels) == ("eligible", ("T12",))


# ---------------------------------------------------------------- I1 fracture age: 41 / 42 / 84 / 85 days


@pytest.mark.parametrize(
    ("onset", "days", "status", "decision"),
    [("2025-05-20", 41, "met", "eligible"), ("2025-05-19", 42, "met", "eligible"),
     ("2025-04-07", 84, "met", "eligible"), ("2025-04-06", 85, "not-met", "not-eligible")],
)
def test_fracture_age_boundaries(onset, days, status, decision):
    j = judged(fracture=vcf(onset=onset), imaging=mri(day=onset))
    assert (crit(j, "I1").status, j.decision) == (status, decision)
    assert f"{days} days" in crit(j, "I1").reason


# ---------------------------------------------------------------- I4 pain: outpatient 4 / 5, hospitalized 7 / 8


@pytest.mark.parametrize(("score", "decision"), [(4, "not-eligible"), (5, "eligible")])
def test_outpatient_pain_boundary(score, decision):
    j = judged(symptoms=pain(3, score))
    assert j.decision == decision


@pytest.mark.parametrize(("score", "decision"), [(7, "not-eligible"), (8, "eligible")])
def test_hospitalized_pain_boundary(score, decision):
    j = judged(symptoms=pain(None, score, setting="IMP"))
    assert j.decision == decision, crit(j, "I4").reason


# ---------------------------------------------------------------- I4b(2): height loss 25 / 26 %, RDQ 17 / 18


def stable_with(*findings: dict) -> Any:
    """Stable pain 7 -> 7, kyphosis documented (C), no progression: one more of A-D decides."""
    imaging = mri(conclusion="Acute T12 compression fracture with marrow edema. No interval change in height.")
    return judged(condition("kyph", coding("icd", "M40.204")), *findings, imaging=imaging, symptoms=pain(7, 7))


@pytest.mark.parametrize(("percent", "decision"), [(25, "not-eligible"), (26, "eligible")])
def test_height_loss_boundary(percent, decision):
    j = stable_with(finding("h", "height-loss-percent", percent, level="T12", study="ImagingStudy/mri"),
                    finding("r", "rdq-score", 10, level="T12"))
    assert j.decision == decision, crit(j, "I4").reason


@pytest.mark.parametrize(("rdq", "decision"), [(17, "not-eligible"), (18, "eligible")])
def test_rdq_boundary(rdq, decision):
    j = stable_with(finding("h", "height-loss-percent", 20, level="T12", study="ImagingStudy/mri"),
                    finding("r", "rdq-score", rdq, level="T12"))
    assert j.decision == decision, crit(j, "I4").reason


# ---------------------------------------------------------------- I2 level range, X4 level count and the waiver


@pytest.mark.parametrize(
    ("level", "decision", "flagged"),
    [("T1", "eligible", True), ("T4", "eligible", True), ("T5", "eligible", False), ("L5", "eligible", False),
     ("sacrum", "not-eligible", False), ("C7", "not-eligible", False)],
)
def test_level_range(level, decision, flagged):
    label = "S1" if level == "sacrum" else level
    fracture = vcf((label,)) if label[0] in "TL" else vcf((), notes=[f"Acute {level} compression fracture."])
    j = judged(fracture=fracture, imaging=mri((label,), conclusion=f"Acute {level} fracture with marrow edema."))
    assert (j.decision, j.levels) == (decision, (label,))
    assert any("T1-T4" in f for f in j.flags) is flagged


FOUR = ("T9", "T10", "T11", "T12")


@pytest.mark.parametrize(
    ("levels", "neoplasm", "x4", "decision"),
    [(FOUR[1:], None, "absent", "eligible"),
     (FOUR, None, "present", "not-eligible"),
     (FOUR, "C79.51", "present", "not-eligible"),  # metastasis: no waiver
     (FOUR, "C90.02", "absent", "eligible")],  # multiple myeloma: waived (A56572)
)
def test_level_count_and_myeloma_waiver(levels, neoplasm, x4, decision):
    extra = []
    code = "M80.08XA"
    if neoplasm:
        extra.append(condition("neo", coding("icd", neoplasm)))
        code = "M84.58XA"
    j = judged(*extra, fracture=vcf(levels, code=code), imaging=mri(levels))
    assert (crit(j, "X4").status, j.decision) == (x4, decision)
    assert j.levels == levels


# ---------------------------------------------------------------- text: negation, conflict, skipped data


@pytest.mark.parametrize(
    ("conclusion", "exclusion", "status"),
    [("No retropulsion.", "X11", "absent"), ("Retropulsed fragment narrows the canal.", "X11", "present"),
     ("Negative for discitis.", "X2", "absent"), ("Findings of discitis at T11-T12.", "X2", "present"),
     ("Without cord compression.", "X8", "absent"), ("Cord compression at T12.", "X8", "present")],
)
def test_negated_and_affirmed_report_text(conclusion, exclusion, status):
    j = judged(imaging=mri(conclusion=f"Acute T12 compression fracture with marrow edema. {conclusion}"))
    assert crit(j, exclusion).status == status
    assert j.decision == ("eligible" if status == "absent" else "not-eligible")


def test_radiograph_before_the_recorded_onset_is_a_conflict():
    xray = [imaging_study("xr", "DX", "2025-02-11", series=[series_("DX", body_site=vertebra_coding("T12"))]),
            diagnostic_report("rxr", text="XR", effective="2025-02-11", studies=["ImagingStudy/xr"],
                              conclusion="T12 compression fracture.")]
    j = judged(*xray)
    assert (crit(j, "I1").status, j.decision) == ("conflict", "needs-review")


@pytest.mark.parametrize("verification", ["entered-in-error", "refuted"])
def test_skipped_pregnancy_and_fracture(verification):
    j = judged(condition("preg", coding("icd", "Z33.1"), verification=verification),
               condition("vcf2", coding("icd", "M80.08XA"), onset="2024-01-01", body_sites=[vertebra("T12")],
                         verification=verification))
    assert (crit(j, "X3").status, crit(j, "I1").status, j.decision) == ("absent", "met", "eligible")


def test_a_malformed_used_resource_is_an_input_error_naming_it():
    bad = condition("vcf", coding("icd", "M80.08XA"), onset="2025-06-31")
    with pytest.raises(InputError) as info:
        load_document(bundle(patient(), bad), source="bad.json")
    assert (info.value.resource, info.value.element) == ("Condition/vcf", "onsetDateTime")

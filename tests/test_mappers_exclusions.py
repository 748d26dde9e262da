"""Exclusions X1-X3, X5-X10 and the INR: codes, findings, text, negation, hedging and conflicts."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fhir_builders import (
    SUBJECT,
    coding,
    concept,
    condition,
    diagnostic_report,
    finding,
    observation,
    patient,
    record,
    service_request,
)

from fhir_vcf.facts import Method, Status
from fhir_vcf.mappers.exclusions import map_exclusions

AS_OF = date(2025, 6, 30)


def excl(*resources, sex: str | None = "female"):
    return map_exclusions(record(*resources), as_of=AS_OF, sex=sex)


def mri(conclusion: str, id: str = "mri") -> dict[str, Any]:
    return diagnostic_report(id, text="MRI thoracic spine", effective="2025-06-05", conclusion=conclusion)


def allergy(id: str, *codings, text: str | None = None, substance: str | None = None,
            clinical: str | None = "active", verification: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "AllergyIntolerance", "id": id, "patient": SUBJECT,
                           "code": concept(*codings, text=text)}
    if clinical:
        out["clinicalStatus"] = concept(
            coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", clinical))
    if verification:
        out["verificationStatus"] = concept(
            coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", verification))
    if substance:
        out["reaction"] = [{"substance": concept(text=substance), "manifestation": [concept(text="hives")]}]
    return out


def test_clean_record_all_absent_and_inr_unknown():
    out = excl()
    for key in ("pain_elsewhere", "infection", "pregnancy", "cement_allergy", "coagulopathy", "instability",
                "myelopathy", "neurologic_deficit", "neural_impingement"):
        assert out[key].status is Status.ABSENT, key
        assert out[key].note.startswith("no "), key
    assert out["inr"].status is Status.UNKNOWN


# --- X2 infection ---


@pytest.mark.parametrize("code", [("icd", "M46.25"), ("icd", "M4645"), ("snomed", "445063003")])
def test_infection_by_code(code):
    fact = excl(condition("c", coding(*code)))["infection"]
    assert fact.status is Status.PRESENT and fact.evidence[0].method is Method.CODE


def test_infection_by_text_and_negated_text():
    assert excl(mri("Findings consistent with T11-T12 discitis."))["infection"].status is Status.PRESENT
    fact = excl(mri("No evidence of discitis or osteomyelitis."))["infection"]
    assert fact.status is Status.ABSENT and fact.evidence and fact.evidence[0].method is Method.TEXT


def test_infection_hedged_is_conflict():
    fact = excl(mri("Cannot rule out early discitis at T12-L1."))["infection"]
    assert fact.status is Status.CONFLICT and "reviewer" in fact.note


def test_resolved_infection_skipped():
    fact = excl(condition("c", coding("icd", "M46.26"), text="osteomyelitis of vertebra", clinical="resolved"))
    assert fact["infection"].status is Status.ABSENT


def test_abated_infection_skipped():
    c = condition("c", coding("icd", "M46.26"))
    c["abatementDateTime"] = "2024-01-01"
    assert excl(c)["infection"].status is Status.ABSENT


def test_order_question_is_not_a_finding():
    sr = service_request("s", text="MRI thoracic spine to evaluate for discitis", authored="2025-06-01")
    assert excl(sr)["infection"].status is Status.ABSENT


def test_condition_after_as_of_ignored():
    assert excl(condition("c", coding("icd", "M46.26"), onset="2025-07-15"))["infection"].status is Status.ABSENT


# --- X3 pregnancy ---


@pytest.mark.parametrize("code", [("icd", "Z33.1"), ("icd", "O09.891"), ("snomed", "77386006")])
def test_pregnancy_by_code(code):
    assert excl(condition("p", coding(*code)))["pregnancy"].status is Status.PRESENT


def test_pregnancy_on_male_is_conflict():
    resources = (patient(gender="male"), condition("p", coding("icd", "Z33.1")))
    fact = map_exclusions(record(*resources), as_of=AS_OF, sex="male")["pregnancy"]
    assert fact.status is Status.CONFLICT and fact.note == "pregnancy coded on a male patient"


def test_pregnancy_text_not_read():
    c = condition("c", text="back pain", notes=["Pregnancy test negative"])
    assert excl(c)["pregnancy"].status is Status.ABSENT


def test_pregnancy_status_observation():
    obs = observation("o", coding("loinc", "82810-3"), effective="2025-06-01")
    obs["valueCodeableConcept"] = concept(coding("snomed", "60001007", "Not pregnant"))
    fact = excl(obs)["pregnancy"]
    assert fact.status is Status.ABSENT and fact.references == ["Observation/o"]


# --- X5 cement / contrast allergy ---


@pytest.mark.parametrize("code", ["427811002", "426722004", "385420005", "293637006"])
def test_cement_allergy_by_snomed(code):
    assert excl(allergy("a", coding("snomed", code)))["cement_allergy"].status is Status.PRESENT


def test_contrast_allergy_by_icd_condition_and_text():
    assert excl(condition("z", coding("icd", "Z91.041")))["cement_allergy"].status is Status.PRESENT
    assert excl(allergy("a", text="IV contrast dye"))["cement_allergy"].status is Status.PRESENT
    assert excl(allergy("b", text="Drug allergy", substance="methyl methacrylate"))["cement_allergy"].is_present


@pytest.mark.parametrize(
    "agent",
    [
        # Allergy lists name the iodinated agent itself, by RxNorm ingredient or brand.
        {"codes": [coding("rxnorm", "5956", "iohexol")]},
        {"text": "Omnipaque 300"},
        {"text": "ISOVUE-370 (iopamidol)"},
        {"codes": [coding("rxnorm", "1298929", "Visipaque")]},
    ],
)
def test_contrast_allergy_named_by_the_agent(agent):
    fact = excl(allergy("a", *agent.get("codes", ()), text=agent.get("text")))["cement_allergy"]
    assert fact.status is Status.PRESENT


@pytest.mark.parametrize("words", ["Iodine", "Shellfish", "shellfish and iodine"])
def test_iodine_or_shellfish_alone_not_contrast_allergy(words):
    assert excl(allergy("a", text=words))["cement_allergy"].status is Status.ABSENT


def test_refuted_and_resolved_allergies_skipped():
    refuted = allergy("r", coding("snomed", "427811002"), verification="refuted")
    resolved = allergy("s", text="contrast media", clinical="resolved")
    assert excl(refuted, resolved)["cement_allergy"].status is Status.ABSENT


def test_contrast_in_report_is_not_allergy():
    assert excl(mri("MRI with and without contrast: marrow edema at T12."))["cement_allergy"].status is Status.ABSENT


# --- X6 coagulopathy, INR ---


@pytest.mark.parametrize("code", [("icd", "D65"), ("icd", "D68.32"), ("snomed", "64779008")])
def test_coagulopathy_by_code(code):
    assert excl(condition("c", coding(*code)))["coagulopathy"].status is Status.PRESENT


def test_inr_latest_on_or_before_as_of():
    out = excl(
        observation("i1", coding("loinc", "6301-6"), effective="2025-06-01", value=2.4, unit="{INR}"),
        observation("i2", coding("loinc", "34714-6"), effective="2025-06-20T08:00:00Z", value=1.1, unit="{INR}"),
        observation("i3", coding("loinc", "6301-6"), effective="2025-07-02", value=3.0, unit="{INR}"),
    )
    fact = out["inr"]
    assert fact.status is Status.PRESENT and fact.value == 1.1
    assert fact.references == ["Observation/i2"] and "2025-06-20" in fact.evidence[0].found
    assert out["coagulopathy"].status is Status.ABSENT  # the mapper never judges the INR


# --- X7 instability ---


def test_instability_by_code_finding_and_text():
    assert excl(condition("c", coding("icd", "M53.2X6")))["instability"].is_present
    assert excl(finding("f", "spinal-instability", True, level="T12"))["instability"].is_present
    assert excl(mri("Unstable burst fracture of L1."))["instability"].is_present


def test_unstable_angina_is_not_spinal_instability():
    c = condition("c", text="Unstable angina", notes=["History of unstable angina, T12 fracture workup"])
    assert excl(c)["instability"].status is Status.ABSENT


def test_negated_instability():
    fact = excl(mri("Stable compression fracture of T12 without instability."))["instability"]
    assert fact.status is Status.ABSENT and fact.evidence


def test_instability_finding_false_against_text_is_conflict():
    fact = excl(finding("f", "spinal-instability", False, level="T12"), mri("Unstable fracture at T12."))
    assert fact["instability"].status is Status.CONFLICT


# --- X8 myelopathy ---


@pytest.mark.parametrize("code", [("icd", "G95.20"), ("icd", "G99.2"), ("snomed", "192970008")])
def test_myelopathy_by_code(code):
    assert excl(condition("c", coding(*code)))["myelopathy"].is_present


def test_myelopathy_text_and_anatomy_only_mention():
    assert excl(mri("Retropulsion with cord compression at T12."))["myelopathy"].is_present
    assert excl(mri("The conus and cauda equina are normal."))["myelopathy"].status is Status.ABSENT
    assert excl(mri("No cord compression."))["myelopathy"].status is Status.ABSENT


# --- X9 neurologic deficit ---


def test_neurologic_deficit_by_finding_and_text():
    assert excl(finding("f", "neurologic-deficit", True))["neurologic_deficit"].is_present
    c = condition("c", text="T12 fracture", notes=["New left foot drop."])
    assert excl(c)["neurologic_deficit"].is_present
    c2 = condition("c", text="T12 fracture", notes=["Bilateral lower extremity weakness"])
    assert excl(c2)["neurologic_deficit"].is_present


def test_neurologic_deficit_negated_and_intact():
    fact = excl(condition("c", text="T12 fracture", notes=["Neurologically intact. No focal deficit."]))
    nd = fact["neurologic_deficit"]
    assert nd.status is Status.ABSENT and nd.references == ["Condition/c"]


def test_generalized_weakness_is_not_a_deficit():
    c = condition("c", text="T12 fracture", notes=["Generalized weakness and fatigue."])
    assert excl(c)["neurologic_deficit"].status is Status.ABSENT


def test_neurologic_deficit_finding_false_is_absent_with_evidence():
    fact = excl(finding("f", "neurologic-deficit", False))["neurologic_deficit"]
    assert fact.status is Status.ABSENT and fact.references == ["Observation/f"]


# --- X10 neural impingement ---


def test_neural_impingement_text():
    assert excl(mri("Foraminal stenosis with L1 nerve root impingement."))["neural_impingement"].is_present
    assert excl(mri("No neural impingement."))["neural_impingement"].status is Status.ABSENT


# --- X1 pain elsewhere ---


def test_pain_at_fracture_level_false_is_present():
    fact = excl(finding("f", "pain-at-fracture-level", False, level="T12"))["pain_elsewhere"]
    assert fact.status is Status.PRESENT and fact.evidence[0].method is Method.CODE


def test_pain_at_fracture_level_true_is_absent_with_evidence():
    fact = excl(finding("f", "pain-at-fracture-level", True, level="T12"))["pain_elsewhere"]
    assert fact.status is Status.ABSENT and fact.references == ["Observation/f"]


def test_pain_attributed_to_stenosis_text():
    c = condition("c", text="low back pain", notes=["Pain attributed to spinal stenosis, not the fracture."])
    fact = excl(c)["pain_elsewhere"]
    assert fact.status is Status.PRESENT and fact.evidence[0].method is Method.TEXT


@pytest.mark.parametrize(
    "note",
    [
        # How clinicians really write it: "Sx" / "symptoms" / "LBP" as the subject, hedge-free
        # "felt to be", and a disc level ("L4-5") between the verb and the generator.
        "Sx are primarily due to severe L4-5 central stenosis w/ neurogenic claudication, not the T12 fx.",
        "Her symptoms are felt to be secondary to L5 radiculopathy rather than the compression fracture.",
        "LBP more likely related to L4-L5 foraminal stenosis than to the healed-appearing fracture.",
    ],
)
def test_pain_attributed_elsewhere_in_clinical_shorthand(note):
    c = condition("c", coding("icd", "M48.062"), notes=[note])
    fact = excl(c)["pain_elsewhere"]
    assert fact.status is Status.PRESENT and any(e.method is Method.TEXT for e in fact.evidence)


@pytest.mark.parametrize(
    "note",
    ["Sx are not due to the L4-5 stenosis.", "Symptoms are not felt to be related to radiculopathy."],
)
def test_pain_not_attributed_elsewhere_is_not_present(note):
    assert excl(condition("c", text="back pain", notes=[note]))["pain_elsewhere"].status is not Status.PRESENT


@pytest.mark.parametrize("code", [("icd", "M54.16"), ("icd", "M48.061"), ("snomed", "72274001")])
def test_radiculopathy_or_stenosis_without_attribution_is_conflict(code):
    fact = excl(condition("r", coding(*code)))["pain_elsewhere"]
    assert fact.status is Status.CONFLICT
    assert fact.note == "radiculopathy/stenosis on record: is the fracture the pain generator?"


def test_radiculopathy_with_pain_at_fracture_finding_is_absent():
    fact = excl(condition("r", coding("icd", "M54.16")), finding("f", "pain-at-fracture-level", True, level="T12"))
    assert fact["pain_elsewhere"].status is Status.ABSENT
    assert set(fact["pain_elsewhere"].references) == {"Observation/f", "Condition/r"}


def test_resolved_radiculopathy_ignored():
    assert excl(condition("r", coding("icd", "M54.16"), clinical="resolved"))["pain_elsewhere"].status is Status.ABSENT


# --- deeper: hedged, historical, provisional, answered questions, thrombophilia ---


def test_question_answered_in_the_same_report_is_absent():
    fact = excl(mri("Indication: r/o discitis. Impression: no discitis. Acute T12 fracture."))["infection"]
    assert fact.status is Status.ABSENT


@pytest.mark.parametrize(
    ("report", "key", "status"),
    [
        # The indication / clinical-history section asks the question the report answers: a hedged
        # mention there ("r/o", "evaluate for", "?") is neither a finding nor an open question.
        ("CLINICAL HISTORY: Back pain after fall. Evaluate for fracture. r/o cord compression.\n"
         "FINDINGS: Acute L1 compression fracture. The spinal canal is patent.", "myelopathy", Status.ABSENT),
        ("INDICATION: ?discitis. FINDINGS: Acute T12 compression fracture.", "infection", Status.ABSENT),
        ("Reason for exam: rule out epidural abscess\nImpression: acute T12 fracture", "infection", Status.ABSENT),
        # ... but an affirmed or hedged mention in the findings still counts.
        ("INDICATION: back pain. FINDINGS: possible discitis at T11-T12.", "infection", Status.CONFLICT),
        ("INDICATION: r/o cord compression. IMPRESSION: cord compression at T12.", "myelopathy", Status.PRESENT),
        # Without section headers nothing is set aside.
        ("Possible discitis. Acute T12 fracture.", "infection", Status.CONFLICT),
    ],
)
def test_question_sections_of_a_report(report, key, status):
    assert excl(mri(report))[key].status is status


def test_history_of_infection_is_for_a_reviewer():
    fact = excl(condition("c", text="back pain", notes=["History of vertebral osteomyelitis (2010)."]))["infection"]
    assert fact.status is Status.CONFLICT and "possible or past" in fact.note


def test_provisional_condition_is_conflict():
    fact = excl(condition("c", coding("icd", "M46.26"), verification="provisional"))["infection"]
    assert fact.status is Status.CONFLICT


def test_ruled_out_is_absent():
    assert excl(mri("Discitis ruled out."))["infection"].status is Status.ABSENT


def test_thrombophilia_is_conflict_not_coagulopathy():
    fact = excl(condition("c", coding("icd", "D68.51")))["coagulopathy"]
    assert fact.status is Status.CONFLICT and "thrombophilia" in fact.note
    both = excl(condition("c", coding("icd", "D68.51")), condition("d", coding("icd", "D65")))["coagulopathy"]
    assert both.status is Status.PRESENT


def test_neuro_finding_true_and_text_negation_present():
    fact = excl(finding("f", "neurologic-deficit", True), condition("c", text="x", notes=["No focal deficit."]))
    assert fact["neurologic_deficit"].status is Status.PRESENT


def test_pain_at_fracture_text_resolves_radiculopathy():
    c = condition("r", coding("icd", "M54.16"), notes=["Pain is concordant with the T12 fracture."])
    fact = excl(c)["pain_elsewhere"]
    assert fact.status is Status.ABSENT


def test_finding_after_as_of_ignored():
    f = finding("f", "pain-at-fracture-level", False, level="T12", effective="2025-07-05")
    assert excl(f)["pain_elsewhere"].status is Status.ABSENT


def test_new_finding_compared_with_prior_is_present():
    assert excl(mri("Compared with prior study, new cord compression at T12."))["myelopathy"].is_present


def test_no_history_of_is_absent():
    c = condition("c", text="back pain", notes=["No history of osteomyelitis."])
    assert excl(c)["infection"].status is Status.ABSENT


@pytest.mark.parametrize("phrase", ["Possible discitis at L1-L2.", "Concern for epidural abscess.",
                                    "Findings suspicious for osteomyelitis."])
def test_hedged_infection_phrases_are_conflicts(phrase):
    assert excl(mri(phrase))["infection"].status is Status.CONFLICT


def test_radiculopathy_condition_in_words_is_conflict():
    fact = excl(condition("r", text="Left L5 radiculopathy"))["pain_elsewhere"]
    assert fact.status is Status.CONFLICT and fact.evidence[0].method is Method.TEXT
    assert excl(condition("n", text="Back pain without radiculopathy"))["pain_elsewhere"].status is Status.ABSENT


@pytest.mark.parametrize(
    ("report", "key", "status"),
    [
        # Shorthand negations must not turn a pertinent negative into an exclusion.
        ("IMPRESSION: L1 fx w/ edema. Neg for discitis/osteomyelitis.", "infection", Status.ABSENT),
        ("IMPRESSION: L1 fx w/ edema. Neg for cord compression.", "myelopathy", Status.ABSENT),
        # An epidural / paraspinal phlegmon is an infection even before it forms an abscess.
        ("IMPRESSION: L1 fx. Epidural phlegmon at L1-2, concerning for early abscess.", "infection",
         Status.PRESENT),
    ],
)
def test_report_shorthand(report, key, status):
    assert excl(mri(report))[key].status is status


@pytest.mark.parametrize(
    ("note", "status"),
    [
        # Exam-note abbreviations: LLE / RLE / BLE (left / right / bilateral lower extremity).
        ("Neuro: LLE weakness 4/5, new since fall.", Status.PRESENT),
        ("Exam: new RLE weakness and numbness in L1 dermatome.", Status.PRESENT),
        ("Pt reports new saddle numbness.", Status.PRESENT),
        ("Neuro: no LLE weakness, sensation intact.", Status.ABSENT),
        ("Neurologically intact. No saddle anesthesia.", Status.ABSENT),
    ],
)
def test_neurologic_deficit_in_exam_shorthand(note, status):
    assert excl(condition("c", text="Back pain", notes=[note]))["neurologic_deficit"].status is status


@pytest.mark.parametrize(
    ("report", "status"),
    [
        ("Severe L1-2 foraminal narrowing impinging the exiting L1 nerve root.", Status.PRESENT),
        ("Retropulsed fragment compressing the traversing L2 nerve root.", Status.PRESENT),
        ("Foramina patent; no fragment impinging the exiting nerve roots.", Status.ABSENT),
    ],
)
def test_neural_impingement_participles(report, status):
    assert excl(mri(report))["neural_impingement"].status is status


"""Non-surgical management, the continuum of care (DXA, osteoporosis program) and anticoagulants."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir_builders import (
    SUBJECT,
    coding,
    concept,
    condition,
    diagnostic_report,
    medication_request,
    observation,
    record,
    service_request,
)

from fhir_vcf.clinical_time import DayRange
from fhir_vcf.facts import Method, Status
from fhir_vcf.mappers.care import map_care

AS_OF = date(2025, 6, 30)
HCPCS = "urn:oid:2.16.840.1.113883.6.285"


def care(*resources):
    return map_care(record(*resources), as_of=AS_OF)


def procedure(id: str, *codings, text: str | None = None, performed: str = "2025-06-10", status: str = "completed",
              notes: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Procedure", "id": id, "status": status, "subject": SUBJECT,
                           "code": concept(*codings, text=text), "performedDateTime": performed}
    if notes:
        out["note"] = [{"text": n} for n in notes]
    return out


def device_request(id: str, *codings, text: str | None = None, authored: str = "2025-06-10") -> dict[str, Any]:
    return {"resourceType": "DeviceRequest", "id": id, "status": "active", "intent": "order", "subject": SUBJECT,
            "codeCodeableConcept": concept(*codings, text=text), "authoredOn": authored}


def statement(id: str, *codings, text: str | None = None, status: str = "active", effective: str = "2025-06-05",
              reference_display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "MedicationStatement", "id": id, "status": status, "subject": SUBJECT,
                           "effectiveDateTime": effective}
    if reference_display:
        out["medicationReference"] = {"reference": "Medication/m1", "display": reference_display}
    else:
        out["medicationCodeableConcept"] = concept(*codings, text=text)
    return out


def administration(id: str, *codings, text: str | None = None, effective: str = "2025-06-05") -> dict[str, Any]:
    return {"resourceType": "MedicationAdministration", "id": id, "status": "completed", "subject": SUBJECT,
            "medicationCodeableConcept": concept(*codings, text=text), "effectiveDateTime": effective}


def care_plan(id: str, *, title: str | None = None, activity: str | None = None, created: str = "2025-06-10"):
    out: dict[str, Any] = {"resourceType": "CarePlan", "id": id, "status": "active", "intent": "plan",
                           "subject": SUBJECT, "created": created}
    if title:
        out["title"] = title
    if activity:
        out["activity"] = [{"detail": {"status": "scheduled", "description": activity}}]
    return out


# --- NSM ---


def test_nsm_unknown_when_nothing_documented():
    fact = care()["nsm"]
    assert fact.status is Status.UNKNOWN


def test_analgesic_by_rxnorm_ingredient():
    fact = care(medication_request("m", coding("rxnorm", "10689", "tramadol"), authored="2025-06-05"))["nsm"]
    assert fact.status is Status.PRESENT and fact.value == ("analgesic",)
    assert fact.evidence[0].method is Method.CODE and "10689" in fact.evidence[0].found


def test_product_code_matched_by_name_and_brand():
    product = medication_request("p", coding("rxnorm", "857005", "Acetaminophen 325 MG / Hydrocodone 5 MG Oral Tablet"),
                                 authored="2025-06-05")
    brand = statement("s", text="Percocet 5/325")
    ref_display = statement("r", reference_display="Aleve 220 mg tablet")
    fact = care(product, brand, ref_display)["nsm"]
    assert fact.value == ("analgesic",)
    assert set(fact.references) == {"MedicationRequest/p", "MedicationStatement/s", "MedicationStatement/r"}
    assert all(e.method is Method.TEXT for e in fact.evidence)


def test_administration_and_not_taken_statement():
    fact = care(administration("a", text="morphine 2 mg IV"), statement("n", text="Tylenol", status="not-taken"))["nsm"]
    assert fact.references == ["MedicationAdministration/a"]


def test_old_completed_analgesic_outside_window_not_nsm():
    old = medication_request("old", coding("rxnorm", "5640", "ibuprofen"), authored="2019-01-01", status="completed")
    fact = care(old)["nsm"]
    assert fact.status is Status.UNKNOWN and "older" in fact.note


def test_old_but_active_analgesic_counts():
    fact = care(medication_request("m", text="oxycodone 5 mg", authored="2024-01-01", status="active"))["nsm"]
    assert fact.value == ("analgesic",)


def test_brace_by_hcpcs_and_text():
    fact = care(device_request("d", coding(HCPCS, "L0456")))["nsm"]
    assert fact.value == ("brace",) and fact.evidence[0].method is Method.CODE
    text_fact = care(procedure("p", text="TLSO fitting"))["nsm"]
    assert text_fact.value == ("brace",) and text_fact.evidence[0].method is Method.TEXT
    out_of_range = care(device_request("x", coding(HCPCS, "L0480")))["nsm"]
    assert out_of_range.status is Status.UNKNOWN


def test_physical_therapy_by_snomed_cpt_and_text():
    assert care(procedure("s", coding("snomed", "91251008")))["nsm"].value == ("physical-therapy",)
    order = service_request("c", coding("cpt", "97162"), authored="2025-06-10")
    assert care(order)["nsm"].value == ("physical-therapy",)
    fact = care(condition("c1", text="back pain", notes=["Started physical therapy twice weekly"]))["nsm"]
    assert fact.value == ("physical-therapy",)


def test_declined_physical_therapy_not_nsm():
    fact = care(condition("c1", text="back pain", notes=["Patient declined physical therapy"]))["nsm"]
    assert fact.status is Status.UNKNOWN


def test_rest_and_conservative_text():
    c = condition("c1", text="T12 fracture", notes=["Bed rest for one week; failed conservative management."])
    fact = care(c)["nsm"]
    assert fact.value == ("rest", "conservative-text")


def test_despite_conservative_in_order_reason():
    sr = service_request("k", coding("cpt", "22513"), authored="2025-06-20",
                         notes=["Severe pain despite 4 weeks of conservative therapy"])
    assert care(sr)["nsm"].value == ("conservative-text",)


def test_anti_osteoporosis_counts_as_nsm_and_program():
    out = care(medication_request("a", coding("rxnorm", "46041", "alendronate"), authored="2025-06-10"))
    assert out["nsm"].value == ("anti-osteoporosis",)
    assert out["osteoporosis_program"].status is Status.PRESENT


def test_nsm_kinds_in_contract_order():
    out = care(
        procedure("p", coding("snomed", "91251008")),
        medication_request("m", text="Tylenol 500 mg", authored="2025-06-05"),
        device_request("d", text="thoracolumbar brace"),
    )
    assert out["nsm"].value == ("analgesic", "brace", "physical-therapy")


# --- continuum of care ---


def test_dxa_by_cpt_loinc_tscore_snomed_and_text():
    assert care(service_request("s", coding("cpt", "77080"), authored="2025-06-10"))["dxa"].is_present
    assert care(procedure("p", coding("snomed", "312681000")))["dxa"].is_present
    assert care(diagnostic_report("r", coding("loinc", "83311-1"), effective="2025-06-10"))["dxa"].is_present
    tscore = observation("t", coding("loinc", "38263-0"), effective="2024-01-10", value=-2.8, unit="{T-score}")
    assert care(tscore)["dxa"].is_present
    fact = care(condition("c", text="osteoporosis", notes=["Referred for DEXA scan"]))["dxa"]
    assert fact.is_present and fact.evidence[0].method is Method.TEXT


def test_dxa_not_from_radiograph_wording_or_negation():
    report = diagnostic_report("x", text="XR thoracic spine", effective="2025-06-10",
                               conclusion="Diffusely decreased bone density. T12 compression fracture.")
    c = condition("c", text="osteoporosis", notes=["No DXA on file."])
    fact = care(report, c)["dxa"]
    assert fact.status is Status.UNKNOWN


def test_dxa_not_done_procedure_skipped():
    assert care(procedure("p", coding("cpt", "77080"), status="not-done"))["dxa"].status is Status.UNKNOWN


def test_program_by_rxnorm_and_by_name():
    zol = medication_request("z", coding("rxnorm", "77655"), authored="2025-06-10")
    assert care(zol)["osteoporosis_program"].is_present
    fact = care(medication_request("d", text="Prolia 60 mg SC every 6 months", authored="2025-06-10"))[
        "osteoporosis_program"
    ]
    assert fact.is_present and "denosumab" in fact.evidence[0].found
    assert care(statement("t", text="teriparatide 20 mcg daily"))["osteoporosis_program"].is_present


def test_program_by_care_plan_and_text():
    assert care(care_plan("cp", activity="Fracture liaison service follow-up"))["osteoporosis_program"].is_present
    sr = service_request("e", text="Osteoporosis education", authored="2025-06-10")
    assert care(sr)["osteoporosis_program"].is_present
    c = condition("c", text="osteoporosis", notes=["Referred to bone health clinic"])
    assert care(c)["osteoporosis_program"].is_present


def test_continuum_unknown_when_absent():
    out = care(medication_request("m", text="tramadol", authored="2025-06-05"))
    assert out["dxa"].status is Status.UNKNOWN and out["osteoporosis_program"].status is Status.UNKNOWN


def test_order_after_as_of_ignored():
    late = medication_request("a", coding("rxnorm", "46041"), authored="2025-07-10")
    assert care(late)["osteoporosis_program"].status is Status.UNKNOWN


# --- anticoagulants ---


def test_anticoagulants_context_only():
    out = care(
        medication_request("w", coding("rxnorm", "11289", "warfarin"), authored="2025-06-01"),
        statement("e", text="Eliquis 5 mg BID"),
    )
    fact = out["anticoagulants"]
    assert fact.status is Status.PRESENT and fact.value == ("apixaban", "warfarin")
    assert "context only" in fact.note
    assert out["nsm"].status is Status.UNKNOWN  # an anticoagulant is not NSM


def test_anticoagulants_absent_when_none():
    fact = care(medication_request("m", text="tramadol", authored="2025-06-05"))["anticoagulants"]
    assert fact.status is Status.ABSENT and fact.value is None


def test_enoxaparin_is_not_heparin():
    fact = care(medication_request("l", text="enoxaparin 40 mg SC daily", authored="2025-06-05"))["anticoagulants"]
    assert fact.value == ("enoxaparin",)


# --- deeper: words that look like NSM or DXA but are not, dates, other places codes live ---


def test_knee_brace_and_ankle_foot_orthosis_not_spinal_brace():
    c = condition("c", text="T12 fracture", notes=["Wears a knee brace; uses an ankle-foot orthosis."])
    assert care(c)["nsm"].status is Status.UNKNOWN


def test_considered_physical_therapy_not_nsm():
    c = condition("c", text="T12 fracture", notes=["Consider physical therapy if pain persists."])
    assert care(c)["nsm"].status is Status.UNKNOWN


def test_nsm_evidence_carries_the_date():
    fact = care(medication_request("m", coding("rxnorm", "161"), authored="2025-06-03"))["nsm"]
    assert fact.evidence[0].found.endswith("2025-06-03")


def test_care_plan_activity_code_and_drug_in_note():
    plan = {"resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan", "subject": SUBJECT,
            "created": "2025-06-10",
            "activity": [{"detail": {"status": "scheduled", "code": concept(coding("snomed", "91251008"))}}]}
    assert care(plan)["nsm"].value == ("physical-therapy",)
    note = condition("c", text="osteoporosis", notes=["Start alendronate 70 mg weekly."])
    out = care(note)
    assert out["osteoporosis_program"].is_present and out["nsm"].value == ("anti-osteoporosis",)


def test_dxa_by_dicom_bmd_modality():
    study = {"resourceType": "ImagingStudy", "id": "s", "status": "available", "subject": SUBJECT,
             "started": "2025-05-01", "modality": [coding("http://dicom.nema.org/resources/ontology/DCM", "BMD")]}
    fact = care(study)["dxa"]
    assert fact.is_present and fact.references == ["ImagingStudy/s"]


def test_contained_medication_matched_by_code():
    req = medication_request("m", authored="2025-06-05")
    del req["medicationCodeableConcept"]
    req["contained"] = [{"resourceType": "Medication", "id": "med",
                         "code": concept(coding("rxnorm", "73056", "risedronate"))}]
    req["medicationReference"] = {"reference": "#med"}
    assert care(req)["osteoporosis_program"].is_present


def test_medication_resource_in_the_record_matched_by_code_and_name():
    """Real feeds send a product-coded Medication beside the order, referenced with no display."""
    coded = medication_request("m1", authored="2025-06-05")
    del coded["medicationCodeableConcept"]
    coded["medicationReference"] = {"reference": "Medication/alendronate-70"}
    named = medication_request("m2", authored="2025-06-05")
    del named["medicationCodeableConcept"]
    named["medicationReference"] = {"reference": "Medication/apap-500"}
    out = care(
        coded,
        named,
        {"resourceType": "Medication", "id": "alendronate-70", "code": concept(coding("rxnorm", "46041"))},
        {"resourceType": "Medication", "id": "apap-500", "code": concept(text="Acetaminophen 500 MG Oral Tablet")},
    )
    assert out["osteoporosis_program"].references == ["MedicationRequest/m1"]
    assert out["nsm"].is_present and "analgesic" in out["nsm"].value


def test_dxa_from_a_stated_t_score():
    c = condition("c", text="osteoporosis", notes=["BMD T-score -2.7 at the lumbar spine."])
    assert care(c)["dxa"].is_present


def test_flu_like_symptoms_abbreviation_is_not_a_program():
    c = condition("c", text="back pain", notes=["FLS last week, resolved."])
    assert care(c)["osteoporosis_program"].status is Status.UNKNOWN


def test_nsm_start_is_the_earliest_dated_nsm_in_the_window():
    out = care(
        medication_request("a", coding("rxnorm", "161"), authored="2025-06-03"),
        procedure("p", coding("snomed", "91251008"), performed="2025-05-20"),
        medication_request("old", coding("rxnorm", "5640"), authored="2019-01-01", status="completed"),
    )
    assert out["nsm_start"].value == DayRange.day(date(2025, 5, 20))
    assert out["nsm_start"].references == ["Procedure/p"]
    assert care()["nsm_start"].status is Status.UNKNOWN


def test_nsm_dated_by_a_month_starts_within_that_month():
    """Acetaminophen "2025-05" (1-31 May) and physical therapy on 20 May: the earliest NSM began between
    1 May and 20 May."""
    out = care(
        medication_request("a", coding("rxnorm", "161"), authored="2025-05"),
        procedure("p", coding("snomed", "91251008"), performed="2025-05-20"),
    )
    assert out["nsm_start"].value == DayRange(date(2025, 5, 1), date(2025, 5, 20))

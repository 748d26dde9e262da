"""Non-surgical management, the continuum of care (DXA, osteoporosis program) and anticoagulants."""

from __future__ import annotations

from datetime import date
from pathlib import Path
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
from fhir_vcf.facts import Coding, Method, Status
from fhir_vcf.mappers import care as care_module
from fhir_vcf.mappers import common
from fhir_vcf.mappers.care import map_care
from fhir_vcf.mappers.visible import visible

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


# --- the coded services, each concept asked once (issue 11) ---


def _plain_coded_services(view: Any) -> list[tuple[Any, str, Any, str | None, bool]]:
    """`care._coded_services` as first written: every coding of every resource done asked of both readers."""
    found = []

    def hit(resource: Any, rtype: str, path: str, c: Any) -> None:
        kind, is_dxa = care_module._nsm_code(rtype, c), care_module._dxa_code(rtype, c)
        if kind is not None or is_dxa:
            found.append((resource, path, c, kind, is_dxa))

    for resource in view.of_type("Procedure", "ServiceRequest", "DeviceRequest", "DiagnosticReport", "Observation"):
        if care_module._not_done(resource):
            continue
        rtype = resource.get_resource_type()
        concept_, element = ((resource.codeCodeableConcept, "codeCodeableConcept") if rtype == "DeviceRequest"
                             else (resource.code, "code"))
        for c, path in common.codings(concept_, element):
            hit(resource, rtype, path, c)
        if rtype == "Procedure":
            for i, used in enumerate(resource.usedCode or []):
                for c, path in common.codings(used, f"usedCode[{i}]"):
                    hit(resource, rtype, path, c)
    for plan in view.of_type("CarePlan"):
        if care_module._not_done(plan):
            continue
        for i, activity in enumerate(plan.activity or []):
            if activity.detail is not None:
                for c, path in common.codings(activity.detail.code, f"activity[{i}].detail.code"):
                    hit(plan, "CarePlan", path, c)
    for study in view.of_type("ImagingStudy"):
        if care_module._not_done(study):
            continue
        modalities = [(f"modality[{i}]", m) for i, m in enumerate(study.modality or [])]
        modalities += [(f"series[{i}].modality", s.modality) for i, s in enumerate(study.series or [])]
        for path, modality in modalities:
            if modality is not None and modality.code:
                hit(study, "ImagingStudy", path,
                    Coding(common.system_alias(modality.system), modality.code, modality.display or ""))
    return found


def _shared_concepts_record() -> Any:
    """Resources sharing their concepts (as a feed's repeat every lab panel's), some done, some not, one
    concept in two types that the readers tell apart."""
    dxa = concept(coding("cpt", "77080"), coding("snomed", "312681000"))
    pt = concept(coding("cpt", "97161"))
    brace = concept(coding(HCPCS, "L0456"))
    lab = concept(coding("loinc", "58410-2"))
    plan = care_plan("cp", activity="PT")
    plan["activity"] = [{"detail": {"status": "scheduled", "code": pt}}, {"detail": {"status": "scheduled",
                                                                                     "code": brace}}]
    used = procedure("u", coding("cpt", "97161"))
    used["usedCode"] = [brace, lab, brace]
    return record(
        procedure("p1", coding("cpt", "77080"), coding("snomed", "312681000")),
        {**procedure("p2", coding("cpt", "77080")), "code": dxa},
        {**procedure("p3", coding("cpt", "77080"), status="not-done"), "code": dxa},
        used,
        {**service_request("s1", text="PT"), "code": pt},
        {**service_request("s2", text="PT", status="revoked"), "code": pt},
        {**device_request("d1"), "codeCodeableConcept": brace},
        {**device_request("d2"), "codeCodeableConcept": pt},  # a device request's PT code is no NSM
        *(diagnostic_report(f"lab{i}", effective="2025-06-01", conclusion="Normal.") | {"code": lab}
          for i in range(3)),
        diagnostic_report("dxa", effective="2025-06-01") | {"code": concept(coding("loinc", "83311-1"))},
        diagnostic_report("cpt", effective="2025-06-01") | {"code": dxa},  # a report's CPT code is no DXA
        plan,
    )


def test_coded_services_are_the_readers_asked_of_every_coding():
    """Each concept is asked of the readers once per type and element, and a resource not done gives
    nothing: the same codes, resources and order as asking every coding of every resource done."""
    from fhir_vcf.sources.files import bundle_files, load_file

    root = Path(__file__).resolve().parents[1]
    records = [_shared_concepts_record(),
               *(r for p in bundle_files([root / "samples", root / "tests" / "data"]) for r in load_file(p))]
    hits = 0
    for rec in records:
        view = visible(rec, AS_OF)
        found = list(care_module._coded_services(view))
        assert found == _plain_coded_services(view)
        assert all(a[0] is b[0] for a, b in zip(found, _plain_coded_services(view), strict=True))
        hits += len(found)
    assert len(list(care_module._coded_services(visible(records[0], AS_OF)))) == 12
    assert hits > 12


def test_not_done_resources_give_no_narrative():
    """Whether a resource was done is read when one of its texts names a treatment: after a text that
    names none, as for its first."""
    done = procedure("p", text="Follow-up", notes=("Fitted with a TLSO brace.",))
    assert care(done)["nsm"].status is Status.PRESENT
    not_done = procedure("p", text="Follow-up", status="not-done", notes=("Fitted with a TLSO brace.",))
    assert care(not_done)["nsm"].status is Status.UNKNOWN
    revoked = service_request("s", text="Physical therapy referral", status="revoked")
    assert care(revoked)["nsm"].status is Status.UNKNOWN

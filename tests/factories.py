"""Test fixtures: an eligible-baseline FractureFacts to mutate with dataclasses.replace.

Baseline (cms-lcd-pva, as of 2025-06-30): osteoporotic M80.08XA fracture at T12, onset 2025-06-02
(28 days: acute), marrow edema on MRI, outpatient NRS 6 -> 7 (worsening) despite analgesic + brace,
height loss 30 %, DXA and an alendronate order documented, every exclusion read and absent.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from fhir_vcf import clinical_time
from fhir_vcf.clinical_time import DayRange
from fhir_vcf.facts import Coding, Evidence, Fact, Fracture, FractureFacts, Method, PainScore, ProcedureRequest

AS_OF = date(2025, 6, 30)
ONSET = date(2025, 6, 2)


def ev(ref: str, element: str = "code", found: str = "", method: Method = Method.CODE) -> Evidence:
    return Evidence(ref, element, method, found)


def fracture(level: str = "T12", *, ref: str | None = None, kind: str = "osteoporotic", code: str = "M80.08XA",
             onset: date | None = ONSET, levels: tuple[str, ...] | None = None, system: str = "icd-10-cm",
             onset_element: str = "onsetDateTime") -> Fracture:
    ref = ref or f"Condition/vcf-{level.lower()}"
    seventh = code[7] if system == "icd-10-cm" and len(code) == 8 else ""
    return Fracture(reference=ref, kind=kind, codes=(Coding(system, code),) if code else (),
                    levels=levels if levels is not None else (level,),
                    onset=DayRange.day(onset) if onset is not None else None, onset_element=onset_element,
                    method=Method.CODE, seventh=seventh, evidence=(ev(ref, "code", f"{system} {code}"),))


def score(value: float, when: date, *, setting: str = "ambulatory", scale: str = "NRS", ref: str | None = None,
          encounter: str | None = "Encounter/amb-1") -> PainScore:
    return PainScore(reference=ref or f"Observation/pain-{when.isoformat()}", value=value, scale=scale,
                     when=clinical_time.parse(datetime(when.year, when.month, when.day, 10, 0, tzinfo=UTC)),
                     setting=setting, encounter=encounter)


def absent(ref: str = "Patient/123") -> Fact:
    return Fact.absent(ev(ref, "record", "no sign"))


def per_level(levels: tuple[str, ...], onset: date = ONSET, acuity: str = "marrow-edema",
              height: float | None = 30.0) -> dict[str, Any]:
    return {
        "onset": {lv: Fact.present(DayRange.day(onset), ev(f"Condition/vcf-{lv.lower()}", "onsetDateTime",
                                                           onset.isoformat()))
                  for lv in levels},
        "acuity": {lv: Fact.present(acuity, ev("Observation/edema-" + lv.lower(), "valueBoolean", acuity))
                   for lv in levels},
        "height_loss": {lv: Fact.present(height, ev("Observation/height-" + lv.lower(), "valueQuantity",
                                                     f"{height}%"))
                        for lv in levels} if height is not None else {},
    }


def request(*levels: str, technique: str = "kyphoplasty", cpt: tuple[str, ...] = (), deleted: tuple[str, ...] = (),
            count: int | None = None) -> ProcedureRequest:
    return ProcedureRequest(reference="ServiceRequest/sr-1", status="draft", technique=technique,
                            levels=tuple(levels), level_count=len(levels) if count is None else count, cpt=cpt,
                            method=Method.CODE, deleted_codes=deleted, reasons=(),
                            evidence=(ev("ServiceRequest/sr-1", "code", technique),))


def eligible(**changes: Any) -> FractureFacts:
    """The eligible baseline; keyword changes are applied with dataclasses.replace."""
    base = FractureFacts(
        patient="Patient/123",
        as_of=AS_OF,
        sex="female",
        birth_date=date(1948, 3, 1),
        fractures=(fracture("T12"),),
        **per_level(("T12",)),
        progression=absent(),
        kyphosis=Fact.present(True, ev("Condition/kyphosis", "code", "M40.209")),
        vertebra_plana=absent(),
        intravertebral_cleft=absent(),
        healed=absent(),
        osteoporosis=Fact.present(True, ev("Condition/op", "code", "M81.0")),
        malignancy=absent(),
        myeloma=absent(),
        pain_scores=(score(6, date(2025, 6, 5)), score(7, date(2025, 6, 25))),
        rdq=Fact.present(15, ev("Observation/rdq", "valueInteger", "15")),
        nsm=Fact.present(("analgesic", "brace"), ev("MedicationRequest/apap", "medicationCodeableConcept", "161")),
        dxa=Fact.present(True, ev("ServiceRequest/dxa", "code", "CPT 77080")),
        osteoporosis_program=Fact.present(True, ev("MedicationRequest/alendronate", "medication", "46041")),
        pain_elsewhere=absent(),
        infection=absent(),
        pregnancy=absent(),
        cement_allergy=absent(),
        coagulopathy=absent(),
        inr=Fact.present(1.1, ev("Observation/inr", "valueQuantity", "1.1")),
        anticoagulants=absent(),
        instability=absent(),
        myelopathy=absent(),
        neurologic_deficit=absent(),
        neural_impingement=absent(),
        retropulsion=absent(),
    )
    return replace(base, **changes)


def two_levels(**changes: Any) -> FractureFacts:
    """Baseline with fractures at T12 and L1 and a kyphoplasty request for both."""
    levels = ("T12", "L1")
    base = eligible(fractures=(fracture("T12"), fracture("L1")), **per_level(levels),
                    request=request(*levels), requests=(request(*levels),))
    return replace(base, **changes)

"""From a PatientRecord to FractureFacts: `map_record` assembles the fact families.

Order matters only where one family needs another: the requests first (their reasons and levels),
then the fracture Conditions, then imaging (which may give a lone unleveled fracture its level and
can contradict an onset), then the context families of `symptoms`, `care` and `exclusions`.
Every family reads one `VisibleRecord`, built here once: the record as of the as-of date, each
resource's clinical date read once for all of them. Per-level facts are bucketed, never rescanned.
"""

from __future__ import annotations

from datetime import date

from fhir_vcf.facts import Evidence, FractureFacts, Method, Status
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import common
from fhir_vcf.mappers.care import map_care
from fhir_vcf.mappers.codes.loinc import DXA_REPORT
from fhir_vcf.mappers.describe import describe_resources, patient_identifiers, patient_name
from fhir_vcf.mappers.exclusions import map_exclusions
from fhir_vcf.mappers.fractures import context_text, onset_facts, scan_conditions, with_levels
from fhir_vcf.mappers.imaging import scan_imaging
from fhir_vcf.mappers.imaging_facts import imaging_facts, retropulsion_fact
from fhir_vcf.mappers.requests import map_requests
from fhir_vcf.mappers.symptoms import map_symptoms
from fhir_vcf.mappers.visible import VisibleRecord
from fhir_vcf.record import AFTER_AS_OF, PatientRecord

__all__ = ["VisibleRecord", "map_record"]


def map_record(record: PatientRecord, *, as_of: date, request: str | None = None) -> FractureFacts:
    """The FractureFacts of one patient as of one date (see `fhir_vcf.facts.FractureFacts`).

    `request` names the ServiceRequest being judged ("ServiceRequest/x"); by default the latest
    draft/active augmentation request. When the named one is not an augmentation request in the
    record, the default applies.
    """
    view = VisibleRecord(record, as_of)
    patient = record.patient_resource
    sex = getattr(patient, "gender", None) if patient is not None else None
    birth = common.when(patient, getattr(patient, "birthDate", None), "birthDate") if patient is not None else None
    birth_date = birth.day if birth is not None else None

    requests, judged = map_requests(view, request=request)
    reasons = frozenset(r for req in requests for r in req.reasons)
    scan = scan_conditions(view, reasons=reasons)
    img = scan_imaging(view)
    for ref, element, value in img.texts:
        # Whether the report is a DXA is asked only when its text names osteoporosis.
        context_text(scan, ref, element, value,
                     conditions=lambda r=ref, e=element: e == "conclusion" and _is_dxa(view, r))

    fractures = list(scan.fractures)
    if len(fractures) == 1 and not fractures[0].levels:
        levels, evidence = img.fracture_levels()
        if levels:
            note = Evidence(
                fractures[0].reference,
                "bodySite",
                Method.TEXT,
                f"no level in the Condition; levels {', '.join(levels)} taken from imaging "
                "(the record holds this one fracture Condition only)",
            )
            fractures[0] = with_levels(fractures[0], levels, [note, *evidence])

    fracture_levels = sort_levels(level for f in fractures for level in f.levels)
    keys = sort_levels([*fracture_levels, *(judged.levels if judged else ())])
    single_level = keys[0] if len(keys) == 1 else None

    onset = onset_facts(fractures, keys, img.seen_events())
    # The earliest day each agreed onset can be: imaging read before it cannot speak for the fracture.
    agreed = {lv: f.value.first for lv, f in onset.items() if f.status is Status.PRESENT and f.value is not None}
    found = imaging_facts(img, keys, single_level, agreed)
    context = scan.context_facts()
    retropulsion = retropulsion_fact(found["retropulsion_signals"], scan.unstable_burst, found["retropulsion_open"])

    # The episode opens at the earliest day a clinical onset can be. A recordedDate is when the diagnosis
    # was entered, often after the visits that scored the pain: it never opens the episode (the default
    # window does), nor does an onset with no earlier bound (an onset period with an end only).
    earliest_onset = min(
        (f.onset.first for f in fractures
         if f.onset is not None and f.onset_element != "recordedDate" and f.onset.first != date.min), default=None
    )
    symptoms = map_symptoms(view, as_of=as_of, episode_start=earliest_onset)
    care = map_care(view, as_of=as_of)
    exclusions = map_exclusions(view, as_of=as_of, sex=sex)

    return FractureFacts(
        patient=record.patient,
        as_of=as_of,
        sex=sex,
        birth_date=birth_date,
        fractures=tuple(fractures),
        onset=onset,
        acuity=found["acuity"],
        acuity_unassigned=found["acuity_unassigned"],
        height_loss=found["height_loss"],
        progression=found["progression"],
        kyphosis=context["kyphosis"],
        vertebra_plana=found["vertebra_plana"],
        intravertebral_cleft=found["intravertebral_cleft"],
        healed=context["healed"],
        osteoporosis=context["osteoporosis"],
        malignancy=context["malignancy"],
        myeloma=context["myeloma"],
        pain_scores=tuple(symptoms.get("pain_scores", ())),
        rdq=symptoms["rdq"],
        nsm=care["nsm"],
        nsm_start=care["nsm_start"],
        dxa=care["dxa"],
        osteoporosis_program=care["osteoporosis_program"],
        anticoagulants=care["anticoagulants"],
        pain_elsewhere=exclusions["pain_elsewhere"],
        infection=exclusions["infection"],
        pregnancy=exclusions["pregnancy"],
        cement_allergy=exclusions["cement_allergy"],
        coagulopathy=exclusions["coagulopathy"],
        inr=exclusions["inr"],
        instability=exclusions["instability"],
        myelopathy=exclusions["myelopathy"],
        neurologic_deficit=exclusions["neurologic_deficit"],
        neural_impingement=exclusions["neural_impingement"],
        retropulsion=retropulsion,
        requests=requests,
        request=judged,
        imaging=found["imaging"],
        patient_name=patient_name(patient),
        patient_identifiers=patient_identifiers(patient),
        resources=describe_resources(view),
        events=tuple(sorted(dict.fromkeys([*img.events, *care["events"]]), key=lambda e: (e.day, e.kind, e.label))),
        skipped=_skipped(record, view),
    )


def _skipped(record: PatientRecord, view: VisibleRecord) -> dict[str, int]:
    """What the evaluation did not read, by reason: what the sources and the loader set aside
    (`PatientRecord.skipped`) and what the as-of date hides."""
    counts = dict(record.skipped)
    hidden = view.hidden()
    if hidden:
        counts[AFTER_AS_OF] = counts.get(AFTER_AS_OF, 0) + hidden
    return dict(sorted(counts.items()))


def _is_dxa(view: VisibleRecord, ref: str) -> bool:
    """A DXA report's conclusion ("consistent with osteoporosis") is a diagnosis; other reports'
    "osteoporotic" describes bone (LOINC 83311-1 DXA report; input profile, "continuum of care")."""
    report = view.resolve(ref)
    return any(c.system == "loinc" and c.code == DXA_REPORT for c, _ in common.codings(getattr(report, "code", None)))

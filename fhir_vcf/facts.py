"""Fracture facts: what the mappers found in a patient's record, and where and how they found it.

This module is the contract between `fhir_vcf/mappers/` (which read FHIR and fill these in) and
`fhir_vcf/rules/` (which judge them and never see FHIR JSON). Every fact carries a status
(present / absent / unknown / conflict) and the evidence behind it, so that each criterion in an
answer can say which resource and element it rests on and whether a code or text said so.

Status meanings, for every fact:
- PRESENT: the record shows the thing (value says what).
- ABSENT: the record shows it is not there (a negated finding, an MRI without edema, a normal INR),
  or, for conditions such as infection, the record was read and holds no sign of it.
- UNKNOWN: the record is silent where an answer is needed (no pain score, no advanced imaging).
- CONFLICT: sources disagree; `note` says how, `evidence` holds both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import date
from enum import StrEnum
from typing import Generic, TypeVar

from fhir_vcf.clinical_time import DayRange, When
from fhir_vcf.frozen import frozen
from fhir_vcf.levels import sort_levels

V = TypeVar("V")


class Status(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"
    CONFLICT = "conflict"


class Method(StrEnum):
    """How a fact was found: from a code (trustworthy) or parsed from text (worth a second look)."""

    CODE = "code"
    TEXT = "text"


@frozen
class Evidence:
    """One place in the record that supports a fact.

    reference: the resource, as "Type/id" (or the fullUrl when it has no id), e.g. "Condition/vcf-1".
    element:   the element path read, e.g. "onsetDateTime", "code.coding[0]", "conclusion".
    method:    code or text.
    found:     what was seen, readable by a clinician: "ICD-10-CM M80.08XA", "'marrow edema at T12'".
    """

    reference: str
    element: str
    method: Method
    found: str = ""


@frozen
class Fact(Generic[V]):
    status: Status
    value: V | None = None
    evidence: tuple[Evidence, ...] = ()
    note: str = ""

    @classmethod
    def present(cls, value: V, *evidence: Evidence, note: str = "") -> Fact[V]:
        return cls(Status.PRESENT, value, tuple(evidence), note)

    @classmethod
    def absent(cls, *evidence: Evidence, value: V | None = None, note: str = "") -> Fact[V]:
        return cls(Status.ABSENT, value, tuple(evidence), note)

    @classmethod
    def unknown(cls, note: str = "", *evidence: Evidence) -> Fact[V]:
        return cls(Status.UNKNOWN, None, tuple(evidence), note)

    @classmethod
    def conflict(cls, note: str, *evidence: Evidence, value: V | None = None) -> Fact[V]:
        return cls(Status.CONFLICT, value, tuple(evidence), note)

    @property
    def is_present(self) -> bool:
        return self.status is Status.PRESENT

    @property
    def references(self) -> list[str]:
        """Unique resource references behind this fact, in the order found."""
        return list(dict.fromkeys(e.reference for e in self.evidence))


@frozen
class Coding:
    """A code the mappers matched, with the system reduced to a short vocabulary name.

    system: "icd-10-cm" | "snomed" | "loinc" | "rxnorm" | "cpt" | "hcpcs" | "dicom" | "finding"
    (the local `urn:fhir-vcf:finding` system) | "text" for a concept recognised in free text.
    """

    system: str
    code: str
    display: str = ""


@frozen
class Fracture:
    """One vertebral fracture Condition (current: not entered-in-error, refuted or resolved).

    kind: what its code or text says it is, before any policy judges it:
      "osteoporotic" (M80.08X-/M80.88X-, SNOMED osteoporotic collapse, text "osteoporotic"/"insufficiency"),
      "pathologic" (M84.58X-, SNOMED 866087009, text "pathologic"/"metastatic"),
      "traumatic" (S22.0-/S32.0-), "collapsed-nec" (M48.5-),
      "compression" (SNOMED 42942008 or text "compression fracture" with no etiology),
      "hemangioma" / "other" for non-osteoporotic, non-malignant indications.
    levels: head to foot; empty when the Condition names no level.
    onset: the days the clinical onset can be, as written (`fhir_vcf.clinical_time.DayRange`): one day
      for a complete date, a month for "2025-04", a year for "2025", the ages' days for onsetAge /
      onsetRange (with the birth date), "on or before" for an onsetPeriod with an end only. None when
      no onset can be read.
    onset_element: which element gave `onset` ("onsetDateTime", "onsetPeriod.start", "onsetPeriod.end",
      "onsetAge", "onsetRange", "onsetString", "recordedDate" when only the recorded date was
      available - the rules flag that). Set with `onset` None when an onset is documented but gives
      no date (onsetString "3 weeks ago", onsetAge with no birth date): the recorded date is then
      not used in its place.
    onset_note: why a documented onset gave no date, quoting it ("" otherwise).
    seventh: the ICD-10-CM 7th character ("A", "S", "D", "G", "K", "P") when coded, else "".
    """

    reference: str
    kind: str
    codes: tuple[Coding, ...]
    levels: tuple[str, ...]
    onset: DayRange | None
    onset_element: str
    method: Method
    seventh: str = ""
    evidence: tuple[Evidence, ...] = ()
    onset_note: str = ""


@frozen
class PainScore:
    """A pain intensity score on a 0-10 scale (VAS in mm is divided by 10 by the mapper).

    setting: "hospitalized" (encounter class IMP/ACUTE/NONAC), "ambulatory" (AMB/EMER/VR/HH),
      "observation" (OBSENC: needs review), "unknown" (no encounter found).
    when: when it was taken, as an interval of instants (`fhir_vcf.clinical_time.When`): scores are
      ordered by instant, offsets included, and two scores whose intervals overlap have no known order.
    """

    reference: str
    value: float
    scale: str  # "NRS" | "VAS"
    when: When
    setting: str
    encounter: str | None = None
    level: str | None = None  # the level the score was taken for, when stated


@frozen
class ProcedureRequest:
    """A vertebral-augmentation ServiceRequest (in the record, or a CDS Hooks draft order).

    technique: "kyphoplasty" | "vertebroplasty" | "unspecified" (e.g. "vertebral augmentation").
    levels: from bodySite / text, head to foot; level_count from levels, or from CPT first-level +
      add-on quantity when no level is named.
    cpt: the CPT codes on the request; deleted_codes: retired codes received (22520-22525, 72291,
      72292) that must be rejected with a clear message.
    """

    reference: str
    status: str
    technique: str
    levels: tuple[str, ...]
    level_count: int
    cpt: tuple[str, ...]
    method: Method
    deleted_codes: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # reasonReference targets, e.g. "Condition/vcf-1"
    authored: date | None = None
    evidence: tuple[Evidence, ...] = ()


@frozen
class ResourceLabel:
    """How a person names a resource cited as evidence, and its clinical date.

    So that an explanation reads "MRI lumbar spine, 2025-06-09: 'marrow edema at L1'" rather than a
    bare `DiagnosticReport/rpt-12`: label is the resource's own words (code text, a medication name,
    "clinic visit" for an ambulatory Encounter), day its clinical date (None when undated).
    """

    label: str
    day: date | None = None


@frozen
class EpisodeEvent:
    """Something dated in the fracture episode that a person places on a timeline.

    kind: "imaging" (a study or an imaging report), "treatment" (non-surgical management: a drug,
      a brace, physical therapy, rest), "bone-health" (a DXA referral or result, an osteoporosis
      program). Onsets, pain scores and augmentation orders have their own facts.
    label: readable words ("MRI lumbar spine", "oxycodone", "physical therapy").
    detail: a short qualifier (the imaging modality "MR", the NSM kind "analgesic").
    """

    kind: str
    day: date
    reference: str
    label: str
    detail: str = ""


@frozen
class FractureFacts:
    """Everything the rules may read about one patient, as of one date.

    Per-level facts (`onset`, `acuity`, `height_loss`) are keyed by level label. A key exists for
    every fracture level and every requested level; a finding that names no level is attached to
    the fracture level only when the record has exactly one, otherwise it stays unattributed in
    `acuity_unassigned` and the levels remain UNKNOWN.

    Value conventions:
    - onset[level]: Fact[DayRange] (one day, or the range a partial date / an age names; the rules
      decide the fracture age only when the whole range falls on one side of a threshold); CONFLICT
      when sources for that level disagree (two onsets more than 14 days apart, or a radiograph/CT
      showing the fracture before the recorded onset); the note says "recorded date used, no onset
      documented" when only recordedDate was available.
    - acuity[level]: Fact[str]; PRESENT with value "marrow-edema" or "increased-uptake"; ABSENT with
      value "no-edema" (advanced imaging without edema/uptake, or "healed", "chronic", "sclerotic");
      UNKNOWN with value "radiograph-only" (DX/CR/CT shows the fracture only) or None (no imaging).
    - height_loss[level]: Fact[float] percent (largest reported); Genant words map to the lower
      bound of their band so that we never invent a number beyond what the text supports
      (moderate -> 26, severe -> 41, mild -> 20).
    - progression, kyphosis, retropulsion, vertebra_plana, intravertebral_cleft: Fact[bool].
    - pain_scores: all scores in the fracture episode (on or after the earliest fracture onset, or
      the last 12 weeks when no onset is known) and not after as_of, oldest first.
    - rdq: Fact[int] latest Roland-Morris total.
    - nsm: Fact[tuple[str, ...]] the kinds of non-surgical management found: "analgesic",
      "anti-osteoporosis", "brace", "physical-therapy", "rest", "conservative-text".
    - nsm_start: Fact[DayRange] the days the earliest dated NSM counted can have begun (one day, or a
      range when its date is a month or a year), for policies that require a duration.
    - dxa, osteoporosis_program: Fact[bool] (the two halves of the continuum of care).
    - osteoporosis: Fact[bool]; malignancy: Fact[tuple[str, ...]] of neoplasm codes or text terms;
      myeloma: Fact[bool].
    - exclusion facts, all Fact[bool], PRESENT = the exclusion applies, ABSENT = record read and no
      sign of it (the usual case), CONFLICT = contradicting sources (e.g. pregnancy on a male):
      pain_elsewhere (X1), infection (X2), pregnancy (X3), cement_allergy (X5),
      coagulopathy (X6: a coded coagulopathy; see also `inr`),
      instability (X7), myelopathy (X8), neurologic_deficit (X9), neural_impingement (X10),
      retropulsion (X11, shared with the fact above).
    - inr: Fact[float] the latest INR (LOINC 6301-6, 34714-6, 38875-1) on or before as_of; PRESENT
      with the number; UNKNOWN when none. The limit (e.g. > 1.5) is the policy's, not the mapper's.
    - anticoagulants: context only (an anticoagulant alone is not a coagulopathy).
    - healed: Fact[bool] an "old healed fracture" code/text (SNOMED 307136000, Z87.310).
    - requests: every augmentation request found; request: the one being judged (the CDS Hooks
      selection, else the latest draft/active one), None when there is none.
    - imaging: short readable lines for the studies seen ("MR 2025-06-05 (ImagingStudy/mri-1), STIR").
    - patient_name, patient_identifiers: as the Patient resource gives them (for a page a person
      reads; never logged, never used by the rules).
    - resources: reference → ResourceLabel for every visible resource, so outputs can name evidence
      (labelled when first asked for: `fhir_vcf.mappers.describe.ResourceLabels`).
    - events: dated imaging, treatment and bone-health events of the record, oldest first, for the
      timeline of the explanation page (context only: no rule reads them).
    - skipped: reason → number of resources (or attachments) set aside unread: entered in error,
      superseded documents, unsupported attachments, another patient's, dated after as_of... (issue 9:
      nothing is dropped without a trace; no rule reads it).
    """

    patient: str
    as_of: date
    sex: str | None = None
    birth_date: date | None = None
    fractures: tuple[Fracture, ...] = ()
    onset: dict[str, Fact[DayRange]] = field(default_factory=dict)
    acuity: dict[str, Fact[str]] = field(default_factory=dict)
    acuity_unassigned: tuple[Fact[str], ...] = ()
    height_loss: dict[str, Fact[float]] = field(default_factory=dict)
    progression: Fact[bool] = field(default_factory=Fact.unknown)
    kyphosis: Fact[bool] = field(default_factory=Fact.unknown)
    vertebra_plana: Fact[bool] = field(default_factory=Fact.unknown)
    intravertebral_cleft: Fact[bool] = field(default_factory=Fact.unknown)
    healed: Fact[bool] = field(default_factory=Fact.unknown)
    osteoporosis: Fact[bool] = field(default_factory=Fact.unknown)
    malignancy: Fact[tuple[str, ...]] = field(default_factory=Fact.unknown)
    myeloma: Fact[bool] = field(default_factory=Fact.unknown)
    pain_scores: tuple[PainScore, ...] = ()
    rdq: Fact[int] = field(default_factory=Fact.unknown)
    nsm: Fact[tuple[str, ...]] = field(default_factory=Fact.unknown)
    nsm_start: Fact[DayRange] = field(default_factory=Fact.unknown)
    dxa: Fact[bool] = field(default_factory=Fact.unknown)
    osteoporosis_program: Fact[bool] = field(default_factory=Fact.unknown)
    pain_elsewhere: Fact[bool] = field(default_factory=Fact.unknown)
    infection: Fact[bool] = field(default_factory=Fact.unknown)
    pregnancy: Fact[bool] = field(default_factory=Fact.unknown)
    cement_allergy: Fact[bool] = field(default_factory=Fact.unknown)
    coagulopathy: Fact[bool] = field(default_factory=Fact.unknown)
    inr: Fact[float] = field(default_factory=Fact.unknown)
    anticoagulants: Fact[tuple[str, ...]] = field(default_factory=Fact.unknown)
    instability: Fact[bool] = field(default_factory=Fact.unknown)
    myelopathy: Fact[bool] = field(default_factory=Fact.unknown)
    neurologic_deficit: Fact[bool] = field(default_factory=Fact.unknown)
    neural_impingement: Fact[bool] = field(default_factory=Fact.unknown)
    retropulsion: Fact[bool] = field(default_factory=Fact.unknown)
    requests: tuple[ProcedureRequest, ...] = ()
    request: ProcedureRequest | None = None
    imaging: tuple[str, ...] = ()
    patient_name: str = ""
    patient_identifiers: tuple[str, ...] = ()
    resources: Mapping[str, ResourceLabel] = field(default_factory=dict)
    events: tuple[EpisodeEvent, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def fracture_levels(self) -> list[str]:
        return sort_levels(level for f in self.fractures for level in f.levels)

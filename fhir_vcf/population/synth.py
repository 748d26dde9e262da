"""A synthetic population in Bulk Data form, for tests and benchmarks: `fhir-vcf synth`.

Everyone gets an age and sex drawn from an adult outpatient mix and years of unrelated history
(visits, vital signs, labs, chronic conditions and their medicines, immunizations). A share of them,
rising with age and higher in women as vertebral fractures are, has a vertebral compression fracture
whose episode follows one of the scenarios below; the first patients with a fracture take every
scenario once, so even a small population walks every decision path. Some patients with a fracture
had their augmentation months ago (a completed Procedure with its order), which is what `audit` reads.

Nothing here decides anything: a scenario is documentation written the way an EHR would hold it,
and the rules judge it like any other record. Output is one NDJSON file per resource type, the same
bytes for the same seed, size and as-of date (a seeded `random.Random`, no clock, no set ordering).
The ids are random hex, like an export's; nobody here is a real person.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
FINDING = "urn:fhir-vcf:finding"
UCUM = "http://unitsofmeasure.org"
CLINICAL = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
CONFIRMED = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]}

# SNOMED CT vertebra codes for the levels scenarios fracture (input profile, "level(s)").
VERTEBRA = {"T7": "62487009", "T8": "11068009", "T10": "7610001", "T11": "12989004", "T12": "23215003",
            "L1": "66794005", "L2": "14293000", "L3": "36470004", "L4": "11994002"}
LEVELS = tuple(VERTEBRA)
# Share of people with a vertebral fracture episode, by age band and sex. Order of magnitude from
# clinically diagnosed VCF incidence (about 1-2 % a year in women over 65, half that in men, far less
# when younger); raised so that a 10,000-patient run holds a few hundred episodes to judge.
VCF_SHARE = ((80, 0.10, 0.05), (65, 0.06, 0.03), (50, 0.02, 0.01), (0, 0.003, 0.002))
AUDIT_SHARE = 0.25  # of patients with a fracture: augmented in the past year (the audit's population)

# Unrelated chronic conditions and what treats them: (ICD-10-CM, text, RxNorm, medicine, minimum age).
CHRONIC = (
    ("I10", "Hypertension", "29046", "lisinopril", 35),
    ("E11.9", "Type 2 diabetes mellitus", "6809", "metformin", 35),
    ("E78.5", "Hyperlipidemia", "83367", "atorvastatin", 30),
    ("K21.9", "Gastro-esophageal reflux disease", "7646", "omeprazole", 18),
    ("J45.909", "Asthma", "435", "albuterol", 5),
    ("E03.9", "Hypothyroidism", "10582", "levothyroxine", 30),
)
LABS = (("2160-0", "Creatinine", "mg/dL", 0.6, 1.3), ("2345-7", "Glucose", "mg/dL", 70, 160),
        ("718-7", "Hemoglobin", "g/dL", 11.0, 16.5), ("4548-4", "Hemoglobin A1c", "%", 4.8, 8.5))


@dataclass(frozen=True)
class Scenario:
    """One way a fracture episode is documented; `weight` is its share among episodes."""

    name: str
    weight: float
    build: Callable[[Episode], None]


class Writer:
    """One NDJSON file per resource type, opened on first use, written in generation order."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: dict[str, TextIO] = {}
        self.counts: dict[str, int] = {}

    def write(self, resource: dict[str, Any]) -> None:
        rtype = resource["resourceType"]
        fh = self.files.get(rtype)
        if fh is None:
            fh = self.files[rtype] = open(self.out / f"{rtype}.ndjson", "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        fh.write(json.dumps(resource, separators=(",", ":")) + "\n")
        self.counts[rtype] = self.counts.get(rtype, 0) + 1

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


class Episode:
    """The resources of one patient, with helpers that write them the way an EHR export does."""

    def __init__(self, rng: random.Random, pid: str, sex: str, birth: date, anchor: date, subject: str) -> None:
        self.rng = rng
        self.pid = pid
        self.sex = sex
        self.birth = birth
        self.anchor = anchor  # the as-of date of a screen, or the day of the procedure of an audit
        self.subject = {"reference": subject}
        self.resources: list[dict[str, Any]] = []
        self.level = rng.choice(LEVELS)
        self.onset = anchor - timedelta(days=rng.randint(10, 35))
        self.fracture_ref = ""
        self._n = 0

    def id(self, kind: str) -> str:
        self._n += 1
        return f"{self.pid}-{kind}{self._n}"

    def add(self, resource: dict[str, Any]) -> str:
        self.resources.append(resource)
        return f"{resource['resourceType']}/{resource['id']}"

    def day(self, offset: int) -> date:
        return self.onset + timedelta(days=offset)

    # -- resource writers ------------------------------------------------------------------------

    def condition(self, code: str, text: str, onset: date, *, system: str = ICD10, level: str | None = None,
                  category: str = "problem-list-item") -> str:
        res: dict[str, Any] = {
            "resourceType": "Condition", "id": self.id("cond"), "clinicalStatus": CLINICAL,
            "verificationStatus": CONFIRMED,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": category}]}],
            "code": {"coding": [{"system": system, "code": code}], "text": text},
            "subject": self.subject, "onsetDateTime": onset.isoformat(), "recordedDate": onset.isoformat(),
        }
        if level:
            res["bodySite"] = [{"coding": [{"system": SNOMED, "code": VERTEBRA[level]}], "text": level}]
        return self.add(res)

    def encounter(self, when: date, cls: str = "AMB", reason: str = "Office visit", days: int = 0) -> str:
        end = when + timedelta(days=days)
        return self.add({
            "resourceType": "Encounter", "id": self.id("enc"), "status": "finished",
            "class": {"system": ACT, "code": cls}, "subject": self.subject,
            "period": {"start": f"{when.isoformat()}T09:00:00Z", "end": f"{end.isoformat()}T17:00:00Z"},
            "reasonCode": [{"text": reason}],
        })

    def observation(self, code: str, when: date, value: dict[str, Any], *, system: str = LOINC,
                    category: str = "laboratory", encounter: str | None = None, level: str | None = None,
                    study: str | None = None) -> str:
        res: dict[str, Any] = {
            "resourceType": "Observation", "id": self.id("obs"), "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": category}]}],
            "code": {"coding": [{"system": system, "code": code}]}, "subject": self.subject,
            "effectiveDateTime": f"{when.isoformat()}T10:00:00Z", **value,
        }
        if encounter:
            res["encounter"] = {"reference": encounter}
        if level:
            res["bodySite"] = {"coding": [{"system": SNOMED, "code": VERTEBRA[level]}], "text": level}
        if study:
            res["derivedFrom"] = [{"reference": study}]
        return self.add(res)

    def pain(self, when: date, score: int, encounter: str) -> str:
        return self.observation("72514-3", when, {"valueInteger": score}, category="survey", encounter=encounter)

    def finding(self, code: str, when: date, value: dict[str, Any], study: str) -> str:
        return self.observation(code, when, value, system=FINDING, category="imaging", level=self.level, study=study)

    def medication(self, rxnorm: str, name: str, when: date, *, reference: str | None = None) -> str:
        res: dict[str, Any] = {"resourceType": "MedicationRequest", "id": self.id("med"), "status": "active",
                               "intent": "order", "subject": self.subject, "authoredOn": when.isoformat()}
        if reference:  # a formulary Medication, as many EHRs export them
            res["medicationReference"] = {"reference": reference}
        else:
            res["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": rxnorm, "display": name}]}
        return self.add(res)

    def imaging(self, modality: str, when: date, conclusion: str) -> str:
        study = self.add({
            "resourceType": "ImagingStudy", "id": self.id("img"), "status": "available", "subject": self.subject,
            "started": f"{when.isoformat()}T11:00:00Z", "modality": [{"system": DICOM, "code": modality}],
            "series": [{"uid": f"2.25.{self.rng.getrandbits(60)}", "modality": {"system": DICOM, "code": modality},
                        "description": "SAG STIR" if modality == "MR" else "AP and lateral",
                        "bodySite": {"system": SNOMED, "code": VERTEBRA[self.level]}}],
        })
        self.add({
            "resourceType": "DiagnosticReport", "id": self.id("rpt"), "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "18748-4"}], "text": f"{modality} spine"},
            "subject": self.subject, "effectiveDateTime": f"{when.isoformat()}T11:00:00Z",
            "imagingStudy": [{"reference": study}], "conclusion": conclusion,
        })
        return study

    def service(self, code: str, text: str, when: date, *, status: str = "active", system: str = CPT,
                note: str | None = None, level: bool = False) -> str:
        res: dict[str, Any] = {"resourceType": "ServiceRequest", "id": self.id("sr"), "status": status,
                               "intent": "order", "code": {"coding": [{"system": system, "code": code}], "text": text},
                               "subject": self.subject, "authoredOn": when.isoformat()}
        if level:
            res["bodySite"] = [{"coding": [{"system": SNOMED, "code": VERTEBRA[self.level]}], "text": self.level}]
            res["reasonReference"] = [{"reference": self.fracture_ref}]
        if note:
            res["note"] = [{"text": note}]
        return self.add(res)

    # -- the parts of an episode ---------------------------------------------------------------

    def fracture(self, code: str = "M80.08XA", text: str = "Osteoporotic compression fracture") -> None:
        self.condition("M81.0", "Osteoporosis", self.onset - timedelta(days=self.rng.randint(200, 2000)))
        self.fracture_ref = self.condition(code, f"{text} {self.level}", self.onset, level=self.level,
                                           category="encounter-diagnosis")

    def mri(self, conclusion: str | None = None, height: int | None = None) -> str:
        height = height if height is not None else self.rng.randint(12, 22)
        text = conclusion or (f"Acute compression fracture of {self.level} with STIR hyperintense bone marrow edema. "
                              f"Approximately {height}% anterior height loss. No retropulsion.")
        study = self.imaging("MR", self.day(3), text)
        self.finding("marrow-edema", self.day(3), {"valueBoolean": True}, study)
        return study

    def pain_course(self, scores: tuple[int, ...], cls: str = "AMB") -> None:
        for i, score in enumerate(scores):
            when = self.day(2 + 7 * i)
            enc = self.encounter(when, cls, "Back pain, vertebral fracture", days=3 if cls == "IMP" else 0)
            self.pain(when, score, enc)

    def analgesic(self) -> None:
        self.medication("161", "acetaminophen", self.day(2))

    def bone_health(self, *, dxa: bool = True, treatment: bool = True, formulary: bool = False) -> None:
        if dxa:  # the education note belongs to the bone-health programme, not to the scan
            self.service("77080", "DXA bone density scan", self.day(4),
                         note="Osteoporosis education given; bone health clinic referral." if treatment else None)
        if treatment:
            self.medication("46041", "alendronate", self.day(4),
                            reference="Medication/alendronate-70mg" if formulary else None)

    def request(self) -> None:
        """The augmentation order being placed: kyphoplasty or vertebroplasty by region (CPT)."""
        lumbar = self.level.startswith("L")
        code, text = self.rng.choice([("22514" if lumbar else "22513", "Kyphoplasty"),
                                      ("22511" if lumbar else "22510", "Vertebroplasty")])
        self.service(code, f"{text} {self.level}", self.anchor - timedelta(days=1), level=True)


# -- the scenarios: each builds the documentation of one decision path --------------------------


def _standard(ep: Episode, *, scores: tuple[int, ...] = (6, 7), cls: str = "AMB", mri: bool = True,
              dxa: bool = True, treatment: bool = True) -> None:
    ep.fracture()
    if mri:
        ep.mri()
    ep.pain_course(scores, cls)
    ep.analgesic()
    ep.bone_health(dxa=dxa, treatment=treatment, formulary=ep.rng.random() < 0.3)
    ep.request()


def eligible_worsening(ep: Episode) -> None:
    _standard(ep)


def eligible_hospitalized(ep: Episode) -> None:
    _standard(ep, scores=(9, 8), cls="IMP")


def eligible_supporting(ep: Episode) -> None:
    ep.fracture()
    study = ep.mri(height=35)
    ep.finding("height-loss-percent", ep.day(3), {"valueQuantity": {"value": 35, "unit": "%", "system": UCUM,
                                                                    "code": "%"}}, study)
    ep.condition("M40.205", "Kyphosis of thoracolumbar region", ep.day(3))
    ep.pain_course((7, 7))
    ep.observation("rdq-score", ep.day(9), {"valueInteger": 19}, system=FINDING, category="survey")
    ep.analgesic()
    ep.bone_health()
    ep.request()


def chronic(ep: Episode) -> None:
    ep.onset = ep.anchor - timedelta(days=ep.rng.randint(100, 200))
    _standard(ep)


def radiograph_only(ep: Episode) -> None:
    ep.fracture()
    ep.imaging("DX", ep.day(3), f"Compression fracture of {ep.level} with mild anterior wedging.")
    ep.pain_course((6, 7))
    ep.analgesic()
    ep.bone_health()
    ep.request()


def no_treatment(ep: Episode) -> None:
    _standard(ep, treatment=False)  # the continuum-of-care gap: no osteoporosis program


def no_workup(ep: Episode) -> None:
    _standard(ep, dxa=False, treatment=False)


def discitis(ep: Episode) -> None:
    _standard(ep)
    ep.condition("M46.46", "Discitis, lumbar region", ep.day(5))


def cement_allergy(ep: Episode) -> None:
    _standard(ep)
    ep.add({"resourceType": "AllergyIntolerance", "id": ep.id("alg"),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                           "code": "active"}]},
            "code": {"coding": [{"system": SNOMED, "code": "427811002"}], "text": "Allergy to PMMA bone cement"},
            "patient": ep.subject, "recordedDate": ep.day(1).isoformat()})


def coagulopathy(ep: Episode) -> None:
    _standard(ep)
    ep.observation("6301-6", ep.day(6), {"valueQuantity": {"value": 2.4, "unit": "{INR}", "system": UCUM,
                                                          "code": "{INR}"}})


def retropulsion(ep: Episode) -> None:
    ep.fracture()
    ep.mri(conclusion=f"Acute compression fracture of {ep.level} with STIR marrow edema. "
                      "Retropulsed fragment narrowing the canal.")
    ep.pain_course((6, 7))
    ep.analgesic()
    ep.bone_health()
    ep.request()


def traumatic(ep: Episode) -> None:
    ep.level = ep.rng.choice(("L1", "L2", "L3"))
    ep.fracture_ref = ep.condition("S32.010A", f"Wedge compression fracture of {ep.level} after a fall",
                                   ep.onset, level=ep.level, category="encounter-diagnosis")
    ep.mri()
    ep.pain_course((7, 8))
    ep.analgesic()


def collapsed_nec(ep: Episode) -> None:
    ep.fracture(code="M48.56XA", text="Collapsed vertebra")
    ep.mri()
    ep.pain_course((6, 7))
    ep.analgesic()
    ep.bone_health()
    ep.request()


def myeloma(ep: Episode) -> None:
    ep.condition("C90.00", "Multiple myeloma", ep.onset - timedelta(days=ep.rng.randint(60, 400)))
    ep.fracture_ref = ep.condition("M84.58XA", f"Pathological fracture in neoplastic disease {ep.level}",
                                   ep.onset, level=ep.level, category="encounter-diagnosis")
    ep.mri()
    ep.pain_course((7, 7))
    ep.analgesic()
    ep.request()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("eligible-outpatient-worsening", 0.20, eligible_worsening),
    Scenario("eligible-hospitalized", 0.08, eligible_hospitalized),
    Scenario("eligible-outpatient-supporting", 0.05, eligible_supporting),
    Scenario("not-eligible-chronic", 0.14, chronic),
    Scenario("insufficient-radiograph-only", 0.12, radiograph_only),
    Scenario("gap-no-osteoporosis-treatment", 0.12, no_treatment),
    Scenario("gap-no-bone-health-workup", 0.08, no_workup),
    Scenario("excluded-discitis", 0.02, discitis),
    Scenario("excluded-cement-allergy", 0.02, cement_allergy),
    Scenario("excluded-coagulopathy", 0.03, coagulopathy),
    Scenario("excluded-retropulsion", 0.03, retropulsion),
    Scenario("not-eligible-traumatic", 0.05, traumatic),
    Scenario("review-collapsed-vertebra-nec", 0.03, collapsed_nec),
    Scenario("malignant-myeloma", 0.03, myeloma),
)


# -- the population ------------------------------------------------------------------------------


def _age(rng: random.Random) -> int:
    """Adults of a primary-care panel: more in middle and older age than a census pyramid."""
    band = rng.choices(((18, 34), (35, 49), (50, 64), (65, 79), (80, 96)), weights=(22, 22, 26, 20, 10))[0]
    return rng.randint(*band)


def _vcf_share(age: int, sex: str) -> float:
    for floor, female, male in VCF_SHARE:
        if age >= floor:
            return female if sex == "female" else male
    return 0.0


def _history(ep: Episode, age: int, as_of: date) -> None:
    """Years of care that has nothing to do with the spine."""
    rng = ep.rng
    years = rng.randint(2, 10)
    start = as_of - timedelta(days=365 * years)
    for code, text, rx, medicine, min_age in CHRONIC:
        if age >= min_age and rng.random() < 0.12 + age / 400:
            onset = start + timedelta(days=rng.randint(0, 365 * years - 30))
            ep.condition(code, text, onset)
            ep.medication(rx, medicine, onset)
    for _ in range(rng.randint(1, 2 + years)):
        when = start + timedelta(days=rng.randint(0, 365 * years - 60))
        enc = ep.encounter(when, reason="Routine follow-up")
        ep.observation("8480-6", when, {"valueQuantity": {"value": rng.randint(105, 165), "unit": "mmHg",
                                                          "system": UCUM, "code": "mm[Hg]"}},
                       category="vital-signs", encounter=enc)
        code, _, unit, low, high = rng.choice(LABS)
        ep.observation(code, when, {"valueQuantity": {"value": round(rng.uniform(low, high), 1), "unit": unit,
                                                      "system": UCUM, "code": unit}}, encounter=enc)
        if rng.random() < 0.3:
            ep.add({"resourceType": "Immunization", "id": ep.id("imm"), "status": "completed",
                    "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "141"}],
                                    "text": "Influenza vaccine"},
                    "patient": ep.subject, "occurrenceDateTime": when.isoformat()})


def _procedure(ep: Episode) -> None:
    """The augmentation done on `anchor`: the order completed, the Procedure recorded (audit's input)."""
    for res in ep.resources:
        if res["resourceType"] == "ServiceRequest" and res.get("reasonReference"):
            res["status"] = "completed"
            code = res["code"]["coding"][0]["code"]
            text = res["code"]["text"]
            ep.add({"resourceType": "Procedure", "id": ep.id("proc"), "status": "completed",
                    "code": {"coding": [{"system": CPT, "code": code}], "text": text},
                    "subject": ep.subject, "performedDateTime": f"{ep.anchor.isoformat()}T13:00:00Z",
                    "bodySite": res["bodySite"], "reasonReference": res["reasonReference"],
                    "basedOn": [{"reference": f"ServiceRequest/{res['id']}"}]})
            return


def patients(n: int, *, seed: int, as_of: date,
             vcf_share: float | None = None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(scenario name or "", resources) per patient, in a fixed order for a given seed.

    `vcf_share` replaces the share by age and sex (tests use a high one to walk every path quickly).
    """
    rng = random.Random(seed)
    weights = [s.weight for s in SCENARIOS]
    episodes = 0
    for _ in range(n):
        pid = f"{rng.getrandbits(64):016x}"
        sex = "female" if rng.random() < 0.54 else "male"
        age = _age(rng)
        birth = as_of - timedelta(days=365 * age + rng.randint(0, 364))
        # Exports write references relative or absolute (Bulk Data IG, "Bulk Data Kick-off Request").
        subject = f"Patient/{pid}" if rng.random() < 0.9 else f"https://ehr.example.org/fhir/Patient/{pid}"
        ep = Episode(rng, pid, sex, birth, as_of, subject)
        ep.add({"resourceType": "Patient", "id": pid, "gender": sex, "birthDate": birth.isoformat(),
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5",
                                "value": f"MRN{rng.randint(10**7, 10**8)}"}]})
        _history(ep, age, as_of)
        scenario = ""
        if rng.random() < (_vcf_share(age, sex) if vcf_share is None else vcf_share):
            chosen = SCENARIOS[episodes] if episodes < len(SCENARIOS) else rng.choices(SCENARIOS, weights)[0]
            audited = chosen.build is not traumatic and (episodes % len(SCENARIOS) == 3
                                                        or rng.random() < AUDIT_SHARE)
            if audited:  # the episode happened around a past procedure day
                ep.anchor = as_of - timedelta(days=rng.randint(30, 330))
                ep.onset = ep.anchor - timedelta(days=rng.randint(10, 35))
            chosen.build(ep)
            if audited:
                _procedure(ep)
            scenario = chosen.name + (" (audited)" if audited else "")
            episodes += 1
        yield scenario, ep.resources


FORMULARY = ({"resourceType": "Medication", "id": "alendronate-70mg",
              "code": {"coding": [{"system": RXNORM, "code": "46041", "display": "alendronate"}],
                       "text": "Alendronate 70 mg tablet"}},
             {"resourceType": "Practitioner", "id": "synth-practitioner", "name": [{"family": "Synthetic"}]})


def write_population(out: str | Path, n: int, *, seed: int = 1, as_of: date = date(2025, 6, 30),
                     vcf_share: float | None = None) -> dict[str, Any]:
    """Write `n` patients as Bulk NDJSON into `out` (created); returns counts by type and scenario."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    writer = Writer(folder)
    scenarios: dict[str, int] = {}
    try:
        for resource in FORMULARY:
            writer.write(resource)
        for scenario, resources in patients(n, seed=seed, as_of=as_of, vcf_share=vcf_share):
            if scenario:
                scenarios[scenario] = scenarios.get(scenario, 0) + 1
            for resource in resources:
                writer.write(resource)
    finally:
        writer.close()
    return {"patients": n, "seed": seed, "asOf": as_of.isoformat(), "resources": dict(sorted(writer.counts.items())),
            "scenarios": dict(sorted(scenarios.items()))}

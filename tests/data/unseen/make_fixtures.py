"""Writes the unseen fixtures (tests/data/unseen/*.json) and their expected.json.

    .venv/bin/python tests/data/unseen/make_fixtures.py      # rewrites the folder it sits in

Each expectation below was reasoned from docs clinical-rules.md / input-profile.md BEFORE the core ran
on the bundle (its "why" says how); never copy a decision from the core's output into it. A small
`Pt` builder keeps each record realistic (Patient, noise resources, vitals, problem list) while each
case varies what samples/ does not: the "also accept" forms of the input profile and every boundary.
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from pathlib import Path

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
BASE = "https://ehr.example.org/fhir"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS_CMS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_OLD = "http://hl7.org/fhir/v3/ActCode"
FIND = "urn:fhir-vcf:finding"
VERT = {
    "T1": "64864005", "T2": "53733008", "T3": "1626008", "T4": "73071006", "T5": "56401006",
    "T6": "45296009", "T7": "62487009", "T8": "11068009", "T9": "82687006", "T10": "7610001",
    "T11": "12989004", "T12": "23215003", "L1": "66794005", "L2": "14293000", "L3": "36470004",
    "L4": "11994002", "L5": "49668003",
}


def cc(*codings, text=None):
    out = {}
    if codings:
        out["coding"] = [dict(zip(("system", "code", "display"), c, strict=False)) for c in codings]
    if text:
        out["text"] = text
    return out


def vert(level, display=None):
    return cc((SCT, VERT[level], display or f"Bone structure of {level} vertebra"))


class Pt:
    """One patient's resources, built up by small helpers."""

    def __init__(self, pid, *, gender="female", birth="1948-04-11", family="Doe", given="Jane"):
        self.pid = pid
        self.n = 0
        self.res = []
        self.patient = {
            "resourceType": "Patient", "id": pid,
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": f"MRN-{pid.upper()}"}],
            "name": [{"family": family, "given": [given]}], "gender": gender, "birthDate": birth,
        }
        self.res.append(self.patient)
        self.add({"resourceType": "Practitioner", "id": f"{pid}-pcp", "name": [{"family": "Adeyemi", "given": ["Tomi"]}]})  # noqa: E501
        self.add({"resourceType": "Organization", "id": f"{pid}-org", "name": "Lakeside Medical Group"})

    @property
    def subject(self):
        return {"reference": f"Patient/{self.pid}"}

    def nid(self, kind):
        self.n += 1
        return f"{self.pid}-{kind}-{self.n}"

    def add(self, r):
        self.res.append(r)
        return r

    def ref(self, r):
        return {"reference": f"{r['resourceType']}/{r['id']}"}

    # --- conditions
    def condition(self, code=None, *, text=None, onset=None, onset_period=None, onset_string=None,
                  recorded="2025-06-05", body=None, notes=(), clinical="active", verification="confirmed",
                  category="encounter-diagnosis"):
        r = {
            "resourceType": "Condition", "id": self.nid("cond"),
            "clinicalStatus": cc(("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)),
            "verificationStatus": cc(("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)),
            "category": [cc(("http://terminology.hl7.org/CodeSystem/condition-category", category))],
            "code": cc(*(code or ()), text=text), "subject": self.subject,
        }
        if body is not None:
            r["bodySite"] = body
        if onset:
            r["onsetDateTime"] = onset
        if onset_period:
            r["onsetPeriod"] = {"start": onset_period}
        if onset_string:
            r["onsetString"] = onset_string
        if recorded:
            r["recordedDate"] = recorded
        if notes:
            r["note"] = [{"text": t} for t in notes]
        return self.add(r)

    def vcf(self, level="T12", *, code="M80.08XA", onset="2025-06-02", **kw):
        display = {
            "M80.08XA": "Age-related osteoporosis with current pathological fracture, vertebra(e), initial encounter for fracture",  # noqa: E501
            "M80.08XS": "Age-related osteoporosis with current pathological fracture, vertebra(e), sequela",
            "M80.08XD": "Age-related osteoporosis with current pathological fracture, vertebra(e), subsequent encounter for fracture with routine healing",  # noqa: E501
            "M84.58XA": "Pathological fracture in neoplastic disease, other specified site, initial encounter for fracture",  # noqa: E501
        }.get(code, "")
        body = kw.pop("body", [vert(level)] if level else None)
        return self.condition([(ICD, code, display)], onset=onset, body=body, **kw)

    def osteoporosis(self):
        return self.condition([(ICD, "M81.0", "Age-related osteoporosis without current pathological fracture"),
                               (SCT, "64859006", "Osteoporosis")], text="Osteoporosis", onset="2019-03-01",
                              recorded="2019-03-01", category="problem-list-item")

    def hypertension(self):
        return self.condition([(ICD, "I10", "Essential (primary) hypertension")], text="Hypertension",
                              onset="2012-01-01", recorded="2012-01-01", category="problem-list-item")

    # --- encounters and pain
    def encounter(self, cls="AMB", start="2025-06-09T09:00:00Z", end="2025-06-09T10:00:00Z", system=ACT):
        disp = {"AMB": "ambulatory", "IMP": "inpatient encounter", "OBSENC": "observation encounter",
                "EMER": "emergency", "ACUTE": "inpatient acute"}.get(cls, cls)
        return self.add({
            "resourceType": "Encounter", "id": self.nid("enc"), "status": "finished",
            "class": {"system": system, "code": cls, "display": disp}, "subject": self.subject,
            "period": {"start": start, "end": end},
        })

    def pain(self, value, when, enc=None, *, loinc="72514-3", unit=None, quantity=False):
        disp = {"72514-3": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
                "38214-3": "Pain severity [Score] Visual analog score",
                "38208-5": "Pain severity - Reported"}[loinc]
        r = {"resourceType": "Observation", "id": self.nid("pain"), "status": "final",
             "category": [cc(("http://terminology.hl7.org/CodeSystem/observation-category", "survey"))],
             "code": cc((LOINC, loinc, disp)), "subject": self.subject, "effectiveDateTime": when}
        if enc is not None:
            r["encounter"] = self.ref(enc)
        if unit or quantity:
            r["valueQuantity"] = {"value": value, "unit": unit or "{score}", "system": "http://unitsofmeasure.org",
                                  "code": unit or "{score}"}
        else:
            r["valueInteger"] = value
        return self.add(r)

    def outpatient_worsening(self, first=6, second=7):
        e1 = self.encounter("AMB", "2025-06-09T09:00:00Z", "2025-06-09T09:40:00Z")
        self.pain(first, "2025-06-09T09:10:00Z", e1)
        e2 = self.encounter("AMB", "2025-06-23T14:00:00Z", "2025-06-23T14:30:00Z")
        self.pain(second, "2025-06-23T14:10:00Z", e2)
        self.vitals(e2)

    def vitals(self, enc):
        return self.add({
            "resourceType": "Observation", "id": self.nid("bp"), "status": "final",
            "category": [cc(("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"))],
            "code": cc((LOINC, "85354-9", "Blood pressure panel")), "subject": self.subject,
            "encounter": self.ref(enc), "effectiveDateTime": enc["period"]["start"],
            "component": [
                {"code": cc((LOINC, "8480-6", "Systolic blood pressure")),
                 "valueQuantity": {"value": 136, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},  # noqa: E501
                {"code": cc((LOINC, "8462-4", "Diastolic blood pressure")),
                 "valueQuantity": {"value": 78, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},  # noqa: E501
            ]})

    # --- imaging
    def study(self, modality="MR", started="2025-06-05T10:00:00Z", *, levels=("T12",), description=None,
              series_desc="SAG STIR", body_display_only=False):
        series = []
        for i, lv in enumerate(levels or [None]):
            s = {"uid": f"1.2.840.113619.2.{sum(map(ord, self.pid))}{self.n}.{i + 1}", "number": i + 1,
                 "modality": {"system": DCM, "code": modality}, "description": series_desc}
            if lv:
                s["bodySite"] = ({"display": f"{lv} vertebral body"} if body_display_only
                                 else {"system": SCT, "code": VERT[lv], "display": f"Bone structure of {lv} vertebra"})
            series.append(s)
        return self.add({
            "resourceType": "ImagingStudy", "id": self.nid("img"), "status": "available", "subject": self.subject,
            "started": started, "modality": [{"system": DCM, "code": modality}],
            "description": description or {"MR": "MRI thoracolumbar spine without contrast",
                                            "NM": "Whole body bone scan", "DX": "XR thoracolumbar spine 2 views",
                                            "CT": "CT thoracolumbar spine"}[modality],
            "numberOfSeries": len(series), "series": series,
        })

    def report(self, study, conclusion, *, text=None, when=None, code=None):
        when = when or study["started"]
        return self.add({
            "resourceType": "DiagnosticReport", "id": self.nid("rpt"), "status": "final",
            "category": [cc(("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology"))],
            "code": cc(*(code or [(LOINC, "18748-4", "Diagnostic imaging study")]), text=text or study["description"]),
            "subject": self.subject, "effectiveDateTime": when, "issued": when,
            "imagingStudy": [self.ref(study)], "conclusion": conclusion,
        })

    def finding(self, code, value, level, study, *, when=None):
        r = {"resourceType": "Observation", "id": self.nid("find"), "status": "final",
             "category": [cc(("http://terminology.hl7.org/CodeSystem/observation-category", "imaging"))],
             "code": cc((FIND, code, code)), "subject": self.subject,
             "effectiveDateTime": when or study["started"], "bodySite": vert(level),
             "derivedFrom": [self.ref(study)]}
        if isinstance(value, bool):
            r["valueBoolean"] = value
        elif code == "height-loss-percent":
            r["valueQuantity"] = {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
        else:
            r["valueInteger"] = value
        return self.add(r)

    def mri_edema(self, levels=("T12",), started="2025-06-05T10:00:00Z", conclusion=None):
        s = self.study("MR", started, levels=levels)
        joined = " and ".join(levels)
        self.report(s, conclusion or f"Acute osteoporotic compression fracture of {joined} with bone marrow edema "
                    f"on STIR. No retropulsion. Posterior wall intact.")
        return s

    # --- care
    def med(self, code=None, display=None, *, text=None, authored="2025-06-05", kind="MedicationRequest",
            status="active"):
        r = {"resourceType": kind, "id": self.nid("med"), "status": status, "subject": self.subject,
             "medicationCodeableConcept": cc(*([(RX, code, display)] if code else []), text=text)}
        if kind == "MedicationRequest":
            r["intent"] = "order"
            r["authoredOn"] = authored
            r["dosageInstruction"] = [{"text": "as directed"}]
        else:
            r["effectiveDateTime"] = authored
            r["dateAsserted"] = authored
        return self.add(r)

    def service(self, codes, *, text=None, authored="2025-06-05", status="active", notes=(), body=None,
                reasons=(), reason_text=None):
        r = {"resourceType": "ServiceRequest", "id": self.nid("sr"), "status": status, "intent": "order",
             "code": cc(*codes, text=text), "subject": self.subject, "authoredOn": authored}
        if notes:
            r["note"] = [{"text": t} for t in notes]
        if body:
            r["bodySite"] = body
        if reasons:
            r["reasonReference"] = [self.ref(x) for x in reasons]
        if reason_text:
            r["reasonCode"] = [{"text": reason_text}]
        return self.add(r)

    def procedure(self, codes, *, text=None, performed="2025-06-06"):
        return self.add({"resourceType": "Procedure", "id": self.nid("proc"), "status": "completed",
                         "code": cc(*codes, text=text), "subject": self.subject, "performedDateTime": performed})

    def inr(self, value, when="2025-06-20T08:00:00Z"):
        return self.add({
            "resourceType": "Observation", "id": self.nid("lab"), "status": "final",
            "category": [cc(("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory"))],
            "code": cc((LOINC, "6301-6", "INR in Platelet poor plasma by Coagulation assay")),
            "subject": self.subject, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "{INR}", "system": "http://unitsofmeasure.org", "code": "{INR}"}})

    def standard_care(self):
        self.med("161", "acetaminophen")
        self.service([(CPT, "77080", "DXA bone density study, axial skeleton")], text="DXA bone density scan",
                     notes=["Osteoporosis education provided."])
        self.med("46041", "alendronate")
        self.inr(1.0)

    def base(self, level="T12", **vcf):
        """A complete eligible outpatient record: acute M80.08XA fracture with MRI edema, worsening pain."""
        self.hypertension()
        self.osteoporosis()
        self.vcf(level, **vcf)
        self.mri_edema((level,))
        self.outpatient_worsening()
        self.standard_care()


FILES: dict[str, dict] = {}
EXPECTED: dict[str, dict] = {}


def entries_collection(pts):
    return [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r} for p in pts for r in p.res]


def emit(name, pts, expected, *, btype="collection"):
    entries = entries_collection(pts)
    FILES[name] = {"resourceType": "Bundle", "id": name.removesuffix(".json"), "type": btype,
                   "timestamp": "2025-06-30T08:00:00Z", "entry": entries}
    EXPECTED[name] = expected


def exp(decision, levels, why, **extra):
    return {"decision": decision, "levels": levels, "why": why, **extra}


# 1 onsetPeriod.start + bodySite text "Th12"
p = Pt("u-hale", family="Hale", given="Margaret")
p.hypertension()
p.osteoporosis()
p.vcf(None, onset=None, onset_period="2025-06-02", body=[cc(text="Th12")])
p.mri_edema(("T12",))
p.outpatient_worsening()
p.standard_care()
emit("onset-period-th12-text.json", [p], {"Patient/u-hale": exp(
    "eligible", ["T12"], "M80.08XA with bodySite text 'Th12' (level T12), onsetPeriod.start 2025-06-02 (28 d, "
    "acute); MRI STIR edema T12; outpatient NRS 6 -> 7 worsening with acetaminophen; DXA + alendronate")})

# 2 code.text only fracture, onsetString, series bodySite display only
p = Pt("u-ibarra", family="Ibarra", given="Lucia")
p.hypertension()
p.osteoporosis()
p.condition(None, text="osteoporotic compression fracture T-12", onset_string="June 2, 2025")
s = p.study("MR", levels=("T12",), body_display_only=True)
p.report(s, "Acute compression fracture with marrow edema, T2 hyperintensity of the vertebral body. No retropulsion.")
p.outpatient_worsening()
p.standard_care()
emit("text-fracture-onset-string.json", [p], {"Patient/u-ibarra": exp(
    "eligible", ["T12"], "Condition coded only in code.text 'osteoporotic compression fracture T-12' (osteoporotic, "
    "T12), onsetString 'June 2, 2025' (28 d); MRI series bodySite is a display-only Coding 'T12 vertebral body' and "
    "the linked report (no level) says marrow edema: one level in question, so T12; worsening outpatient pain; I5 met")})  # noqa: E501

# 3 recordedDate only -> flag, still eligible
p = Pt("u-jansen", family="Jansen", given="Ilse")
p.hypertension()
p.osteoporosis()
p.vcf("L1", onset=None, recorded="2025-06-04")
p.mri_edema(("L1",))
p.outpatient_worsening()
p.standard_care()
emit("recorded-date-only.json", [p], {"Patient/u-jansen": exp(
    "eligible", ["L1"], "M80.08XA L1 with no onset[x], recordedDate 2025-06-04 (26 d): accepted with a flag "
    "(recorded, not onset); MRI edema L1; worsening pain; I5 met", flag="recorded")})

# 4 range T11-L1 in a note; MRI text lists the three levels
p = Pt("u-kowalski", family="Kowalski", given="Anna")
p.hypertension()
p.osteoporosis()
p.vcf(None, body=None, notes=["Osteoporotic compression fractures T11-L1 after lifting a box."])
s = p.study("MR", levels=("T11", "T12", "L1"))
p.report(s, "Acute compression fractures of T11, T12 and L1 with marrow edema on STIR. No retropulsion.")
p.outpatient_worsening()
p.standard_care()
emit("range-t11-l1-note.json", [p], {"Patient/u-kowalski": exp(
    "eligible", ["T11", "T12", "L1"], "M80.08XA with note 'T11-L1' (range: T11, T12, L1), onset 28 d; edema at "
    "all three; 3 levels is within the limit (X4 absent); worsening pain; I5 met")})

# 5 list "T12 and L1" in code.text; report text only with "STIR hyperintense"
p = Pt("u-lindgren", family="Lindgren", given="Karin")
p.hypertension()
p.osteoporosis()
p.condition([(ICD, "M80.08XA", "Age-related osteoporosis with current pathological fracture, vertebra(e), initial")],
            text="osteoporotic compression fractures T12 and L1", onset="2025-06-02")
s = p.study("MR", levels=())
p.report(s, "STIR hyperintense signal within the T12 and L1 vertebral bodies, consistent with acute fractures.")
p.outpatient_worsening()
p.standard_care()
emit("list-t12-and-l1-stir-text.json", [p], {"Patient/u-lindgren": exp(
    "eligible", ["T12", "L1"], "M80.08XA with code.text 'T12 and L1'; MRI report conclusion only: 'STIR "
    "hyperintense ... T12 and L1' = marrow edema at both; worsening pain; I5 met")})

# 6 bone scan: "avid" and "increased radiotracer uptake"
p = Pt("u-moyo", family="Moyo", given="Grace")
p.hypertension()
p.osteoporosis()
p.vcf("L2")
s = p.study("NM", levels=())
p.report(s, "Intensely avid focus at L2 with increased radiotracer uptake, in keeping with a recent compression "
         "fracture. No other abnormal foci.", code=[(LOINC, "39879-2", "NM Bone Whole body")])
p.outpatient_worsening()
p.standard_care()
emit("bone-scan-avid-l2.json", [p], {"Patient/u-moyo": exp(
    "eligible", ["L2"], "M80.08XA L2 (28 d); bone scan (NM) report 'avid ... increased radiotracer uptake' at L2 "
    "= acuity (I3); worsening pain; I5 met")})

# 7 MRI chronic healed, no edema -> I3 not met
p = Pt("u-nakamura", family="Nakamura", given="Yoko")
p.hypertension()
p.osteoporosis()
p.vcf("L1")
s = p.study("MR", levels=("L1",))
p.report(s, "Chronic healed L1 compression fracture, no edema. Sclerotic endplates.")
p.outpatient_worsening()
p.standard_care()
emit("mri-chronic-healed-l1.json", [p], {"Patient/u-nakamura": exp(
    "not-eligible", ["L1"], "onset 28 d but the MRI shows a chronic healed fracture with no edema, sclerotic: "
    "I3 not met (MRI without edema -> not met)")})

# 8 SNOMED 79654002 edema with vertebra bodySite
p = Pt("u-oduya", family="Oduya", given="Esther")
p.hypertension()
p.osteoporosis()
p.vcf("L3")
s = p.study("MR", levels=("L3",))
p.add({"resourceType": "Observation", "id": p.nid("find"), "status": "final",
       "category": [cc(("http://terminology.hl7.org/CodeSystem/observation-category", "imaging"))],
       "code": cc((SCT, "79654002", "Edema")), "subject": p.subject, "effectiveDateTime": s["started"],
       "bodySite": vert("L3"), "derivedFrom": [p.ref(s)], "valueBoolean": True})
p.outpatient_worsening()
p.standard_care()
emit("snomed-edema-observation-l3.json", [p], {"Patient/u-oduya": exp(
    "eligible", ["L3"], "M80.08XA L3 (28 d); Observation SNOMED 79654002 edema with bodySite L3 derived from the "
    "MRI = marrow edema; worsening pain; I5 met")})

# 9 stable pain with supporting findings from text/SNOMED: height 'loss of 40% of height', kyphosis SNOMED, RMDQ text
p = Pt("u-petrov", family="Petrov", given="Olga")
p.hypertension()
p.osteoporosis()
p.vcf("T12")
s = p.study("MR", levels=("T12",))
p.report(s, "Acute T12 compression fracture with marrow edema on STIR and loss of 40% of height. No retropulsion.")
p.condition([(SCT, "414564002", "Kyphosis deformity of spine")], text="Kyphotic deformity", onset="2025-06-05",
            category="problem-list-item")
e1 = p.encounter("AMB", "2025-06-09T09:00:00Z", "2025-06-09T09:40:00Z")
p.pain(7, "2025-06-09T09:10:00Z", e1)
e2 = p.encounter("AMB", "2025-06-23T09:00:00Z", "2025-06-23T09:40:00Z")
p.pain(7, "2025-06-23T09:10:00Z", e2)
p.add({"resourceType": "Observation", "id": p.nid("note"), "status": "final",
       "code": cc(text="Spine clinic assessment"), "subject": p.subject, "effectiveDateTime": "2025-06-23T09:20:00Z",
       "valueString": "Functional status: RMDQ 19. Pain unchanged on analgesics."})
p.standard_care()
emit("stable-supporting-text.json", [p], {"Patient/u-petrov": exp(
    "eligible", ["T12"], "stable NRS 7 -> 7 (>= 5) with NSM; supporting: B 'loss of 40% of height' > 25 %, C kyphosis "
    "SNOMED 414564002, D 'RMDQ 19' > 17: three of A-D (two needed)")})

# 10 progression by two height-loss measurements + Genant 'moderate'
p = Pt("u-quinn", family="Quinn", given="Dorothy")
p.hypertension()
p.osteoporosis()
p.vcf("L1", onset="2025-05-20")
s1 = p.study("MR", "2025-05-22T10:00:00Z", levels=("L1",))
p.report(s1, "Acute L1 compression fracture with marrow edema. Mild anterior wedging.")
p.finding("height-loss-percent", 18, "L1", s1)
s2 = p.study("DX", "2025-06-20T10:00:00Z", levels=("L1",), series_desc="LAT")
p.report(s2, "Moderate compression deformity of L1, progressed since May.")
p.finding("height-loss-percent", 32, "L1", s2)
e1 = p.encounter("AMB", "2025-05-26T09:00:00Z", "2025-05-26T09:40:00Z")
p.pain(8, "2025-05-26T09:10:00Z", e1)
e2 = p.encounter("AMB", "2025-06-20T09:00:00Z", "2025-06-20T09:40:00Z")
p.pain(6, "2025-06-20T09:10:00Z", e2)
p.standard_care()
emit("progression-two-measurements.json", [p], {"Patient/u-quinn": exp(
    "eligible", ["L1"], "onset 2025-05-20 (41 d); MRI edema L1; improved NRS 8 -> 6 (>= 5) with NSM; A progression "
    "(height loss 18 % then 32 % at L1) and B 32 % > 25 % (Genant moderate): two of A-D")})

# 11 hospitalized: VAS in mm, Encounter found by period (no reference), old ActCode URI
p = Pt("u-rossi", family="Rossi", given="Maria")
p.hypertension()
p.osteoporosis()
p.vcf("T11")
p.mri_edema(("T11",))
p.encounter("IMP", "2025-06-20T18:00:00Z", "2025-06-26T11:00:00Z", system=ACT_OLD)
p.pain(85, "2025-06-24T08:00:00Z", None, loinc="38214-3", unit="mm")
p.standard_care()
emit("hospitalized-vas-mm-period.json", [p], {"Patient/u-rossi": exp(
    "eligible", ["T11"], "VAS 38214-3 85 mm = 8.5 on 0-10; no encounter reference, but an IMP Encounter (old "
    "ActCode URI http://hl7.org/fhir/v3/ActCode) period covers it: hospitalized, 8.5 >= 8 (I4a)")})

# 12 OBSENC observation stay with NRS 7 (valueQuantity) -> needs review
p = Pt("u-santos", family="Santos", given="Ines")
p.hypertension()
p.osteoporosis()
p.vcf("L1")
p.mri_edema(("L1",))
e = p.encounter("OBSENC", "2025-06-22T10:00:00Z", "2025-06-23T16:00:00Z")
p.pain(6, "2025-06-22T11:00:00Z", e, quantity=True)
p.pain(7, "2025-06-23T09:00:00Z", e, quantity=True)
p.standard_care()
emit("observation-stay-nrs7.json", [p], {"Patient/u-santos": exp(
    "needs-review", ["L1"], "NRS 6 -> 7 (valueQuantity) during an OBSENC observation stay: input profile says "
    "observation stay -> needs review (7 meets the outpatient path, not the hospitalized one)")})

# 13/14 hospitalized boundary 7 vs 8 (38208-5), one file, two patients
pts = []
for pid, score in (("u-tan", 7), ("u-umar", 8)):
    p = Pt(pid, family=pid[2:].title(), given="Lee")
    p.hypertension()
    p.osteoporosis()
    p.vcf("L2")
    p.mri_edema(("L2",))
    e = p.encounter("IMP", "2025-06-18T18:00:00Z", "2025-06-25T11:00:00Z")
    p.pain(score, "2025-06-24T08:00:00Z", e, loinc="38208-5")
    p.standard_care()
    pts.append(p)
emit("hospitalized-boundary-7-8.json", pts, {
    "Patient/u-tan": exp("not-eligible", ["L2"], "inpatient (IMP) with 38208-5 pain 7 < 8: the hospitalized path "
                         "fails and the outpatient path is for patients not hospitalized (literal reading)"),
    "Patient/u-umar": exp("eligible", ["L2"], "inpatient (IMP) with 38208-5 pain 8 >= 8 (I4a)"),
})

# 15/16 outpatient NRS 4 vs 5 (worsening 3 -> x)
pts = []
for pid, score in (("u-vance", 4), ("u-weber", 5)):
    p = Pt(pid, family=pid[2:].title(), given="Ruth")
    p.hypertension()
    p.osteoporosis()
    p.vcf("L1")
    p.mri_edema(("L1",))
    p.outpatient_worsening(3, score)
    p.standard_care()
    pts.append(p)
emit("outpatient-boundary-4-5.json", pts, {
    "Patient/u-vance": exp("not-eligible", ["L1"], "outpatient NRS 3 -> 4: latest 4 < 5 (I4b not met)"),
    "Patient/u-weber": exp("eligible", ["L1"], "outpatient NRS 3 -> 5: 5 >= 5 and worsening, with NSM (I4b1)"),
})

# 17-20 day boundaries 41/42/84/85 from onset (as-of 2025-06-30)
pts, expd = [], {}
for pid, onset, days, dec in (("u-day41", "2025-05-20", 41, "eligible"), ("u-day42", "2025-05-19", 42, "eligible"),
                              ("u-day84", "2025-04-07", 84, "eligible"), ("u-day85", "2025-04-06", 85, "not-eligible")):
    p = Pt(pid, family="Day" + str(days), given="Pat")
    p.hypertension()
    p.osteoporosis()
    p.vcf("T12", onset=onset, recorded=onset)
    p.mri_edema(("T12",), started=onset + "T15:00:00Z")
    p.outpatient_worsening()
    p.standard_care()
    pts.append(p)
    label = {41: "acute (d < 42)", 42: "subacute (42 <= d)", 84: "subacute (d <= 84)", 85: "chronic (d > 84): I1 not met"}  # noqa: E501
    expd[f"Patient/{pid}"] = exp(dec, ["T12"], f"onset {onset}, {days} days before 2025-06-30: {label[days]}")
emit("day-boundaries-41-42-84-85.json", pts, expd)

# 21/22 height loss 25 vs 26 % (stable pain; kyphosis yes; RDQ 17; no progression)
pts, expd = [], {}
for pid, pct, _ in (("u-h25", 25, "not-eligible"), ("u-h26", 26, "eligible")):
    p = Pt(pid, family="Height" + str(pct), given="Sam")
    p.hypertension()
    p.osteoporosis()
    p.vcf("L1")
    s = p.study("MR", levels=("L1",))
    p.report(s, "Acute L1 compression fracture with marrow edema. No interval change in height compared with "
             "the radiograph of 2025-06-03.")
    p.finding("height-loss-percent", pct, "L1", s)
    p.condition([(ICD, "M40.204", "Unspecified kyphosis, thoracic region")], text="Thoracic kyphosis",
                onset="2025-06-05", category="problem-list-item")
    p.finding("rdq-score", 17, "L1", s, when="2025-06-23T09:00:00Z")
    e1 = p.encounter("AMB", "2025-06-09T09:00:00Z", "2025-06-09T09:40:00Z")
    p.pain(7, "2025-06-09T09:10:00Z", e1)
    e2 = p.encounter("AMB", "2025-06-23T09:00:00Z", "2025-06-23T09:40:00Z")
    p.pain(7, "2025-06-23T09:10:00Z", e2)
    p.standard_care()
    pts.append(p)
expd = {
    "Patient/u-h25": exp("not-eligible", ["L1"], "stable NRS 7 -> 7: A no progression ('no interval change'), "
                         "B 25 % is not > 25 %, C kyphosis yes, D RDQ 17 is not > 17: one of A-D, two needed"),
    "Patient/u-h26": exp("eligible", ["L1"], "as u-h25 but height loss 26 % > 25 %: B and C, two of A-D"),
}
emit("height-loss-boundary-25-26.json", pts, expd)

# 23/24 RDQ 17 vs 18 (stable pain; kyphosis yes; height 20 %; no progression)
pts, expd = [], {}
for pid, rdq, _ in (("u-r17", 17, "not-eligible"), ("u-r18", 18, "eligible")):
    p = Pt(pid, family="Rdq" + str(rdq), given="Alex")
    p.hypertension()
    p.osteoporosis()
    p.vcf("T12")
    s = p.study("MR", levels=("T12",))
    p.report(s, "Acute T12 compression fracture with marrow edema, 20% height loss. Height unchanged compared with "
             "the radiograph of 2025-06-03.")
    p.condition([(ICD, "M40.204", "Unspecified kyphosis, thoracic region")], text="Kyphosis", onset="2025-06-05",
                category="problem-list-item")
    p.finding("rdq-score", rdq, "T12", s, when="2025-06-23T09:00:00Z")
    e1 = p.encounter("AMB", "2025-06-09T09:00:00Z", "2025-06-09T09:40:00Z")
    p.pain(6, "2025-06-09T09:10:00Z", e1)
    e2 = p.encounter("AMB", "2025-06-23T09:00:00Z", "2025-06-23T09:40:00Z")
    p.pain(6, "2025-06-23T09:10:00Z", e2)
    p.standard_care()
    pts.append(p)
expd = {
    "Patient/u-r17": exp("not-eligible", ["T12"], "stable NRS 6: A no ('height unchanged'), B 20 % <= 25 %, C "
                         "kyphosis yes, D RDQ 17 not > 17: one of A-D. (Corrected fixture: the first draft said only "
                         "'Stable compared with prior.', which names no subject; the core reads it as silent on "
                         "progression -> insufficient-data, a defensible reading)"),
    "Patient/u-r18": exp("eligible", ["T12"], "as u-r17 with RDQ 18 > 17: C and D, two of A-D"),
}
emit("rdq-boundary-17-18.json", pts, expd)

# 25 NSM by brand names only, brace HCPCS L0456 (CMS system), PT CPT 97161; DXA by T-score; fracture liaison;
#    MedicationStatement denosumab by name
p = Pt("u-xu", family="Xu", given="Mei")
p.hypertension()
p.osteoporosis()
p.vcf("L1")
p.mri_edema(("L1",))
p.outpatient_worsening()
p.med(text="Tylenol Extra Strength 500 mg tablet", kind="MedicationStatement")
p.add({"resourceType": "DeviceRequest", "id": p.nid("dev"), "status": "active", "intent": "order",
       "codeCodeableConcept": cc((HCPCS_CMS, "L0456", "TLSO, flexible, trunk and thoracic region, prefabricated")),
       "subject": p.subject, "authoredOn": "2025-06-06"})
p.procedure([(CPT, "97161", "Physical therapy evaluation, low complexity")], performed="2025-06-10")
p.add({"resourceType": "Observation", "id": p.nid("dxa"), "status": "final",
       "code": cc((LOINC, "38263-0", "DXA Lumbar spine [T-score] Bone density")), "subject": p.subject,
       "effectiveDateTime": "2025-06-12T09:00:00Z",
       "valueQuantity": {"value": -2.9, "unit": "{T-score}", "system": "http://unitsofmeasure.org", "code": "{T-score}"}})  # noqa: E501
p.service([(SCT, "306206005", "Referral to service")], text="Referral to fracture liaison service",
          authored="2025-06-12")
p.med(text="Prolia 60 mg/mL prefilled syringe", kind="MedicationStatement", authored="2025-06-12")
p.inr(1.0)
emit("nsm-brands-hcpcs-cms-tscore.json", [p], {"Patient/u-xu": exp(
    "eligible", ["L1"], "NSM by brand only (Tylenol), brace HCPCS L0456 under the CMS HCPCS URI, PT CPT 97161; DXA "
    "by T-score Observation 38263-0; program by 'fracture liaison service' and Prolia (denosumab) statement; "
    "worsening pain; edema L1")})

# 26 INR 1.8 then 1.1, apixaban -> eligible with flag
p = Pt("u-yilmaz", family="Yilmaz", given="Ayse")
p.hypertension()
p.osteoporosis()
p.vcf("T12")
p.mri_edema(("T12",))
p.outpatient_worsening()
p.med("161", "acetaminophen")
p.service([(CPT, "77080", "DXA bone density study")], text="DXA")
p.med("46041", "alendronate")
p.med("1364430", "apixaban")
p.inr(1.8, "2025-06-10T08:00:00Z")
p.inr(1.1, "2025-06-24T08:00:00Z")
emit("inr-corrected-anticoagulant.json", [p], {"Patient/u-yilmaz": exp(
    "eligible", ["T12"], "INR 1.8 then a later INR 1.1: corrected, no coagulopathy (X6 absent); apixaban alone "
    "is context, flagged", flag="anticoagulant")})

# 27 INR 1.9 latest -> X6
p = Pt("u-zeller", family="Zeller", given="Hanna")
p.hypertension()
p.osteoporosis()
p.vcf("T12")
p.mri_edema(("T12",))
p.outpatient_worsening()
p.med("161", "acetaminophen")
p.service([(CPT, "77080", "DXA")], text="DXA")
p.med("46041", "alendronate")
p.med("11289", "warfarin")
p.inr(1.2, "2025-06-10T08:00:00Z")
p.inr(1.9, "2025-06-24T08:00:00Z")
emit("inr-latest-high.json", [p], {"Patient/u-zeller": exp(
    "not-eligible", ["T12"], "latest INR 1.9 > 1.5, no later normal INR: uncorrected coagulopathy (X6 present)")})

# 28 iodine allergy only
p = Pt("u-abbott", family="Abbott", given="Joan")
p.base("L1")
p.add({"resourceType": "AllergyIntolerance", "id": p.nid("alg"),
       "clinicalStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active")),
       "verificationStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed")),
       "code": cc(text="Iodine"), "patient": p.subject, "recordedDate": "2018-02-01",
       "reaction": [{"manifestation": [cc(text="rash")]}]})
p.add({"resourceType": "AllergyIntolerance", "id": p.nid("alg"),
       "clinicalStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active")),
       "code": cc(text="Shellfish"), "patient": p.subject, "recordedDate": "2018-02-01"})
emit("iodine-shellfish-allergy-only.json", [p], {"Patient/u-abbott": exp(
    "eligible", ["L1"], "'iodine' and 'shellfish' allergies alone are not a contrast allergy (X5 absent)")})

# 29 sequela M80.08XS with acute onset and MRI edema
p = Pt("u-bauer", family="Bauer", given="Gerda")
p.base("L2", code="M80.08XS")
emit("sequela-m80-08xs.json", [p], {"Patient/u-bauer": exp(
    "eligible", ["L2"], "M80.08XS (sequela) is in the osteoporotic group; acuity from onset (28 d) and MRI edema")})

# 30 M80.08XD -> review
p = Pt("u-castro", family="Castro", given="Elena")
p.base("L2", code="M80.08XD")
emit("subsequent-m80-08xd.json", [p], {"Patient/u-castro": exp(
    "needs-review", ["L2"], "M80.08XD: 7th character D (subsequent encounter) -> coding review")})

# 31 D18.09 vertebral hemangioma
p = Pt("u-dubois", family="Dubois", given="Claire")
p.hypertension()
p.condition([(ICD, "D18.09", "Hemangioma of other sites")], text="Aggressive vertebral hemangioma T11",
            onset="2025-06-02", body=[vert("T11")])
s = p.study("MR", levels=("T11",))
p.report(s, "Aggressive hemangioma of the T11 vertebral body with marrow edema and mild height loss.")
p.outpatient_worsening()
p.standard_care()
emit("hemangioma-d18-09.json", [p], {"Patient/u-dubois": exp(
    "needs-review", ["T11"], "D18.09 vertebral hemangioma: a non-osteoporotic, non-malignant indication -> review")})

# 32 C79.51 + M84.58XA, two levels, malignant (old onset does not matter)
p = Pt("u-evans", family="Evans", given="Ruth", birth="1956-09-02")
p.hypertension()
p.condition([(ICD, "C79.51", "Secondary malignant neoplasm of bone")], text="Metastatic breast cancer to bone",
            onset="2024-11-01", category="problem-list-item")
for lv in ("T10", "L2"):
    p.vcf(lv, code="M84.58XA", onset="2025-01-15")
s = p.study("MR", levels=("T10", "L2"))
p.report(s, "Pathologic compression fractures of T10 and L2 with marrow edema at both levels. No retropulsion. "
         "No epidural extension.")
p.outpatient_worsening()
p.med("7804", "oxycodone")
p.inr(1.1)
emit("malignant-c79-51-two-levels.json", [p], {"Patient/u-evans": exp(
    "eligible", ["T10", "L2"], "C79.51 + M84.58XA: malignant route (A56572); onset 2025-01-15 would be chronic but "
    "the age window and continuum of care are not applied; painful lesions despite oxycodone; edema at both")})

# 33 C90.02 myeloma, four levels -> waiver
p = Pt("u-fischer", family="Fischer", given="Klaus", gender="male", birth="1950-01-20")
p.hypertension()
p.condition([(ICD, "C90.02", "Multiple myeloma in relapse")], text="Multiple myeloma", onset="2023-05-01",
            category="problem-list-item")
for lv in ("T8", "T9", "T10", "T11"):
    p.vcf(lv, code="M84.58XA", onset="2025-05-25")
s = p.study("MR", levels=("T8", "T9", "T10", "T11"))
p.report(s, "Myeloma-related compression fractures of T8, T9, T10 and T11 with marrow edema. No retropulsion.")
p.outpatient_worsening()
p.med("7804", "oxycodone")
p.inr(1.0)
emit("myeloma-c90-02-four-levels.json", [p], {"Patient/u-fischer": exp(
    "eligible", ["T8", "T9", "T10", "T11"], "C90.02 + M84.58XA (malignant route); four levels: more than three is "
    "waived for multiple myeloma (A56572)")})

# 34 cervical C7
p = Pt("u-garcia", family="Garcia", given="Rosa")
p.hypertension()
p.osteoporosis()
p.vcf(None, body=[cc(text="C7 vertebral body")])
s = p.study("MR", levels=())
p.report(s, "Acute C7 compression fracture with marrow edema.")
p.outpatient_worsening()
p.standard_care()
emit("cervical-c7.json", [p], {"Patient/u-garcia": exp(
    "not-eligible", ["C7"], "C7 is outside T1-L5 (I2 not met); the level is reported, not dropped")})

# 35 L5 in range
p = Pt("u-horvat", family="Horvat", given="Vesna")
p.base("L5")
emit("lumbar-l5.json", [p], {"Patient/u-horvat": exp("eligible", ["L5"], "L5 is inside T1-L5 (I2 met)")})

# 36 T2 flag
p = Pt("u-ito", family="Ito", given="Keiko")
p.base("T2")
emit("thoracic-t2-flag.json", [p], {"Patient/u-ito": exp(
    "eligible", ["T2"], "T2 inside T1-L5 with the T1-T4 focused-review flag", flag="T1-T4")})

# 37 ServiceRequest text only "Kyphoplasty T12, L1"
p = Pt("u-jovanovic", family="Jovanovic", given="Mira")
p.hypertension()
p.osteoporosis()
f1 = p.vcf("T12")
f2 = p.vcf("L1")
p.mri_edema(("T12", "L1"))
p.outpatient_worsening()
p.standard_care()
p.service([], text="Kyphoplasty T12, L1", status="draft", authored="2025-06-27", reasons=[f1, f2])
emit("request-text-kyphoplasty-t12-l1.json", [p], {"Patient/u-jovanovic": exp(
    "eligible", ["T12", "L1"], "draft ServiceRequest with code.text only 'Kyphoplasty T12, L1': levels from the text; "
    "both fractured and acute with edema. (Corrected: the evaluation's `technique` is advice from the record - no "
    "height loss documented -> 'either'; the requested technique is request.technique = kyphoplasty)",
    request_technique="kyphoplasty")})

# 38 request names L2, fracture only at L1
p = Pt("u-kim", family="Kim", given="Soo")
p.base("L1")
p.service([(CPT, "22514", "Percutaneous vertebral augmentation, lumbar")], text="Kyphoplasty L2", status="draft",
          authored="2025-06-27", body=[vert("L2")])
emit("request-l2-no-fracture.json", [p], {"Patient/u-kim": exp(
    "not-eligible", ["L2"], "the request names L2 but the only documented fracture is L1: no fracture at the "
    "treated level (I2 not met)")})

# 39 deleted CPT 22520
p = Pt("u-lopez", family="Lopez", given="Carmen")
p.base("T12")
p.service([(CPT, "22520", "Percutaneous vertebroplasty, thoracic (deleted)")], text="Vertebroplasty T12",
          status="draft", authored="2025-06-27", body=[vert("T12")])
emit("request-deleted-cpt-22520.json", [p], {"Patient/u-lopez": exp(
    "needs-review", ["T12"], "CPT 22520 was deleted: reject with a clear message (order 22510-22515)",
    message="22520")})

# 40 transaction bundle with urn:uuid references only
p = Pt("u-muller", family="Muller", given="Frieda")
p.base("L1")
ids = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, r['id'])}" for r in p.res}


def rewrite(obj):
    if isinstance(obj, dict):
        return {k: (ids.get(v, v) if k == "reference" else rewrite(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rewrite(x) for x in obj]
    return obj


entries = []
for r in p.res:
    key = f"{r['resourceType']}/{r['id']}"
    body = rewrite(copy.deepcopy(r))
    body.pop("id", None)
    entries.append({"fullUrl": ids[key], "resource": body, "request": {"method": "POST", "url": r["resourceType"]}})
FILES["transaction-urn-uuid.json"] = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
EXPECTED["transaction-urn-uuid.json"] = {ids["Patient/u-muller"]: exp(
    "eligible", ["L1"], "the base eligible record as a transaction Bundle: no ids, urn:uuid fullUrls and references only")}  # noqa: E501

# 41 searchset with absolute URLs
p = Pt("u-nilsen", family="Nilsen", given="Berit")
p.base("T11")


def absolute(obj):
    if isinstance(obj, dict):
        return {k: (f"{BASE}/{v}" if k == "reference" and "/" in v and not v.startswith("http") else absolute(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [absolute(x) for x in obj]
    return obj


FILES["searchset-absolute-urls.json"] = {
    "resourceType": "Bundle", "type": "searchset", "total": len(p.res),
    "link": [{"relation": "self", "url": f"{BASE}/Patient/u-nilsen/$everything"}],
    "entry": [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": absolute(r),
               "search": {"mode": "match" if r["resourceType"] == "Patient" else "include"}} for r in p.res]}
EXPECTED["searchset-absolute-urls.json"] = {"Patient/u-nilsen": exp(
    "eligible", ["T11"], "the base eligible record as a searchset with absolute reference URLs")}

# 42 a single Patient resource (not a Bundle)
FILES["single-patient-resource.json"] = Pt("u-olsen", family="Olsen", given="Ingrid").patient
EXPECTED["single-patient-resource.json"] = {"Patient/u-olsen": exp(
    "insufficient-data", [], "a bare Patient resource: no fracture documented -> every criterion unknown")}

# 43 negated text: no retropulsion, negative for discitis
p = Pt("u-park", family="Park", given="Jiwoo")
p.hypertension()
p.osteoporosis()
p.vcf("L1")
s = p.study("MR", levels=("L1",))
p.report(s, "Acute L1 osteoporotic compression fracture with marrow edema. No retropulsion. Negative for discitis "
         "or osteomyelitis. No canal compromise. Without cord compression.")
p.outpatient_worsening()
p.standard_care()
emit("negated-text.json", [p], {"Patient/u-park": exp(
    "eligible", ["L1"], "'No retropulsion', 'negative for discitis or osteomyelitis', 'no canal compromise', "
    "'without cord compression' are negated: X2, X8, X11 absent")})

# 44 radiograph months before the recorded onset -> conflict
p = Pt("u-quist", family="Quist", given="Sigrid")
p.hypertension()
p.osteoporosis()
p.vcf("T12", onset="2025-06-02")
x = p.study("DX", "2025-02-11T09:00:00Z", levels=("T12",), series_desc="LAT")
p.report(x, "Compression fracture of T12 with 20% height loss.")
p.mri_edema(("T12",))
p.outpatient_worsening()
p.standard_care()
emit("onset-conflict-old-radiograph.json", [p], {"Patient/u-quist": exp(
    "needs-review", ["T12"], "a radiograph of 2025-02-11 already shows the T12 fracture, months before the recorded "
    "onset 2025-06-02: onset conflict")})

# 45 entered-in-error pregnancy skipped
p = Pt("u-reyes", family="Reyes", given="Ana", birth="1979-02-14")
p.base("L1")
p.condition([(ICD, "Z33.1", "Pregnant state, incidental")], text="Pregnant", onset="2025-05-01",
            verification="entered-in-error", category="problem-list-item")
emit("entered-in-error-pregnancy.json", [p], {"Patient/u-reyes": exp(
    "eligible", ["L1"], "the only pregnancy Condition is entered-in-error: skipped (X3 absent)")})

# 46 disc notation must not become vertebral levels
p = Pt("u-silva", family="Silva", given="Teresa")
p.hypertension()
p.osteoporosis()
p.vcf("L1", notes=["Acute L1 osteoporotic compression fracture. Degenerative disc disease at the L4-L5 disc "
                   "and L5-S1 interspace, chronic."])
s = p.study("MR", levels=("L1",))
p.report(s, "Acute L1 compression fracture with marrow edema. Mild disc bulge at L4-L5. L5-S1 disc "
         "desiccation. No retropulsion.")
p.outpatient_worsening()
p.standard_care()
emit("disc-notation-not-levels.json", [p], {"Patient/u-silva": exp(
    "eligible", ["L1"], "'L4-L5 disc' and 'L5-S1 interspace' name discs, not fractured vertebrae: levels stay L1")})


# 47 everything in words: fracture 'fx', osteoporosis as text, STIR signal wording, pain as labelled text,
#    NSM brand, DEXA words, CarePlan education + Prolia
p = Pt("u-tran", family="Tran", given="Linh")
p.condition(None, text="Osteoporosis", onset="2020-01-01", recorded="2020-01-01", category="problem-list-item")
p.condition(None, text="Compression fx L1", onset="2025-06-02")
s = p.study("MR", levels=())
p.report(s, "Increased T2/STIR signal in the L1 vertebral body, consistent with an acute fracture. "
         "No retropulsion.")
for day, val in (("2025-06-09", 6), ("2025-06-23", 8)):
    e = p.encounter("AMB", f"{day}T09:00:00Z", f"{day}T09:40:00Z")
    p.add({"resourceType": "Observation", "id": p.nid("pain"), "status": "final",
           "code": cc(text="Pain assessment"), "subject": p.subject, "encounter": p.ref(e),
           "effectiveDateTime": f"{day}T09:10:00Z", "valueString": f"Pain score: {val}/10"})
p.med(text="Norco 5-325 mg tablet", kind="MedicationStatement")
p.service([], text="DEXA scan", authored="2025-06-10")
p.add({"resourceType": "CarePlan", "id": p.nid("cp"), "status": "active", "intent": "plan", "subject": p.subject,
       "title": "Bone health plan", "period": {"start": "2025-06-10"},
       "activity": [{"detail": {"status": "in-progress", "description": "Osteoporosis education; start Prolia"}}]})
emit("all-text-fx-stir-signal.json", [p], {"Patient/u-tran": exp(
    "eligible", ["L1"], "every fact in words: 'Compression fx L1' + osteoporosis (text) -> osteoporotic; MRI "
    "'increased T2/STIR signal in the L1 vertebral body' = marrow edema; 'Pain score: 6/10' then '8/10' "
    "(labelled text, ambulatory) worsening; Norco; 'DEXA scan'; CarePlan osteoporosis education + Prolia")})

# 48 ordinal vertebra in SNOMED display, bone scan 'intense tracer uptake'
p = Pt("u-uddin", family="Uddin", given="Nasreen")
p.hypertension()
p.osteoporosis()
p.condition([(SCT, "311891006", "Collapse of thoracic vertebra due to osteoporosis")],
            text="Collapse of ninth thoracic vertebra due to osteoporosis", onset="2025-06-02")
s = p.study("NM", levels=())
p.report(s, "Intense tracer uptake at T9, in keeping with a recent fracture.",
         code=[(LOINC, "39879-2", "NM Bone Whole body")])
p.outpatient_worsening()
p.standard_care()
emit("ordinal-level-bone-scan-intense.json", [p], {"Patient/u-uddin": exp(
    "eligible", ["T9"], "SNOMED 311891006 with text 'ninth thoracic vertebra' = T9; bone scan 'intense tracer "
    "uptake at T9' = increased uptake")})

# 49/50 one report, per-level findings in parentheses; with and without a request for T12 only
pts = []
for pid, request in (("u-vega", False), ("u-wolff", True)):
    p = Pt(pid, family=pid[2:].title(), given="Ida")
    p.hypertension()
    p.osteoporosis()
    f1 = p.vcf("T12")
    p.vcf("L1")
    s = p.study("MR", levels=("T12", "L1"))
    p.report(s, "Compression fractures of T12 (acute, marrow edema on STIR) and L1 (chronic, sclerotic, no edema). "
             "No retropulsion.")
    p.outpatient_worsening()
    p.standard_care()
    if request:
        p.service([(CPT, "22513", "Percutaneous vertebral augmentation, thoracic")], text="Kyphoplasty T12",
                  status="draft", authored="2025-06-27", body=[vert("T12")], reasons=[f1])
    pts.append(p)
emit("per-level-parentheses.json", pts, {
    "Patient/u-vega": exp("not-eligible", ["T12", "L1"], "no request: both fractures are judged; L1 is 'chronic, "
                          "sclerotic, no edema' (I3 not met at L1)"),
    "Patient/u-wolff": exp("eligible", ["T12"], "the request treats T12 only, which is acute with edema; the "
                           "chronic L1 is not treated"),
})

# 51/52 Genant words only: "severe" (> 40 %) vs "mild" (20-25 %), stable pain, kyphosis, RDQ 12, no progression
pts = []
for pid, grade in (("u-xavier", "severe"), ("u-young", "mild")):
    p = Pt(pid, family=pid[2:].title(), given="Beth")
    p.hypertension()
    p.osteoporosis()
    p.vcf("T10")
    s = p.study("MR", levels=("T10",))
    p.report(s, f"Acute {grade} compression deformity of T10 with marrow edema. No interval change compared with "
             "the radiograph of 2025-06-03.")
    p.condition([(SCT, "413428007", "Kyphosis")], text="Kyphosis", onset="2025-06-05", category="problem-list-item")
    p.finding("rdq-score", 12, "T10", s, when="2025-06-23T09:00:00Z")
    e1 = p.encounter("AMB", "2025-06-09T09:00:00Z", "2025-06-09T09:40:00Z")
    p.pain(6, "2025-06-09T09:10:00Z", e1)
    e2 = p.encounter("AMB", "2025-06-23T09:00:00Z", "2025-06-23T09:40:00Z")
    p.pain(6, "2025-06-23T09:10:00Z", e2)
    p.standard_care()
    pts.append(p)
emit("genant-words-severe-mild.json", pts, {
    "Patient/u-xavier": exp("eligible", ["T10"], "stable NRS 6; 'severe compression deformity' = Genant 3 (> 40 %): "
                            "B met, C kyphosis (SNOMED 413428007): two of A-D", technique="kyphoplasty"),
    "Patient/u-young": exp("not-eligible", ["T10"], "stable NRS 6; 'mild' = Genant 1 (20-25 %): B not met; C "
                           "kyphosis yes; A no ('no interval change'); D RDQ 12: one of A-D"),
})

# 53/54 a full radiology report (sections, sequences, disc levels, a question in the history, an old T8)
REPORT = (
    "EXAM: MRI THORACIC AND LUMBAR SPINE WITHOUT CONTRAST\n"
    "CLINICAL HISTORY: Back pain after a fall. Evaluate for fracture. r/o cord compression.\n"
    "TECHNIQUE: Sagittal T1, T2 and STIR; axial T2.\n"
    "COMPARISON: Radiograph 06/01/2025.\n"
    "FINDINGS: There is an acute compression fracture of the L1 vertebral body with diffuse marrow edema on "
    "STIR and approximately 30% loss of anterior height. No retropulsion. The posterior wall is intact. The "
    "spinal canal is patent. Chronic mild wedge deformity of T8 without edema. Vertebral body heights are "
    "otherwise maintained. L4-L5: disc bulge with mild bilateral foraminal narrowing, no nerve root impingement. "
    "L5-S1: mild facet arthropathy. No paraspinal fluid collection. No evidence of discitis/osteomyelitis.\n"
    "IMPRESSION: 1. Acute L1 compression fracture with 30% height loss. 2. Chronic T8 deformity. "
    "3. Mild degenerative changes at L4-L5 and L5-S1 discs."
)
pts = []
for pid, coded in (("u-zhou", True), ("u-zoran", False)):
    p = Pt(pid, family=pid[2:].title(), given="Mae")
    p.hypertension()
    p.osteoporosis()
    p.vcf("L1" if coded else None, body=[vert("L1")] if coded else None)
    s = p.study("MR", levels=(), series_desc="SAG T2 FS")
    p.report(s, REPORT)
    p.outpatient_worsening()
    p.standard_care()
    pts.append(p)
emit("full-report-sections.json", pts, {
    "Patient/u-zhou": exp("eligible", ["L1"], "full MRI report: acute L1 fracture with edema; 'r/o cord compression' "
                          "is the question in CLINICAL HISTORY, not a finding (X8 absent); sequences 'T1, T2', "
                          "'SAG T2 FS' name no vertebra; 'L4-L5: disc bulge' is a disc"),
    "Patient/u-zoran": exp("eligible", ["L1"], "same report, fracture Condition without a level: imaging gives L1 "
                           "(the chronic T8 deformity is an old fracture, not this Condition's level)"),
})

# 55 percentages 'respectively' across two levels; only L1 requested
p = Pt("u-adler", family="Adler", given="Ruth")
p.hypertension()
p.osteoporosis()
p.vcf("T12")
f_l1 = p.vcf("L1")
s = p.study("MR", levels=("T12", "L1"))
p.report(s, "T12 and L1 compression fractures with 30% and 20% height loss respectively, both with marrow edema. "
         "No interval change compared with the radiograph of 2025-06-03.")
p.condition([(ICD, "M40.204", "Unspecified kyphosis, thoracic region")], text="Kyphosis", onset="2025-06-05",
            category="problem-list-item")
p.finding("rdq-score", 10, "L1", s, when="2025-06-23T09:00:00Z")
e1 = p.encounter("AMB", "2025-06-09T09:00:00Z", "2025-06-09T09:40:00Z")
p.pain(6, "2025-06-09T09:10:00Z", e1)
e2 = p.encounter("AMB", "2025-06-23T09:00:00Z", "2025-06-23T09:40:00Z")
p.pain(6, "2025-06-23T09:10:00Z", e2)
p.standard_care()
p.service([(CPT, "22514", "Percutaneous vertebral augmentation, lumbar")], text="Kyphoplasty L1", status="draft",
          authored="2025-06-27", body=[vert("L1")], reasons=[f_l1])
emit("percentages-respectively-l1-requested.json", [p], {"Patient/u-adler": exp(
    "not-eligible", ["L1"], "only L1 is requested; '30% and 20% ... respectively' gives L1 20 % (B not met, the 30 % "
    "is T12's); A no ('no interval change'), C kyphosis yes, D RDQ 10: one of A-D with stable NRS 6")})

OUT.mkdir(parents=True, exist_ok=True)
for name, doc in FILES.items():
    (OUT / name).write_text(json.dumps(doc, indent=1) + "\n")
(OUT / "expected.json").write_text(json.dumps(EXPECTED, indent=2) + "\n")
print(len(FILES), "files", sum(len(v) for v in EXPECTED.values()), "patients")

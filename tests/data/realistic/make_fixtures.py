"""Writes the realistic-export fixtures (tests/data/realistic/*.json) and their expected.json.

    .venv/bin/python tests/data/realistic/make_fixtures.py      # rewrites the folder it sits in

Each bundle is shaped like a real EHR export rather than a minimal test record: Synthea-style
transaction bundles with urn:uuid references, vendor searchsets with absolute URLs, plenty of
resources the rules never read (Practitioner, Organization, Location, Medication, Immunization, Claim,
ExplanationOfBenefit, Provenance, DocumentReference), vitals / labs / social history, several
encounters (ED, admission, clinic), long sectioned radiology reports written with the usual
abbreviations, dual ICD-10-CM + SNOMED codings, resolved old fractures, product-level RxNorm codes and
a `meta.lastUpdated` after the as-of date on every resource (it must be ignored).

Every expectation was reasoned from clinical-rules.md / input-profile.md BEFORE the core ran; where
the first expectation turned out wrong, its "why" says so.
"""

# ruff: noqa: E501  (report texts are kept as the one-line paragraphs radiologists write)
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
FIND = "urn:fhir-vcf:finding"
UCUM = "http://unitsofmeasure.org"
CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSCAT = "http://terminology.hl7.org/CodeSystem/observation-category"
LAST_UPDATED = "2025-07-14T03:12:44.118+00:00"  # after the as-of date: must never hide or date anything
VERT = {
    "T1": "64864005", "T2": "53733008", "T3": "1626008", "T4": "73071006", "T5": "56401006",
    "T6": "45296009", "T7": "62487009", "T8": "11068009", "T9": "82687006", "T10": "7610001",
    "T11": "12989004", "T12": "23215003", "L1": "66794005", "L2": "14293000", "L3": "36470004",
    "L4": "11994002", "L5": "49668003",
}
VERT_NAME = {"T": "thoracic", "L": "lumbar"}


def cc(*codings, text=None):
    out = {}
    if codings:
        out["coding"] = [dict(zip(("system", "code", "display"), c, strict=False)) for c in codings]
    if text:
        out["text"] = text
    return out


def vert(level):
    return cc((SCT, VERT[level], f"Structure of {VERT_NAME[level[0]]} vertebra {level}"))


class Export:
    """One patient's export. style "synthea" = transaction + urn:uuid refs; "vendor" = searchset + absolute URLs."""

    def __init__(self, pid, *, style="synthea", gender="female", birth="1944-09-23", family="Okafor",
                 given="Ruth"):
        self.pid, self.style, self.n = pid, style, 0
        self.entries = []
        self.base = "https://fhir.vendor-ehr.example.com/R4"
        self.patient = self.add({
            "resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth,
            "name": [{"use": "official", "family": family, "given": [given], "prefix": ["Mrs."]}],
            "identifier": [{"type": cc(("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical Record Number")),
                            "system": "http://hospital.smarthealthit.org", "value": str(uuid.uuid5(uuid.NAMESPACE_URL, pid))}],
            "address": [{"line": ["812 Gutkowski Rue"], "city": "Worcester", "state": "MA", "postalCode": "01604"}],
            "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": gender[0].upper()}],
        })
        self.org = self.add({"resourceType": "Organization", "id": self.nid("org"), "name": "SAINT VINCENT HOSPITAL",
                             "type": [cc(("http://terminology.hl7.org/CodeSystem/organization-type", "prov", "Healthcare Provider"))]})
        self.doc = self.add({"resourceType": "Practitioner", "id": self.nid("pract"),
                             "name": [{"family": "Kertzmann", "given": ["Ileana"], "prefix": ["Dr."]}],
                             "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999981992"}]})
        self.loc = self.add({"resourceType": "Location", "id": self.nid("loc"), "name": "SVH Emergency Dept",
                             "status": "active", "managingOrganization": self.ref(self.org)})
        self.add({"resourceType": "Immunization", "id": self.nid("imm"), "status": "completed",
                  "vaccineCode": cc(("http://hl7.org/fhir/sid/cvx", "140", "Influenza, seasonal, injectable, preservative free")),
                  "patient": self.subject, "occurrenceDateTime": "2024-10-02T10:15:00-04:00", "primarySource": True})
        self.add({"resourceType": "Observation", "id": self.nid("smoke"), "status": "final",
                  "category": [cc((OBSCAT, "social-history", "social-history"))],
                  "code": cc((LOINC, "72166-2", "Tobacco smoking status")), "subject": self.subject,
                  "effectiveDateTime": "2025-01-14T09:00:00-05:00",
                  "valueCodeableConcept": cc((SCT, "8517006", "Ex-smoker (finding)"))})
        self.condition([(ICD, "I10", "Essential (primary) hypertension"), (SCT, "59621000", "Essential hypertension (disorder)")],
                       onset="2009-05-02", category="problem-list-item")
        self.condition([(ICD, "E78.5", "Hyperlipidemia, unspecified"), (SCT, "55822004", "Hyperlipidemia")],
                       onset="2011-02-11", category="problem-list-item")

    # --- plumbing
    @property
    def subject(self):
        return self.ref(self.patient)

    def nid(self, kind):
        self.n += 1
        return f"{self.pid}-{kind}-{self.n}"

    def url(self, r):
        if self.style == "synthea":
            return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{r['resourceType']}/{r['id']}"))
        return f"{self.base}/{r['resourceType']}/{r['id']}"

    def ref(self, r, display=None):
        out = {"reference": self.url(r) if self.style == "synthea" else f"{r['resourceType']}/{r['id']}"}
        if display:
            out["display"] = display
        return out

    def add(self, r):
        r.setdefault("meta", {"lastUpdated": LAST_UPDATED, "versionId": "3"})
        self.entries.append(r)
        return r

    def bundle(self):
        if self.style == "synthea":
            entries = [{"fullUrl": self.url(r), "resource": r,
                        "request": {"method": "POST", "url": r["resourceType"]}} for r in self.entries]
            return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        entries = [{"fullUrl": self.url(r), "resource": r, "search": {"mode": "match"}} for r in self.entries]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries,
                "link": [{"relation": "self", "url": f"{self.base}/Patient/{self.pid}/$everything"}]}

    # --- clinical content
    def condition(self, codes, *, text=None, onset=None, recorded=None, body=None, notes=(), clinical="active",
                  verification="confirmed", category="encounter-diagnosis", abated=None, encounter=None,
                  onset_string=None):
        r = {"resourceType": "Condition", "id": self.nid("cond"),
             "clinicalStatus": cc((CLIN, clinical)), "verificationStatus": cc((VER, verification)),
             "category": [cc(("http://terminology.hl7.org/CodeSystem/condition-category", category))],
             "code": cc(*codes, text=text), "subject": self.subject}
        if body:
            r["bodySite"] = body
        if encounter is not None:
            r["encounter"] = self.ref(encounter)
        if onset:
            r["onsetDateTime"] = onset
        if onset_string:
            r["onsetString"] = onset_string
        if abated:
            r["abatementDateTime"] = abated
        r["recordedDate"] = recorded or onset or "2025-06-10"
        if notes:
            r["note"] = [{"text": t, "authorReference": self.ref(self.doc)} for t in notes]
        return self.add(r)

    def osteoporosis(self):
        return self.condition([(ICD, "M81.0", "Age-related osteoporosis without current pathological fracture"),
                               (SCT, "64859006", "Osteoporosis (disorder)")], onset="2016-08-19",
                              category="problem-list-item")

    def old_healed_t8(self):
        """A resolved T8 fracture from years ago: history, not a current fracture."""
        return self.condition([(ICD, "M80.08XA", "Age-related osteoporosis with current pathological fracture, vertebra(e), initial encounter for fracture"),
                               (SCT, "311891006", "Collapse of thoracic vertebra due to osteoporosis")],
                              onset="2018-03-04", abated="2018-09-01", clinical="resolved", body=[vert("T8")])

    def vcf(self, level, onset="2025-06-02", *, lumbar=None, extra_codes=(), **kw):
        lumbar = level.startswith("L") if lumbar is None else lumbar
        codes = [(ICD, "M80.08XA", "Age-related osteoporosis with current pathological fracture, vertebra(e), initial encounter for fracture"),
                 (SCT, "311890007" if lumbar else "311891006",
                  f"Collapse of {'lumbar' if lumbar else 'thoracic'} vertebra due to osteoporosis (disorder)"),
                 *extra_codes]
        kw.setdefault("body", [vert(level)] if level else None)
        return self.condition(codes, onset=onset, **kw)

    def encounter(self, cls, start, end, *, reason=None, etype="Encounter for problem"):
        disp = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter",
                "OBSENC": "observation encounter"}[cls]
        r = {"resourceType": "Encounter", "id": self.nid("enc"), "status": "finished",
             "class": {"system": ACT, "code": cls, "display": disp},
             "type": [cc((SCT, "185345009", etype), text=etype)], "subject": self.subject,
             "participant": [{"individual": self.ref(self.doc)}], "period": {"start": start, "end": end},
             "location": [{"location": self.ref(self.loc)}], "serviceProvider": self.ref(self.org)}
        if reason:
            r["reasonCode"] = [cc(text=reason)]
        self.add(r)
        self.claim(r)
        return r

    def claim(self, enc):
        c = self.add({"resourceType": "Claim", "id": self.nid("claim"), "status": "active",
                      "type": cc(("http://terminology.hl7.org/CodeSystem/claim-type", "institutional")),
                      "use": "claim", "patient": self.subject, "created": enc["period"]["end"],
                      "provider": self.ref(self.org), "priority": cc(("http://terminology.hl7.org/CodeSystem/processpriority", "normal")),
                      "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Medicare"}}],
                      "item": [{"sequence": 1, "productOrService": cc(text="Encounter"),
                                "encounter": [self.ref(enc)]}],
                      "total": {"value": 129.16, "currency": "USD"}})
        self.add({"resourceType": "ExplanationOfBenefit", "id": self.nid("eob"), "status": "active",
                  "type": cc(("http://terminology.hl7.org/CodeSystem/claim-type", "institutional")), "use": "claim",
                  "patient": self.subject, "created": enc["period"]["end"], "insurer": {"display": "Medicare"},
                  "provider": self.ref(self.org), "claim": self.ref(c), "outcome": "complete",
                  "insurance": [{"focal": True, "coverage": {"display": "Medicare"}}]})

    def vitals(self, enc, *, hr=88):
        t = enc["period"]["start"]
        for code, disp, value, unit in (("8867-4", "Heart rate", hr, "/min"), ("29463-7", "Body Weight", 61.2, "kg"),
                                        ("39156-5", "Body mass index (BMI) [Ratio]", 23.4, "kg/m2"),
                                        ("9279-1", "Respiratory rate", 16, "/min")):
            self.add({"resourceType": "Observation", "id": self.nid("vit"), "status": "final",
                      "category": [cc((OBSCAT, "vital-signs", "vital-signs"))], "code": cc((LOINC, code, disp), text=disp),
                      "subject": self.subject, "encounter": self.ref(enc), "effectiveDateTime": t,
                      "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}})

    def labs(self, enc, *, inr=None):
        t = enc["period"]["start"]
        rows = [("718-7", "Hemoglobin [Mass/volume] in Blood", 12.1, "g/dL"),
                ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 0.9, "mg/dL"),
                ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", 9.4, "mg/dL"),
                ("1989-3", "25-hydroxyvitamin D3 [Mass/volume] in Serum or Plasma", 22.0, "ng/mL"),
                ("777-3", "Platelets [#/volume] in Blood by Automated count", 241, "10*3/uL")]
        if inr is not None:
            rows.append(("6301-6", "INR in Platelet poor plasma by Coagulation assay", inr, "{INR}"))
        for code, disp, value, unit in rows:
            self.add({"resourceType": "Observation", "id": self.nid("lab"), "status": "final",
                      "category": [cc((OBSCAT, "laboratory", "laboratory"))], "code": cc((LOINC, code, disp), text=disp),
                      "subject": self.subject, "encounter": self.ref(enc), "effectiveDateTime": t, "issued": t,
                      "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}})

    def pain(self, value, enc, *, when=None, code="72514-3"):
        disp = {"72514-3": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
                "38214-3": "Pain severity [Score] Visual analog score"}[code]
        return self.add({"resourceType": "Observation", "id": self.nid("pain"), "status": "final",
                         "category": [cc((OBSCAT, "survey", "survey"))], "code": cc((LOINC, code, disp), text=disp),
                         "subject": self.subject, "encounter": self.ref(enc),
                         "effectiveDateTime": when or enc["period"]["start"],
                         "valueQuantity": {"value": value, "unit": "{score}", "system": UCUM, "code": "{score}"}})

    def study(self, modality, started, levels, *, description, series_desc):
        series = [{"uid": f"1.2.840.113619.2.55.3.{sum(map(ord, self.pid)) * 7 + self.n}.{i}", "number": i + 1,
                   "modality": {"system": DCM, "code": modality}, "description": d, "numberOfInstances": 18,
                   **({"bodySite": {"system": SCT, "code": VERT[lv], "display": f"{lv} vertebra"}} if lv else {})}
                  for i, (lv, d) in enumerate((lv, d) for lv in (levels or [None]) for d in series_desc)]
        return self.add({"resourceType": "ImagingStudy", "id": self.nid("img"), "status": "available",
                         "subject": self.subject, "started": started,
                         "modality": [{"system": DCM, "code": modality}], "description": description,
                         "numberOfSeries": len(series), "series": series,
                         "procedureCode": [cc(text=description)], "location": self.ref(self.loc)})

    def report(self, study, conclusion, *, code=(LOINC, "24558-9", "MR Thoracic and Lumbar spine"), when=None,
               encounter=None):
        when = when or study["started"]
        r = {"resourceType": "DiagnosticReport", "id": self.nid("rpt"), "status": "final",
             "category": [cc(("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology"))],
             "code": cc(code, text=code[2]), "subject": self.subject, "effectiveDateTime": when,
             "issued": when, "performer": [self.ref(self.doc)], "resultsInterpreter": [self.ref(self.doc)],
             "imagingStudy": [self.ref(study)], "conclusion": conclusion}
        if encounter is not None:
            r["encounter"] = self.ref(encounter)
        self.add(r)
        self.add({"resourceType": "DocumentReference", "id": self.nid("docref"), "status": "current",
                  "type": cc((LOINC, "18748-4", "Diagnostic imaging study")), "subject": self.subject,
                  "date": when, "content": [{"attachment": {"contentType": "application/pdf",
                                                            "url": f"{self.base}/Binary/{r['id']}"}}]})
        self.add({"resourceType": "Provenance", "id": self.nid("prov"), "target": [self.ref(r)],
                  "recorded": when, "agent": [{"who": self.ref(self.doc)}]})
        return r

    def finding(self, code, study, level, *, boolean=None, integer=None, percent=None):
        r = {"resourceType": "Observation", "id": self.nid("find"), "status": "final",
             "category": [cc((OBSCAT, "imaging", "imaging"))], "code": cc((FIND, code)),
             "subject": self.subject, "effectiveDateTime": study["started"], "derivedFrom": [self.ref(study)]}
        if level:
            r["bodySite"] = vert(level)
        if boolean is not None:
            r["valueBoolean"] = boolean
        if integer is not None:
            r["valueInteger"] = integer
        if percent is not None:
            r["valueQuantity"] = {"value": percent, "unit": "%", "system": UCUM, "code": "%"}
        return self.add(r)

    def medication(self, rxcui, name):
        return self.add({"resourceType": "Medication", "id": self.nid("medication"),
                         "code": cc((RX, rxcui, name), text=name), "status": "active"})

    def med_request(self, rxcui, name, authored, *, by_reference=False, encounter=None, status="active"):
        r = {"resourceType": "MedicationRequest", "id": self.nid("medrx"), "status": status, "intent": "order",
             "subject": self.subject, "authoredOn": authored, "requester": self.ref(self.doc),
             "dosageInstruction": [{"sequence": 1, "text": "Take as directed", "asNeededBoolean": False}]}
        if by_reference:
            med = self.medication(rxcui, name)
            r["medicationReference"] = self.ref(med, display=name)
        else:
            r["medicationCodeableConcept"] = cc((RX, rxcui, name), text=name)
        if encounter is not None:
            r["encounter"] = self.ref(encounter)
        return self.add(r)

    def service(self, codes, authored, *, text=None, status="active", body=None, reasons=(), intent="order",
                notes=()):
        r = {"resourceType": "ServiceRequest", "id": self.nid("sr"), "status": status, "intent": intent,
             "code": cc(*codes, text=text), "subject": self.subject, "authoredOn": authored,
             "requester": self.ref(self.doc)}
        if body:
            r["bodySite"] = [vert(lv) for lv in body]
        if reasons:
            r["reasonReference"] = [self.ref(x) for x in reasons]
        if notes:
            r["note"] = [{"text": t} for t in notes]
        return self.add(r)

    def procedure(self, codes, performed, *, text=None, encounter=None):
        r = {"resourceType": "Procedure", "id": self.nid("proc"), "status": "completed",
             "code": cc(*codes, text=text), "subject": self.subject, "performedDateTime": performed}
        if encounter is not None:
            r["encounter"] = self.ref(encounter)
        return self.add(r)

    def careplan(self, title, activities, created):
        return self.add({"resourceType": "CarePlan", "id": self.nid("cp"), "status": "active", "intent": "plan",
                         "title": title, "subject": self.subject, "created": created,
                         "category": [cc((SCT, "734163000", "Care plan"))],
                         "activity": [{"detail": {"status": "in-progress", "code": cc(text=a)}} for a in activities]})

    # --- common bundles of care
    def bone_health(self, when="2025-06-12"):
        """DXA order (CPT 77080) + alendronate by product code (SCD 904419)."""
        self.service([(CPT, "77080", "Dual-energy X-ray absorptiometry (DXA), bone density study, 1 or more sites; axial skeleton"),
                      (SCT, "312681000", "Bone densitometry")], when, text="DXA bone density, axial",
                     notes=["Pt educated on osteoporosis, fall prevention and calcium/vit D."])
        self.med_request("904419", "alendronate sodium 70 MG Oral Tablet", when, by_reference=True)


MR_CODE = (LOINC, "24558-9", "MR Thoracic and Lumbar spine")
CT_CODE = (LOINC, "24966-4", "CT Thoracic and Lumbar spine")
NM_CODE = (LOINC, "39879-2", "NM Bone scan whole body")


def mri(x, levels, conclusion, *, started="2025-06-04T16:40:00-04:00", encounter=None):
    s = x.study("MR", started, levels, description="MRI T-SPINE AND L-SPINE WO CONTRAST",
                series_desc=("SAG T1", "SAG STIR", "AX T2"))
    x.report(s, conclusion, code=MR_CODE, encounter=encounter)
    return s


def clinic_course(x, scores, *, start_day=9, gap=9, reason="Back pain f/u"):
    encs = []
    for i, value in enumerate(scores):
        d = start_day + i * gap
        e = x.encounter("AMB", f"2025-06-{d:02d}T10:00:00-04:00", f"2025-06-{d:02d}T10:30:00-04:00", reason=reason)
        x.pain(value, e, when=f"2025-06-{d:02d}T10:05:00-04:00")
        x.vitals(e)
        encs.append(e)
    return encs


FIXTURES: dict[str, dict] = {}
EXPECTED: dict[str, dict] = {}


def fixture(name, x, decision, levels, why, **extra):
    FIXTURES[name] = x.bundle()
    EXPECTED[name] = {f"Patient/{x.pid}": {"decision": decision, "asOf": "2025-06-30", "levels": levels,
                                           "why": why, **extra}}


MR_L1 = """EXAM: MRI THORACIC AND LUMBAR SPINE WITHOUT CONTRAST
HISTORY: 81F, fell from standing 6/1, severe low back pain. Hx osteoporosis.
TECHNIQUE: Multiplanar multisequence imaging incl. sag T1, sag STIR, ax T2.
COMPARISON: XR L-spine 06/02/2025. MRI L-spine 11/2019.
FINDINGS:
Alignment: mild exaggeration of thoracic kyphosis, unchanged.
Vertebrae: Acute compression fx of the L1 VB with ant wedge configuration and approx 30% ht loss. Diffuse STIR hyperintense marrow signal throughout L1 c/w acute fx. Posterior cortex intact, no retropulsion. Old healed T8 compression deformity w/o edema, unchanged since 2019.
Conus: terminates at L1-L2, normal signal.
Discs: L4-5 mild disc bulge w/o significant canal stenosis.
IMPRESSION:
1. Acute osteoporotic compression fx of L1 with ~30% ht loss, no retropulsion.
2. Chronic healed T8 deformity.
3. Mild L4-5 degenerative disc disease."""


def case_inpatient_l1():
    x = Export("rx-abbott", family="Abbott", given="Marguerite")
    x.osteoporosis()
    x.old_healed_t8()
    ed = x.encounter("EMER", "2025-06-02T08:10:00-04:00", "2025-06-02T13:40:00-04:00", reason="Fall, low back pain")
    x.pain(7, ed)
    x.vitals(ed, hr=104)
    x.labs(ed)
    adm = x.encounter("IMP", "2025-06-02T13:40:00-04:00", "2025-06-07T11:00:00-04:00",
                      reason="Intractable back pain, L1 compression fx")
    x.vcf("L1", encounter=adm)
    x.pain(9, adm, when="2025-06-03T08:00:00-04:00")
    x.pain(9, adm, when="2025-06-04T08:00:00-04:00")
    mri(x, ["L1"], MR_L1, encounter=adm)
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-02", encounter=adm)
    x.med_request("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet", "2025-06-03", encounter=adm)
    x.bone_health("2025-06-06")
    fixture("synthea-inpatient-l1-nrs9.json", x, "eligible", ["L1"],
            "M80.08XA + SNOMED 311890007 at L1, onset 2025-06-02 (28 d: acute, I1); L1 in T1-L5 (I2); MRI "
            "FINDINGS 'STIR hyperintense marrow signal throughout L1 c/w acute fx' (I3); ED NRS 7 then inpatient NRS 9 "
            "(hospitalized path, >= 8: I4a); DXA CPT 77080 + alendronate SCD via medicationReference (I5); the "
            "resolved 2018 T8 fracture and the 'old healed T8' report line are history only; 'no retropulsion', "
            "'w/o significant canal stenosis' are negated")


def case_outpatient_stable_supporting():
    x = Export("rx-baptiste", style="vendor", family="Baptiste", given="Claudette")
    x.osteoporosis()
    x.vcf("T12", onset="2025-05-26")
    s = mri(x, ["T12"], """FINDINGS: T12 VB compression fx, ant wedge, ~35% ht loss, w/ bone marrow edema on STIR. Mild focal kyphosis at the thoracolumbar junction. No canal compromise. Remaining VBs nl ht.
IMPRESSION: 1. Subacute T12 osteoporotic compression fx with marrow edema and 35% ht loss.""",
            started="2025-06-03T09:00:00-05:00")
    x.finding("rdq-score", s, None, integer=19)
    clinic_course(x, [7, 7, 6])
    x.med_request("835603", "traMADol Hydrochloride 50 MG Oral Tablet", "2025-06-03", by_reference=True)
    x.procedure([(SCT, "129365007", "Application of orthosis")], "2025-06-09", text="TLSO fitted")
    x.service([(CPT, "77080", "DXA bone density study, axial")], "2025-06-10")
    x.med_request("993460", "Prolia 60 MG in 1 ML Prefilled Syringe", "2025-06-10")
    fixture("vendor-outpatient-stable-t12-supporting.json", x, "eligible", ["T12"],
            "T12 M80.08XA onset 2025-05-26 (35 d, acute); MRI edema T12; clinic NRS 7, 7, 6: not worsening, "
            "still >= 5 (I4b2) with tramadol (product code, name on medicationReference.display) and a TLSO; "
            "supporting A-D: B height loss 35 % > 25, C kyphosis ('focal kyphosis'), D RDQ 19 > 17 (>= 2 met); "
            "DXA CPT 77080 + Prolia (denosumab brand) (I5)")


def case_ed_then_clinic_bone_scan():
    x = Export("rx-chen", family="Chen", given="Mei")
    x.osteoporosis()
    x.vcf("L2", onset="2025-05-20")
    ed = x.encounter("EMER", "2025-05-21T19:00:00-04:00", "2025-05-21T23:00:00-04:00", reason="Back pain")
    x.pain(5, ed)
    clinic_course(x, [6, 8], start_day=10, gap=10)
    s = x.study("NM", "2025-06-05T13:00:00-04:00", ["L2"], description="NM BONE SCAN WHOLE BODY",
                series_desc=("ANT/POST WB",))
    x.report(s, "HISTORY: L2 compression fx, ?acute. FINDINGS: Intense focal increased radiotracer uptake in the L2 "
             "VB in a linear band pattern. Mild degenerative uptake at bilateral knees. IMPRESSION: Scintigraphically "
             "active L2 compression fx.", code=NM_CODE)
    x.med_request("849574", "Naproxen sodium 220 MG Oral Tablet", "2025-05-21")
    x.add({"resourceType": "DiagnosticReport", "id": x.nid("dxa"), "status": "final",
           "code": cc((LOINC, "83311-1", "DXA Radius and Ulna [Mass/Area] Bone density")), "subject": x.subject,
           "effectiveDateTime": "2025-06-11", "issued": "2025-06-11T15:20:00-04:00",
           "conclusion": "L1-L4 T-score -2.9. Osteoporosis."})
    x.careplan("Bone health", ["Referral to bone health clinic (fracture liaison service)"], "2025-06-11")
    fixture("synthea-ed-clinic-worsening-l2-bone-scan.json", x, "eligible", ["L2"],
            "L2 onset 2025-05-20 (41 d, acute); bone scan 'increased radiotracer uptake in the L2 VB' (I3); pain in "
            "ED 5 then clinic 6, 8: ambulatory, latest > previous = worsening (I4b1) with naproxen (SCD code, "
            "name in display); DXA report 83311-1 + fracture liaison CarePlan (I5)")


def case_hospitalized_seven():
    x = Export("rx-dubois", style="vendor", family="Dubois", given="Odette")
    x.osteoporosis()
    x.vcf("T11")
    adm = x.encounter("IMP", "2025-06-14T10:00:00-05:00", "2025-06-18T12:00:00-05:00",
                      reason="Back pain, unable to ambulate")
    x.pain(7, adm, when="2025-06-14T11:00:00-05:00")
    x.pain(6, adm, when="2025-06-16T11:00:00-05:00")
    mri(x, ["T11"], "IMPRESSION: Acute T11 compression fx with marrow edema, 20% ht loss. No retropulsion.",
        started="2025-06-14T15:00:00-05:00", encounter=adm)
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-14", encounter=adm)
    x.bone_health("2025-06-17")
    fixture("vendor-hospitalized-nrs7-neither-path.json", x, "not-eligible", ["T11"],
            "everything else met (T11 acute 28 d, edema, I5), but the only scores are inpatient NRS 7 and 6: the "
            "hospitalized path needs >= 8 and a hospitalized patient with 5-7 meets neither path (clinical rules "
            "I4, literal reading): I4 not met")


def case_chronic():
    x = Export("rx-eriksen", family="Eriksen", given="Solveig")
    x.osteoporosis()
    x.vcf("L3", onset="2025-03-18", recorded="2025-06-20")
    mri(x, ["L3"], "FINDINGS: L3 compression fx w/ persistent STIR signal / marrow edema. IMPRESSION: L3 compression "
        "fx, still edematous.", started="2025-06-20T10:00:00-04:00")
    clinic_course(x, [6, 8], start_day=12)
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-04-01")
    x.bone_health("2025-04-02")
    fixture("synthea-chronic-l3-edema-persists.json", x, "not-eligible", ["L3"],
            "onset 2025-03-18 = 104 d before the as-of date: chronic (> 84 d), I1 not met even though the MRI still "
            "shows edema (RTC); recordedDate and meta.lastUpdated are recent and must not move the onset")


def case_x1_text():
    x = Export("rx-fofana", style="vendor", family="Fofana", given="Awa")
    x.osteoporosis()
    x.vcf("T12")
    x.condition([(ICD, "M48.062", "Spinal stenosis, lumbar region with neurogenic claudication"),
                 (SCT, "18347007", "Spinal stenosis of lumbar region")], onset="2022-04-01", category="problem-list-item")
    mri(x, ["T12"], "IMPRESSION:\n1. Acute T12 compression fx with marrow edema, 15% ht loss.\n2. Severe L4-5 "
        "central canal stenosis, unchanged.")
    encs = clinic_course(x, [7, 8])
    x.procedure([(SCT, "225386006", "Physical examination")], "2025-06-18", encounter=encs[-1],
                text="Spine exam: no point tenderness over T12. Sx are primarily due to severe L4-5 central stenosis "
                "w/ neurogenic claudication, not the T12 fx.")
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x1-pain-attributed-to-stenosis-text.json", x, "not-eligible", ["T12"],
            "inclusions met, but the spine exam note says the symptoms are primarily due to L4-5 stenosis, not the "
            "T12 fx: X1 (absolute) present in text only. FIRST RUN: needs-review (the stenosis on the problem list "
            "raised an open X1 question; the attribution in shorthand - 'Sx', 'L4-5' between verb and generator - "
            "was not read) - fixed in mappers/exclusions.py")


def case_x2_discitis():
    x = Export("rx-gallo", family="Gallo", given="Rosa")
    x.osteoporosis()
    x.vcf("L1")
    mri(x, ["L1"], "FINDINGS: L1 inferior endplate compression fx with marrow edema. Fluid signal within the L1-L2 "
        "disc space with endplate erosions and enhancing paraspinal phlegmon.\nIMPRESSION:\n1. L1 compression fx.\n"
        "2. Findings c/w L1-L2 discitis-osteomyelitis. Recommend IR-guided aspiration.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-x2-discitis-in-impression.json", x, "not-eligible", ["L1"],
            "L1 otherwise eligible; MRI impression 'c/w L1-L2 discitis-osteomyelitis' (text only, affirmed): X2 "
            "(absolute) present")


def case_x11_retropulsion():
    x = Export("rx-haddad", style="vendor", family="Haddad", given="Leila")
    x.osteoporosis()
    x.vcf("L1")
    mri(x, ["L1"], "FINDINGS: Acute L1 burst-type compression fx with STIR marrow edema and 40% ht loss. 4 mm "
        "retropulsed fragment from the posterosuperior L1 VB causes mild canal narrowing.\nIMPRESSION: Acute L1 fx "
        "with retropulsion.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x11-retropulsed-fragment.json", x, "not-eligible", ["L1"],
            "report text '4 mm retropulsed fragment ... mild canal narrowing': X11 present")


def case_x9_neuro_abbrev():
    x = Export("rx-ivanova", family="Ivanova", given="Galina")
    x.osteoporosis()
    x.vcf("L2")
    mri(x, ["L2"], "IMPRESSION: Acute L2 compression fx with marrow edema. No retropulsion.")
    encs = clinic_course(x, [6, 8])
    x.condition([(SCT, "26544005", "Muscle weakness (finding)")], text="Left lower extremity weakness, new",
                onset="2025-06-18", encounter=encs[-1],
                notes=["Neuro: new L quadriceps weakness 4-/5 and decreased sensation anterior thigh since the fx."])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-x9-new-leg-weakness.json", x, "not-eligible", ["L2"],
            "a current Condition 'Left lower extremity weakness, new' with the note 'new L quadriceps weakness 4-/5': "
            "a neurologic deficit, X9 present")


def case_x5_contrast():
    x = Export("rx-jovanovic", style="vendor", family="Jovanovic", given="Mira")
    x.osteoporosis()
    x.vcf("T10")
    mri(x, ["T10"], "IMPRESSION: Acute T10 compression fx with marrow edema.")
    clinic_course(x, [6, 7])
    x.add({"resourceType": "AllergyIntolerance", "id": x.nid("allergy"),
           "clinicalStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active")),
           "verificationStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed")),
           "type": "allergy", "category": ["medication"], "criticality": "high",
           "code": cc(text="Omnipaque (iohexol) - IV contrast"), "patient": x.subject, "recordedDate": "2015-02-02",
           "reaction": [{"manifestation": [cc((SCT, "247472004", "Hives"))], "severity": "moderate"}]})
    x.add({"resourceType": "AllergyIntolerance", "id": x.nid("allergy"),
           "clinicalStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active")),
           "code": cc((SCT, "300913006", "Shellfish allergy")), "patient": x.subject, "recordedDate": "2010-01-01"})
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x5-iv-contrast-allergy-text.json", x, "not-eligible", ["T10"],
            "AllergyIntolerance code.text 'Omnipaque (iohexol) - IV contrast' (no code): contrast allergy, X5 "
            "present; the shellfish allergy alone would not count")


def case_x6_inr():
    x = Export("rx-kapoor", family="Kapoor", given="Anita")
    x.osteoporosis()
    x.condition([(ICD, "I48.91", "Unspecified atrial fibrillation"), (SCT, "49436004", "Atrial fibrillation")],
                onset="2020-01-01", category="problem-list-item")
    x.vcf("L4")
    mri(x, ["L4"], "IMPRESSION: Acute L4 compression fx w/ marrow edema.")
    encs = clinic_course(x, [6, 8])
    x.labs(encs[0], inr=1.1)
    x.labs(encs[-1], inr=2.7)
    x.med_request("855332", "Warfarin Sodium 5 MG Oral Tablet", "2025-01-10")
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-x6-inr-2-7-on-warfarin.json", x, "not-eligible", ["L4"],
            "latest INR 2.7 (LOINC 6301-6) > 1.5 with no later normal INR: uncorrected coagulopathy, X6 present "
            "(warfarin alone would only be context)")


def case_x8_myelopathy():
    x = Export("rx-lund", style="vendor", family="Lund", given="Astrid")
    x.osteoporosis()
    x.vcf("T11")
    mri(x, ["T11"], "FINDINGS: Acute T11 compression fx with STIR marrow edema and 30% ht loss. Posterior bowing of "
        "the T11 posterior wall narrows the canal, w/ cord flattening and T2 hyperintense cord signal at T11.\n"
        "IMPRESSION: 1. Acute T11 fx. 2. Cord compression with myelopathic signal at T11.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x8-cord-compression-report.json", x, "not-eligible", ["T11"],
            "report impression 'Cord compression with myelopathic signal at T11' (X8) and canal narrowing from "
            "the posterior wall (X11): excluded")


def case_pregnancy():
    x = Export("rx-moreno", family="Moreno", given="Lucia", birth="1989-02-11")
    x.condition([(ICD, "M81.8", "Other osteoporosis without current pathological fracture"),
                 (SCT, "64859006", "Osteoporosis")], text="Pregnancy- and lactation-associated osteoporosis",
                onset="2025-05-01")
    x.vcf("T9", lumbar=False)
    x.condition([(ICD, "Z33.1", "Pregnant state, incidental"), (SCT, "77386006", "Pregnancy")],
                onset="2024-12-01")
    mri(x, ["T9"], "TECHNIQUE: Non-contrast MRI (pregnant pt). IMPRESSION: Acute T9 compression fx w/ marrow edema.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-x3-pregnant.json", x, "not-eligible", ["T9"],
            "active Z33.1 / SNOMED 77386006 on a female patient: pregnancy, X3 (absolute) present")


def case_myeloma_old_onset():
    x = Export("rx-nguyen", style="vendor", gender="male", family="Nguyen", given="Bao", birth="1951-07-30")
    x.condition([(ICD, "C90.00", "Multiple myeloma not having achieved remission"),
                 (SCT, "109989006", "Multiple myeloma")], onset="2024-11-04", category="problem-list-item")
    fx = [x.condition([(ICD, "M84.58XA", "Pathological fracture in neoplastic disease, other site, initial encounter for fracture")],
                      onset="2025-02-10", body=[vert(lv)]) for lv in ("T10", "L3")]
    mri(x, ["T10", "L3"], "FINDINGS: Diffuse heterogeneous marrow signal c/w known myeloma. Pathologic compression "
        "fx of T10 and L3 with marrow edema. No epidural extension, no cord compression.\nIMPRESSION: Myelomatous "
        "pathologic fx T10 and L3.", started="2025-06-06T08:00:00-05:00")
    clinic_course(x, [6, 6], reason="Oncology f/u")
    x.med_request("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet", "2025-02-12")
    x.service([(CPT, "22513", "Kyphoplasty thoracic"), (CPT, "22514", "Kyphoplasty lumbar")], "2025-06-20",
              status="draft", body=["T10", "L3"], reasons=fx, text="Kyphoplasty T10 and L3")
    fixture("vendor-malignant-myeloma-old-onset.json", x, "eligible", ["T10", "L3"],
            "C90.00 + M84.58XA at T10 and L3: the malignant route (A56572): no age window (onset 140 d would be "
            "chronic), no continuum of care (none documented), no NRS threshold; painful lesions (NRS 6) despite "
            "oxycodone, MRI shows edema, no exclusion ('no cord compression' negated)")


def case_review_neoplasm_without_m84():
    x = Export("rx-olsen", family="Olsen", given="Karin")
    x.osteoporosis()
    x.condition([(ICD, "C50.911", "Malignant neoplasm of unspecified site of right female breast")],
                onset="2021-03-01", clinical="remission", category="problem-list-item")
    x.condition([(ICD, "C79.51", "Secondary malignant neoplasm of bone"), (SCT, "94222008", "Secondary malignant neoplasm of bone")],
                onset="2025-05-01", category="problem-list-item")
    x.vcf("L1")
    mri(x, ["L1"], "IMPRESSION: L1 compression fx w/ marrow edema; scattered osseous mets elsewhere. Cannot "
        "distinguish osteoporotic from pathologic fx.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-review-c79-51-coded-m80.json", x, "needs-review", ["L1"],
            "bone metastasis C79.51 coded with the fracture as M80.08XA (no M84.58X- pair): a neoplasm code without "
            "the pair is a coding route to review (clinical rules, scope)")


def case_observation_stay():
    x = Export("rx-park", style="vendor", family="Park", given="Soon-ja")
    x.osteoporosis()
    x.vcf("L1")
    obs = x.encounter("OBSENC", "2025-06-15T22:00:00-04:00", "2025-06-17T10:00:00-04:00", reason="Back pain")
    x.pain(8, obs, when="2025-06-16T06:00:00-04:00")
    mri(x, ["L1"], "IMPRESSION: Acute L1 compression fx, marrow edema on STIR.", started="2025-06-16T09:00:00-04:00")
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-15")
    x.bone_health()
    fixture("vendor-observation-stay-nrs8.json", x, "needs-review", ["L1"],
            "the only pain score (NRS 8) was taken in an observation stay (OBSENC): needs review (input profile)")


def case_ct_only():
    x = Export("rx-quinn", family="Quinn", given="Maeve")
    x.osteoporosis()
    x.vcf("L1")
    ed = x.encounter("EMER", "2025-06-03T10:00:00-04:00", "2025-06-03T15:00:00-04:00", reason="Fall")
    s = x.study("CT", "2025-06-03T11:00:00-04:00", ["L1"], description="CT L-SPINE WO CONTRAST",
                series_desc=("AX 2mm BONE", "SAG REFORMAT"))
    x.report(s, "FINDINGS: Acute-appearing L1 compression fx with 25% ant ht loss, no retropulsion. "
             "IMPRESSION: L1 compression fx, likely acute. MRI recommended to assess acuity.", code=CT_CODE,
             encounter=ed)
    x.pain(6, ed)
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-insufficient-ct-only.json", x, "insufficient-data", ["L1"],
            "CT alone shows the fracture but not its acuity ('acute-appearing' on CT is not edema/uptake): I3 "
            "unknown, everything else met", missing=["MRI"])


def case_no_pain_no_dxa():
    x = Export("rx-rossi", style="vendor", family="Rossi", given="Lidia")
    x.osteoporosis()
    x.vcf("T12")
    mri(x, ["T12"], "IMPRESSION: Acute T12 compression fx w/ marrow edema.")
    e = x.encounter("AMB", "2025-06-12T09:00:00-04:00", "2025-06-12T09:30:00-04:00", reason="Back pain")
    x.vitals(e)
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.med_request("904419", "alendronate sodium 70 MG Oral Tablet", "2025-06-12", by_reference=True)
    fixture("vendor-insufficient-no-pain-score-no-dxa.json", x, "insufficient-data", ["T12"],
            "fracture, edema and alendronate present, but no pain score at all (only vitals) and no bone-density "
            "evaluation: I4 and I5 unknown", missing=["pain score", "DXA"])


def case_no_onset_lastupdated():
    x = Export("rx-sato", family="Sato", given="Yuki")
    x.osteoporosis()
    fx = x.vcf("L2")
    del fx["onsetDateTime"]
    del fx["recordedDate"]
    fx["meta"] = {"lastUpdated": "2025-06-10T10:00:00Z"}
    mri(x, ["L2"], "IMPRESSION: L2 compression fx with marrow edema.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-insufficient-no-onset-only-lastupdated.json", x, "insufficient-data", ["L2"],
            "the L2 Condition has no onset[x] and no recordedDate; its meta.lastUpdated (2025-06-10) must not be "
            "used as a date (input profile rule 4): the fracture age is unknown", missing=["onset"])


def case_requested_two_levels():
    x = Export("rx-tanaka", style="vendor", family="Tanaka", given="Hiro", gender="male", birth="1940-01-05")
    x.osteoporosis()
    x.old_healed_t8()
    t12 = x.vcf("T12", onset="2025-06-02")
    l1 = x.vcf("L1", onset="2025-05-19")
    adm = x.encounter("IMP", "2025-06-20T10:00:00-05:00", "2025-06-24T12:00:00-05:00", reason="Back pain")
    x.pain(9, adm, when="2025-06-20T12:00:00-05:00")
    mri(x, ["T12", "L1"], "FINDINGS: Acute compression fx of T12 and L1 VBs w/ marrow edema on STIR, 30% and 20% "
        "ht loss respectively. Old healed T8 deformity.\nIMPRESSION: Acute T12 and L1 compression fx.",
        started="2025-06-20T14:00:00-05:00", encounter=adm)
    x.med_request("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet", "2025-06-20")
    x.bone_health("2025-06-21")
    x.service([(CPT, "22513", "Percutaneous vertebral augmentation, kyphoplasty, thoracic"),
               (CPT, "22515", "each additional thoracic or lumbar vertebral body")], "2025-06-23",
              status="draft", body=["T12", "L1"], reasons=[t12, l1])
    fixture("vendor-requested-kyphoplasty-t12-l1.json", x, "eligible", ["T12", "L1"],
            "two fracture Conditions with different onsets (T12 28 d, L1 42 d: subacute), both edema; inpatient "
            "NRS 9; I5 met; the draft request 22513 + 22515 names T12 and L1 (levels = requested levels)")


def case_requested_one_of_two():
    x = Export("rx-usman", family="Usman", given="Fatima")
    x.osteoporosis()
    t12 = x.vcf("T12", onset="2025-06-02")
    x.vcf("L3", onset="2024-11-02")
    mri(x, ["T12", "L3"], "FINDINGS: T12: acute compression fx with marrow edema. L3: chronic compression "
        "deformity, no edema, sclerotic endplates.\nIMPRESSION: 1. Acute T12 fx. 2. Chronic L3 fx.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    x.service([(SCT, "429586004", "Percutaneous kyphoplasty of vertebra")], "2025-06-25", status="active",
              text="Kyphoplasty T12", reasons=[t12])
    fixture("synthea-request-t12-only-old-l3.json", x, "eligible", ["T12"],
            "an old L3 fracture (onset 2024-11, chronic, no edema) stays on the problem list, but the request "
            "(SNOMED kyphoplasty, text 'Kyphoplasty T12', reasonReference the T12 Condition) treats T12 only, which "
            "meets every criterion")


def case_text_only_abbrev():
    x = Export("rx-vasquez", style="vendor", family="Vasquez", given="Elena")
    x.condition([], text="Osteoporotic compression fx L1", onset="2025-06-02")
    x.condition([], text="Osteoporosis", onset="2017-01-01", category="problem-list-item")
    mri(x, [], """CLINICAL HISTORY: 78F w/ acute LBP after lifting, hx osteoporosis, r/o fx.
TECHNIQUE: Sag T1, sag STIR, ax T2 of the T/L spine.
COMPARISON: None.
FINDINGS: L1 VB: ant wedge deformity w/ ~40% ht loss and diffuse STIR hyperintensity c/w acute fx. T12 and L2 VB: nl ht, no edema. Thoracolumbar kyphosis. No retropulsion. Neural foramina patent.
IMPRESSION:
1. Acute L1 compression fx, ~40% ht loss.
2. Thoracolumbar kyphosis.""")
    clinic_course(x, [6, 6])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-text-only-abbreviations-l1.json", x, "eligible", ["L1"],
            "fracture only in code.text 'Osteoporotic compression fx L1'; report with 'VB', 'ant wedge', 'ht loss', "
            "'c/w', 'nl ht', 'r/o fx' in the history; acuity: STIR hyperintensity c/w acute fx at L1 (T12/L2 'no "
            "edema' do not touch L1); stable NRS 6, 6 with acetaminophen + 40 % height loss (B) + kyphosis (C)")


def case_genant_rdq_text():
    x = Export("rx-weber", family="Weber", given="Hannelore")
    x.osteoporosis()
    x.vcf("T7", lumbar=False)
    mri(x, ["T7"], "FINDINGS: T7 VB compression deformity, Genant grade 2 (moderate), with marrow edema on STIR.\n"
        "IMPRESSION: Subacute T7 compression fx, moderate.")
    encs = clinic_course(x, [8, 7])
    x.add({"resourceType": "Observation", "id": x.nid("note"), "status": "final",
           "category": [cc((OBSCAT, "survey", "survey"))], "code": cc(text="Functional assessment"),
           "subject": x.subject, "encounter": x.ref(encs[-1]), "effectiveDateTime": "2025-06-18T10:10:00-04:00",
           "valueString": "RMDQ 18/24; ambulating with walker."})
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.procedure([(SCT, "91251008", "Physical therapy procedure")], "2025-06-10")
    x.bone_health()
    fixture("synthea-genant-moderate-rmdq-text.json", x, "eligible", ["T7"],
            "T7 acute with edema; NRS 8 then 7 (improved, >= 5); supporting: B 'Genant grade 2 (moderate)' = 26 % "
            "> 25, D 'RMDQ 18/24' > 17: two of A-D (I4b2); acetaminophen + PT; I5 met")


def case_traumatic():
    x = Export("rx-xu", style="vendor", gender="male", birth="1979-03-03", family="Xu", given="Wei")
    x.condition([(ICD, "S32.010A", "Wedge compression fracture of first lumbar vertebra, initial encounter for closed fracture"),
                 (SCT, "207957008", "Closed fracture of first lumbar vertebra")], onset="2025-06-01",
                body=[vert("L1")], text="L1 compression fx after fall from ladder")
    ed = x.encounter("EMER", "2025-06-01T15:00:00-04:00", "2025-06-01T20:00:00-04:00", reason="Fall from ladder")
    x.pain(8, ed)
    mri(x, ["L1"], "IMPRESSION: Acute traumatic L1 wedge compression fx with marrow edema. Posterior ligamentous "
        "complex intact.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-02")
    fixture("vendor-traumatic-s32-ladder-fall.json", x, "not-eligible", ["L1"],
            "S32.010A (traumatic wedge fracture L1) in a 46-year-old man with no osteoporosis documented: not an "
            "osteoporotic VCF, not eligible (clinical rules, scope)")


def case_refuted_mets_and_eie():
    x = Export("rx-young", family="Young", given="Dorothy")
    x.osteoporosis()
    x.condition([(ICD, "C79.51", "Secondary malignant neoplasm of bone")], onset="2025-06-04", verification="refuted",
                text="?osseous mets")
    x.condition([(ICD, "M46.46", "Discitis, unspecified, lumbar region")], onset="2025-06-04",
                verification="entered-in-error")
    x.vcf("L3", onset="2025-05-28")
    mri(x, ["L3"], "CLINICAL INFORMATION: ?mets ?discitis\nFINDINGS: L3 compression fx w/ band-like marrow edema "
        "paralleling the sup endplate; no marrow replacement, no discitis.\nIMPRESSION:\n1. Benign-appearing acute "
        "osteoporotic L3 compression fx.\n2. Negative for metastatic disease or infection.")
    clinic_course(x, [5, 7])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-refuted-mets-eie-discitis.json", x, "eligible", ["L3"],
            "C79.51 is refuted and the discitis Condition entered-in-error: both skipped (rule 3); the report "
            "answers its own questions ('no discitis', 'Negative for metastatic disease or infection'); L3 acute "
            "with edema, worsening 5 -> 7, I5 met")


def case_second_fx_needs_imaging():
    x = Export("rx-zamora", style="vendor", family="Zamora", given="Pilar")
    x.osteoporosis()
    x.vcf("T12", onset="2025-06-02")
    x.vcf("L2", onset="2025-06-16")
    mri(x, ["T12"], "IMPRESSION: Acute T12 compression fx w/ marrow edema.", started="2025-06-04T10:00:00-05:00")
    s = x.study("DX", "2025-06-17T09:00:00-05:00", ["L2"], description="XR L-SPINE 2V", series_desc=("AP", "LAT"))
    x.report(s, "IMPRESSION: New L2 compression fx since 06/04 MRI, 20% ht loss.",
             code=(LOINC, "24932-6", "XR Lumbar spine 2 Views"))
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-second-fx-radiograph-only.json", x, "insufficient-data", ["T12", "L2"],
            "no request, so both fracture levels are judged: T12 has MRI edema, but the new L2 fracture (onset "
            "06-16) is seen on a radiograph only: acuity at L2 unknown -> insufficient data, asking for MRI/bone "
            "scan at L2", missing=["L2"])


def case_shorthand_negatives():
    x = Export("rx-adeyemi", family="Adeyemi", given="Funmi")
    x.osteoporosis()
    x.vcf("L1")
    mri(x, ["L1"], """HISTORY: 74F LBP x 4 wks, hx osteoporosis. R/O fx vs infection.
TECHNIQUE: Sag T1/STIR, ax T2.
FINDINGS: L1 VB sup endplate fx, ~20% ht loss, w/ BME. W/o retropulsion. Discs: mild DDD L4-5.
IMPRESSION:
1. Acute L1 compression fx w/ BME, w/o retropulsion.
2. Neg for discitis/osteomyelitis.
3. Neg for cord compression.""")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-shorthand-negatives-eligible.json", x, "eligible", ["L1"],
            "pertinent negatives written in shorthand: 'W/o retropulsion', 'Neg for discitis/osteomyelitis', 'Neg "
            "for cord compression' are absences, not X11/X2/X8; 'BME' (bone marrow edema) at L1 shows acuity; "
            "worsening 6 -> 8, I5 met. FIRST RUN: not-eligible (X2/X8/X11 present): 'neg for' and 'w/o' were "
            "not negations, 'BME' not edema - fixed in mappers/text.py and imaging.py")


def case_note_old_t8():
    x = Export("rx-bergstrom", style="vendor", family="Bergstrom", given="Ingrid")
    x.osteoporosis()
    x.vcf("L1", notes=["Hx T8 fx 2018, healed. Now new L1 fx after lifting groceries."])
    mri(x, ["L1"], "IMPRESSION: Acute L1 compression fx w/ marrow edema. Chronic T8 deformity.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-note-hx-t8-fx-healed.json", x, "eligible", ["L1"],
            "the L1 Condition's note recalls 'Hx T8 fx 2018, healed': history, not a second current level. "
            "FIRST RUN: not-eligible with levels T8, L1 (the report's 'Chronic T8 deformity' failed I3 at a level that "
            "was never fractured now) - fixed in mappers/fractures.py")


def case_text_only_old_healed():
    x = Export("rx-castillo", family="Castillo", given="Ines")
    x.condition([], text="Compression fx L1; old healed T8 fx", onset="2025-06-02")
    x.osteoporosis()
    mri(x, ["L1"], "IMPRESSION: Acute osteoporotic L1 compression fx w/ marrow edema. Old healed T8 fx.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-text-only-fx-and-old-healed.json", x, "eligible", ["L1"],
            "a text-only Condition 'Compression fx L1; old healed T8 fx': a current L1 fracture (osteoporosis on "
            "the problem list) that mentions an old one. FIRST RUN: levels T8, L1 (insufficient); with the first "
            "fix alone the whole Condition was dropped as 'healed' - both fixed in mappers/fractures.py")


def case_phlegmon():
    x = Export("rx-dimitriou", style="vendor", family="Dimitriou", given="Eleni")
    x.osteoporosis()
    x.vcf("L1")
    mri(x, ["L1"], "FINDINGS: L1 compression fx with marrow edema. Ventral epidural phlegmon at L1-2 w/o drainable "
        "collection.\nIMPRESSION: 1. L1 fx. 2. Epidural phlegmon L1-2, concerning for early abscess; correlate w/ "
        "ESR/CRP.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x2-epidural-phlegmon.json", x, "not-eligible", ["L1"],
            "an epidural phlegmon is a spinal infection (before it becomes an abscess): X2 present. FIRST RUN: "
            "eligible (phlegmon not read) - fixed in mappers/exclusions.py")


def case_mri_silent():
    x = Export("rx-ekwueme", family="Ekwueme", given="Chioma")
    x.osteoporosis()
    x.vcf("T12")
    mri(x, ["T12"], "FINDINGS: T12 VB abnormal signal, new since prior. Remaining VBs nl. IMPRESSION: T12 "
        "abnormality, see findings.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-mri-report-silent-on-edema.json", x, "insufficient-data", ["T12"],
            "an MRI of T12 is on file but its report says only 'abnormal signal': acuity unknown (I3). The missing "
            "item must ask for the report's statement on marrow edema at T12, not for 'an MRI' (which exists). "
            "FIRST RUN: decision right, reason 'no MRI or bone scan of the fracture' was false - fixed in "
            "rules/criteria.py", missing=["marrow edema"])


def case_support_undocumented():
    x = Export("rx-fitzgerald", style="vendor", family="Fitzgerald", given="Nora")
    x.osteoporosis()
    x.vcf("L1")
    old = x.encounter("IMP", "2024-02-01T10:00:00-05:00", "2024-02-05T10:00:00-05:00", reason="Pneumonia")
    x.pain(9, old)
    mri(x, ["L1"], "IMPRESSION: Acute L1 compression fx w/ marrow edema. No retropulsion.")
    clinic_course(x, [7, 6])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-improving-support-undocumented.json", x, "insufficient-data", ["L1"],
            "the NRS 9 of a 2024 pneumonia admission is outside the fracture episode; clinic 7 -> 6 is improved "
            "(I4b2) and needs 2 of A-D: no height-loss %, no progression, no RDQ documented, no kyphosis -> "
            "unknown; the missing item must say '2 of' the open findings, not list them as if all were needed",
            missing=["2 of"])


def case_knee_pain_later():
    x = Export("rx-gonzaga", style="vendor", family="Gonzaga", given="Teresa")
    x.osteoporosis()
    x.condition([(ICD, "M17.11", "Unilateral primary osteoarthritis, right knee")], onset="2019-01-01",
                category="problem-list-item")
    x.vcf("L1")
    mri(x, ["L1"], "IMPRESSION: Acute L1 compression fx w/ marrow edema.")
    clinic_course(x, [6, 8])
    ortho = x.encounter("AMB", "2025-06-26T09:00:00-04:00", "2025-06-26T09:20:00-04:00", reason="R knee OA f/u")
    knee = x.pain(3, ortho)
    knee["bodySite"] = cc((SCT, "72696002", "Knee region structure"), text="Right knee")
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-later-knee-pain-score.json", x, "eligible", ["L1"],
            "back pain 6 -> 8 in the spine clinic; a later orthopaedic visit charts NRS 3 with bodySite 'Right "
            "knee': not the fracture's pain, so it is not the latest score. FIRST RUN: not-eligible (I4: knee 3 "
            "read as the latest back score) - fixed in mappers/symptoms.py")


def case_request_text_exclusions():
    x = Export("rx-holm", family="Holm", given="Birgit")
    x.osteoporosis()
    t12 = x.vcf("T12")
    x.vcf("L1", onset="2024-10-01")
    mri(x, ["T12", "L1"], "IMPRESSION: 1. Acute T12 compression fx w/ marrow edema. 2. Chronic L1 fx, no edema.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    x.service([(CPT, "22513", "Kyphoplasty, thoracic")], "2025-06-25", status="draft",
              text="Kyphoplasty T12 (L1 chronic - not to be treated)", reasons=[t12])
    fixture("synthea-request-text-l1-not-treated.json", x, "eligible", ["T12"],
            "the order's text names L1 only to exclude it ('L1 chronic - not to be treated'): the request is T12, "
            "which is acute with edema; the chronic L1 is not treated. FIRST RUN: levels T12, L1 and not-eligible "
            "(I1/I3 failed at L1) - fixed in mappers/requests.py")


def case_allergy_agent_name():
    x = Export("rx-ito", style="vendor", family="Ito", given="Keiko")
    x.osteoporosis()
    x.vcf("L2")
    mri(x, ["L2"], "IMPRESSION: Acute L2 compression fx w/ marrow edema.")
    clinic_course(x, [6, 8])
    x.add({"resourceType": "AllergyIntolerance", "id": x.nid("allergy"),
           "clinicalStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active")),
           "verificationStatus": cc(("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed")),
           "category": ["medication"], "code": cc((RX, "5956", "Iohexol")), "patient": x.subject,
           "recordedDate": "2019-05-02", "reaction": [{"manifestation": [cc((SCT, "39579001", "Anaphylaxis"))]}]})
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x5-iohexol-rxnorm-allergy.json", x, "not-eligible", ["L2"],
            "an anaphylaxis to iohexol (RxNorm ingredient, an iodinated contrast agent; no word 'contrast'): "
            "allergy to an opacification agent, X5 present. FIRST RUN: eligible - the agent's name was not "
            "read; names added in mappers/codes/rxnorm.py")


def case_ct_cannot_assess_edema():
    x = Export("rx-jablonski", family="Jablonski", given="Halina")
    x.osteoporosis()
    x.vcf("T12")
    ed = x.encounter("EMER", "2025-06-02T21:00:00-04:00", "2025-06-03T02:00:00-04:00", reason="Mechanical fall")
    s = x.study("CT", "2025-06-02T22:10:00-04:00", ["T12"], description="CT T-SPINE WO CONTRAST",
                series_desc=("AX BONE 1.25mm", "SAG REFORMAT"))
    x.report(s, "TECHNIQUE: Axial CT w/ sag/cor reformats.\nFINDINGS: T12 sup endplate compression fx, ~20% ht loss. "
             "Posterior cortex intact. Cannot assess marrow edema on CT.\nIMPRESSION: T12 compression fx, age "
             "indeterminate. MRI recommended if clinically indicated.", code=CT_CODE, encounter=ed)
    x.pain(8, ed)
    clinic_course(x, [7, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-03")
    x.bone_health()
    fixture("synthea-ct-cannot-assess-edema.json", x, "insufficient-data", ["T12"],
            "CT only; its report says 'Cannot assess marrow edema on CT': that is no edema finding (and CT alone "
            "cannot show acuity, I3 unknown). FIRST RUN: eligible - the edema words in the CT report were read as "
            "MRI marrow edema - fixed in mappers/imaging.py (edema words in CT/XR reports are not advanced "
            "imaging) and text.py ('cannot assess' is no finding)", missing=["MRI"])


def case_inpatient_then_pain_settles():
    x = Export("rx-kowalczyk", style="vendor", family="Kowalczyk", given="Zofia")
    x.osteoporosis()
    x.vcf("L1")
    adm = x.encounter("IMP", "2025-06-03T12:00:00-05:00", "2025-06-06T12:00:00-05:00", reason="L1 fx, pain control")
    x.pain(9, adm)
    mri(x, ["L1"], "IMPRESSION: Acute L1 compression fx w/ marrow edema, 15% ht loss.", encounter=adm,
        started="2025-06-03T18:00:00-05:00")
    clinic_course(x, [3], start_day=16, reason="Post-discharge f/u")
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-03")
    x.bone_health()
    fixture("vendor-inpatient-9-then-clinic-3.json", x, "not-eligible", ["L1"],
            "NRS 9 during the admission, but after discharge the latest score is NRS 3 in clinic: the current "
            "setting is outpatient and pain < 5 (I4 not met). Reading: I4 judges the pain as it stands now "
            "(NICE: 'severe ongoing pain'); an earlier admission's score does not carry path (a) past discharge")


def case_x9_lle_exam():
    x = Export("rx-lindqvist", style="vendor", family="Lindqvist", given="Maj")
    x.osteoporosis()
    x.vcf("L1")
    mri(x, ["L1"], "IMPRESSION: Acute L1 compression fx w/ marrow edema. W/o retropulsion.")
    encs = clinic_course(x, [6, 8])
    x.procedure([(SCT, "225386006", "Physical examination")], "2025-06-18", encounter=encs[-1],
                text="Spine exam: TTP over L1. Neuro: LLE weakness 4/5, new since the fall; sensation intact.")
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x9-lle-weakness-exam-note.json", x, "not-eligible", ["L1"],
            "the exam note says 'LLE weakness 4/5, new since the fall' (LLE = left lower extremity): a neurologic "
            "deficit, X9 present. FIRST RUN: not-eligible for the wrong reason (X11 from 'W/o retropulsion'); once "
            "'w/o' was a negation it turned eligible - 'LLE weakness' was not read; fixed in mappers/exclusions.py")


def case_height_range():
    x = Export("rx-mbeki", style="vendor", family="Mbeki", given="Thandi")
    x.osteoporosis()
    x.vcf("L1")
    mri(x, ["L1"], "FINDINGS: L1 VB ant wedge w/ 25-30% ht loss and STIR hyperintense marrow. Accentuated "
        "thoracolumbar kyphosis.\nIMPRESSION: 1. Acute L1 compression fx, 25-30% ht loss. 2. Thoracolumbar "
        "kyphosis.")
    clinic_course(x, [7, 7])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-height-loss-range-25-30.json", x, "insufficient-data", ["L1"],
            "stable NRS 7, 7 needs 2 of A-D: C kyphosis met; B: '25-30% ht loss' supports only 25 %, and 25 % "
            "exactly fails (> 25); A and D not documented -> unknown, asking for 1 of them. FIRST RUN: eligible "
            "(the range was read as 30 %) - fixed in mappers/text.py (a range gives its lower bound)",
            missing=["1 of"])


def case_prior_mri_years_ago():
    x = Export("rx-novak", family="Novak", given="Vera")
    x.osteoporosis()
    x.vcf("L2", onset="2025-05-30")
    mri(x, ["L2"], "HISTORY: chronic LBP.\nFINDINGS: Normal vertebral body heights. No fracture. No marrow edema. Mild "
        "L4-5 facet arthropathy.\nIMPRESSION: No acute abnormality.", started="2019-11-04T10:00:00-05:00")
    mri(x, ["L2"], "COMPARISON: MRI 11/04/2019.\nFINDINGS: New L2 sup endplate compression fx w/ marrow edema, "
        "~15% ht loss. No retropulsion.\nIMPRESSION: New acute L2 compression fx since 2019.",
        started="2025-06-03T10:00:00-04:00")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("synthea-prior-2019-mri-no-edema.json", x, "eligible", ["L2"],
            "a 2019 MRI (5 1/2 years before the 2025-05-30 onset) said 'No marrow edema': it predates the fracture "
            "and cannot contradict the 2025 MRI's edema at L2. FIRST RUN: needs-review (I3 conflict between the "
            "two MRIs) - fixed in mappers/imaging.py (acuity ignores studies from before the onset)")


def case_x10_impinging():
    x = Export("rx-okonkwo", style="vendor", family="Okonkwo", given="Adaeze")
    x.osteoporosis()
    x.vcf("L1")
    mri(x, ["L1"], "FINDINGS: Acute L1 compression fx w/ marrow edema, 20% ht loss. Lateral fragment w/ severe "
        "L1-2 foraminal narrowing impinging the exiting L1 nerve root. Central canal patent.\nIMPRESSION: 1. Acute "
        "L1 fx. 2. L1 root impingement as above.")
    clinic_course(x, [6, 8])
    x.med_request("313782", "Acetaminophen 325 MG Oral Tablet", "2025-06-05")
    x.bone_health()
    fixture("vendor-x10-foraminal-impinging-root.json", x, "not-eligible", ["L1"],
            "'foraminal narrowing impinging the exiting L1 nerve root': neural impingement, X10 present. FIRST "
            "RUN: eligible ('impinging' was not read) - fixed in mappers/exclusions.py")


for make in (case_x10_impinging, case_prior_mri_years_ago, case_height_range, case_x9_lle_exam, case_ct_cannot_assess_edema, case_inpatient_then_pain_settles, case_allergy_agent_name, case_knee_pain_later, case_request_text_exclusions, case_shorthand_negatives, case_note_old_t8, case_text_only_old_healed, case_phlegmon,
             case_mri_silent, case_support_undocumented,case_inpatient_l1, case_outpatient_stable_supporting, case_ed_then_clinic_bone_scan,
             case_hospitalized_seven, case_chronic, case_x1_text, case_x2_discitis, case_x11_retropulsion,
             case_x9_neuro_abbrev, case_x5_contrast, case_x6_inr, case_x8_myelopathy, case_pregnancy,
             case_myeloma_old_onset, case_review_neoplasm_without_m84, case_observation_stay, case_ct_only,
             case_no_pain_no_dxa, case_no_onset_lastupdated, case_requested_two_levels, case_requested_one_of_two,
             case_text_only_abbrev, case_genant_rdq_text, case_traumatic, case_refuted_mets_and_eie,
             case_second_fx_needs_imaging):
    make()


def main():
    for p in OUT.glob("*.json"):
        p.unlink()
    for name, bundle in FIXTURES.items():
        (OUT / name).write_text(json.dumps(bundle, indent=1) + "\n")
    (OUT / "expected.json").write_text(json.dumps(EXPECTED, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Property-based robustness: mutated sample bundles never crash the core.

The promise (docs/design.md, "Errors"): a bad input is an `InputError` naming the file, resource and
element; an input that validates as FHIR R4 evaluates without an exception. These tests take the
sample bundles (samples/, tests/data/unseen/) and mutate them the ways real feeds differ from our
fixtures: optional elements dropped, choice types swapped, partial and far-off dates, references in
every form (and to nothing), contained resources, duplicate ids, unknown code systems, codings
without codes, huge and negative numbers, unicode, resources repeated. Some mutations keep the
resource valid R4, some break it; either way the loader must answer with records or an InputError,
and every record must evaluate under every policy to a well-formed evaluation object.

The mutation engine takes a `Chooser`, so the same code runs under hypothesis (shrinkable, bounded,
derandomized: deterministic in CI) and from a plain `random.Random` when exploring by hand:

    .venv/bin/python -c "import tests.test_robustness as t; t.explore(5000)"
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.careplan import CarePlan
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from fhir_vcf.errors import InputError
from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.outputs.text import render_text
from fhir_vcf.record import USED_TYPES, load_document
from fhir_vcf.rules.policy import load_policies

ROOT = Path(__file__).resolve().parent.parent
BUNDLE_FILES = sorted(
    p
    for folder in (ROOT / "samples", ROOT / "tests" / "data" / "unseen")
    for p in folder.glob("*.json")
    if p.name != "expected.json"
)
BUNDLES: dict[str, Any] = {p.name: json.loads(p.read_text()) for p in BUNDLE_FILES}
AS_OF = date(2025, 6, 30)
POLICIES = load_policies()
DECISIONS = {"eligible", "not-eligible", "needs-review", "insufficient-data"}

# Bounded and deterministic: derandomize (the examples are a function of the test), no example
# database (nothing carried between runs), no deadline (one example evaluates several records).
ROBUST = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

T = TypeVar("T")


class Chooser(Protocol):
    def choice(self, options: Sequence[T]) -> T: ...

    def integer(self, low: int, high: int) -> int: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def choice(self, options: Sequence[T]) -> T:
        return self._random.choice(list(options))

    def integer(self, low: int, high: int) -> int:
        return self._random.randint(low, high)


class DataChooser:
    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def choice(self, options: Sequence[T]) -> T:
        return self._data.draw(st.sampled_from(list(options)))

    def integer(self, low: int, high: int) -> int:
        return self._data.draw(st.integers(low, high))


# --------------------------------------------------------------------------------------------- values

DATES = [
    "2025",
    "2025-06",
    "2025-06-02",
    "2025-06-02T10:30:00Z",
    "2025-06-02T23:59:59+14:00",
    "2025-06-02T00:00:00-12:00",
    "2025-06-30",
    "2025-07-01",
    "2024-02-29",
    "0001-01-01",
    "1900-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-12:00",
    "2025-06-02T10:30:00.123456+05:30",
    "2025-13-01",  # invalid
    "",  # invalid
]
INSTANTS = ["2025-06-02T10:30:00Z", "2025-06-02T10:30:00+02:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
TEXTS = [
    "",
    " ",
    "Osteoporotic compression fracture T12 – 椎体骨折 🦴",
    "Fraktur LWK 1, ödem; Wirbelkörper",
    "no fracture. NOT T12. no edema",
    "T12 " * 300,
    "L1 fx 100% height loss, 1000% increased from 999% to 1e9%",
    "compression fracture T11-L1 " + "(" * 50 + ")" * 50,
    "NRS 8/10 RDQ 30 Roland-Morris 17 INR 99.9",
    "2025-06-02",
    "June 31, 2025",
    "3 weeks ago",
    "\u0000\u200b\ufeff",
    "MRI STIR edema T12. Bone scan avid L1. retropulsion. vertebra plana. cleft.",
    "T١٢ fracture, ٣٠% height loss, NRS ٨/10, onset ٢٠٢٥-٠٦-٠٢; ＮＲＳ ８/10",  # non-ASCII digits
    "L6 T13 S5 C8 T0 fractures; T12-T1 collapse; C1-S5 compression; L5-S3 wedge; T11-12-13",
    "from 25% to 40%, previously 400% now 0%; Genant grade 3; RDQ 18/24; INR 1.5; T-score -2.7",
]
NUMBERS: list[Any] = [0, -1, -0.5, 1, 7, 8, 10, 11, 24, 25, 100, 101, 10**30, -(10**30), 1e-300, 2**63, 0.0001]
CODE_SYSTEMS = [
    "http://example.org/unknown-system",
    "urn:oid:1.2.3",
    "http://snomed.info/sct/",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://loinc.org",
    "",
]
CODES = ["", " ", "M80.08XA", "m8008xa", "S32.012A", "S22.0", "72514-3", "22513", "zzz", "23215003", "€"]

# Choice-type elements [x] and the variants the mutations swap between.
CHOICES: dict[str, tuple[str, ...]] = {
    "effective": ("DateTime", "Period", "Instant", "Timing"),
    "onset": ("DateTime", "Period", "String", "Age", "Range"),
    "abatement": ("DateTime", "Period", "String", "Age", "Range", "Boolean"),
    "value": ("Quantity", "Integer", "String", "CodeableConcept", "Boolean", "Range", "Ratio", "Period",
              "DateTime", "Time"),
    "performed": ("DateTime", "Period", "String", "Age", "Range"),
    "occurrence": ("DateTime", "Period", "Timing"),
    "medication": ("CodeableConcept", "Reference"),
    "quantity": ("Quantity", "Ratio", "Range"),
    "code": ("CodeableConcept", "Reference"),  # DeviceRequest.code[x]
}

# Elements worth dropping (optional in R4 for the used types, or required: then an InputError).
DROPPABLE = {
    "coding", "text", "bodySite", "encounter", "subject", "patient", "start", "end", "status", "code", "period",
    "class", "valueQuantity", "value", "series", "modality", "conclusion", "clinicalStatus", "verificationStatus",
    "id", "display", "system", "reference", "category", "authoredOn", "started", "imagingStudy", "derivedFrom",
    "reasonReference", "reasonCode", "note", "effectiveDateTime", "effectivePeriod", "onsetDateTime",
    "onsetPeriod", "recordedDate", "issued", "unit", "gender", "birthDate", "intent", "activity", "detail",
    "medicationCodeableConcept", "reaction", "substance", "component", "numberOfSeries", "description",
}
DATE_KEYS = {
    "onsetDateTime", "effectiveDateTime", "start", "end", "authoredOn", "recordedDate", "started",
    "birthDate", "performedDateTime", "dateAsserted", "occurrenceDateTime", "abatementDateTime", "created",
}
INSTANT_KEYS = {"issued", "effectiveInstant"}


def _value_for(prefix: str, variant: str, c: Chooser) -> Any:
    number = c.choice(NUMBERS)
    if variant == "DateTime":
        return c.choice(DATES)
    if variant == "Instant":
        return c.choice(INSTANTS)
    if variant == "Period":
        period: dict[str, Any] = {}
        if c.integer(0, 1):
            period["start"] = c.choice(DATES)
        if c.integer(0, 1):
            period["end"] = c.choice(DATES)
        return period
    if variant == "Timing":
        return {"event": [c.choice(DATES)]}
    if variant == "String":
        return c.choice(TEXTS)
    if variant == "Age":
        return {"value": number, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
    if variant == "Range":
        return {"low": {"value": number}, "high": {"value": c.choice(NUMBERS)}}
    if variant == "Quantity":
        return {"value": number, "unit": c.choice(["mm", "cm", "{score}", "", "%"])}
    if variant == "Integer":
        return c.choice([0, -3, 8, 11, 24, 2**31 - 1, -(2**31)])
    if variant == "Boolean":
        return c.choice([True, False])
    if variant == "CodeableConcept":
        return {"coding": [{"system": c.choice(CODE_SYSTEMS) or "urn:x", "code": c.choice(CODES) or "x"}],
                "text": c.choice(TEXTS) or "t"}
    if variant == "Ratio":
        return {"numerator": {"value": number}, "denominator": {"value": c.choice(NUMBERS)}}
    if variant == "Time":
        return c.choice(["10:30:00", "23:59:59", "00:00:00"])
    if variant == "Reference":
        return {"reference": c.choice(["#med1", "Medication/m1", "Device/d1", "urn:uuid:missing"])}
    raise AssertionError(variant)


# ------------------------------------------------------------------------------------------- the engine


def _fields(rtype: Any) -> frozenset[str]:
    try:
        return frozenset(get_fhir_model_class(rtype).model_fields)
    except (ValueError, KeyError, TypeError):
        return frozenset()


def _positions(node: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(container, key, value) for every element below `node` (dict keys and list items)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key, value
            yield from _positions(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield node, i, value
            yield from _positions(value)


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _resource(doc: dict[str, Any], c: Chooser, used_only: bool = True) -> dict[str, Any] | None:
    if doc.get("resourceType") != "Bundle":
        return doc
    entries = _entries(doc)
    pool = [e["resource"] for e in entries
            if not used_only or str(e["resource"].get("resourceType")) in USED_TYPES]
    return c.choice(pool) if pool else None


def _pick(resource: dict[str, Any], c: Chooser, keep: Callable[[Any, Any, Any], bool]) -> tuple[Any, Any] | None:
    found = [(container, key) for container, key, value in _positions(resource)
             if not (container is resource and key == "resourceType") and keep(container, key, value)]
    return c.choice(found) if found else None


def drop_element(doc: dict[str, Any], c: Chooser) -> None:
    resource = _resource(doc, c)
    if resource is None:
        return
    spot = _pick(resource, c, lambda _c, key, _v: key in DROPPABLE) or _pick(resource, c, lambda *_: True)
    if spot is not None:
        container, key = spot
        del container[key]


def swap_choice(doc: dict[str, Any], c: Chooser) -> None:
    """Replace (or, sometimes, add beside) a choice element with another of its types."""
    resource = _resource(doc, c)
    if resource is None:
        return
    fields = _fields(resource.get("resourceType"))
    present = [(k, p) for k in resource for p in CHOICES if k.startswith(p) and k[len(p):] in CHOICES[p]]
    if present and c.integer(0, 4):
        key, prefix = c.choice(present)
        del resource[key]
    else:
        own = sorted(p for p in CHOICES if any(p + v in fields for v in CHOICES[p]))
        prefix = c.choice(own if own and c.integer(0, 5) else sorted(CHOICES))
    # Mostly a variant the type has (valid), now and then one it lacks (an InputError).
    variants = [v for v in CHOICES[prefix] if prefix + v in fields]
    variant = c.choice(variants if variants and c.integer(0, 5) else CHOICES[prefix])
    resource[prefix + variant] = _value_for(prefix, variant, c)


def set_date(doc: dict[str, Any], c: Chooser) -> None:
    resource = _resource(doc, c)
    if resource is None:
        return
    spot = _pick(resource, c, lambda _c, key, v: isinstance(v, str) and (key in DATE_KEYS or key in INSTANT_KEYS))
    if spot is not None:
        container, key = spot
        container[key] = c.choice(INSTANTS if key in INSTANT_KEYS and c.integer(0, 3) else DATES)


def set_text(doc: dict[str, Any], c: Chooser) -> None:
    resource = _resource(doc, c)
    if resource is None:
        return
    spot = _pick(resource, c, lambda _c, key, v: isinstance(v, str) and key not in {"resourceType", "id"})
    if spot is not None:
        container, key = spot
        container[key] = c.choice(TEXTS)


def set_number(doc: dict[str, Any], c: Chooser) -> None:
    resource = _resource(doc, c)
    if resource is None:
        return
    spot = _pick(resource, c, lambda _c, _k, v: isinstance(v, int | float) and not isinstance(v, bool))
    if spot is not None:
        container, key = spot
        container[key] = c.choice(NUMBERS)
    elif "valueQuantity" in resource or c.integer(0, 1):
        resource.pop("valueInteger", None)
        resource["valueQuantity"] = {"value": c.choice(NUMBERS), "unit": "mm"}


def rewrite_reference(doc: dict[str, Any], c: Chooser) -> None:
    """A Reference in another form: relative, absolute, versioned, urn:uuid, #contained, or dangling."""
    resource = _resource(doc, c)
    if resource is None:
        return
    spot = _pick(resource, c, lambda _c, key, v: key == "reference" and isinstance(v, str))
    if spot is None:
        return
    container, key = spot
    value = container[key]
    parts = [p for p in value.split("/") if p]
    relative = "/".join(parts[-2:]) if len(parts) >= 2 else value
    container[key] = c.choice([
        relative,
        f"https://ehr.example.org/fhir/{relative}",
        f"http://elsewhere.example/fhir/{relative}/_history/7",
        "urn:uuid:4f1c2d1e-0000-4000-8000-000000000000",
        "#c1",
        "#",
        "Patient/does-not-exist",
        f"{relative.split('/')[0]}/",
        "/",
        "Condition/../../etc",
        "",  # invalid
    ])


def add_contained(doc: dict[str, Any], c: Chooser) -> None:
    """A contained resource (a copy of another resource, or a Medication), sometimes referenced."""
    resource = _resource(doc, c)
    if resource is None:
        return
    other = copy.deepcopy(_resource(doc, c) or {"resourceType": "Patient"})
    other.pop("contained", None)
    other["id"] = "c1"
    rxnorm = {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1049621"}
    pool = [other, {"resourceType": "Medication", "id": "c1", "code": {"text": "oxycodone 5 mg", "coding": [rxnorm]}}]
    resource.setdefault("contained", []).append(c.choice(pool))
    spot = _pick(resource, c, lambda container, key, v: key == "reference" and container is not other)
    if spot is not None and c.integer(0, 1):
        container, key = spot
        container[key] = "#c1"
    if resource.get("resourceType") in {"MedicationRequest", "MedicationStatement"} and c.integer(0, 1):
        resource.pop("medicationCodeableConcept", None)
        resource["medicationReference"] = {"reference": "#c1"}


def duplicate(doc: dict[str, Any], c: Chooser) -> None:
    """A resource repeated (same id, same or altered content), or two resources sharing an id."""
    if doc.get("resourceType") != "Bundle":
        return
    entries = _entries(doc)
    if not entries:
        return
    how = c.integer(0, 2)
    source = c.choice(entries)
    if how == 0:  # the same entry twice
        doc["entry"].append(copy.deepcopy(source))
    elif how == 1:  # same id, altered content
        twin = copy.deepcopy(source)
        doc["entry"].append(twin)
        drop_element({"resourceType": "Bundle", "entry": [twin]}, c)
    else:  # another resource takes this one's id (and fullUrl)
        target = c.choice(entries)
        if "id" in source["resource"]:
            target["resource"]["id"] = source["resource"]["id"]
        if "fullUrl" in source:
            target["fullUrl"] = source["fullUrl"]


def codings(doc: dict[str, Any], c: Chooser) -> None:
    """Unknown systems, codings without a code or a system, odd codes."""
    resource = _resource(doc, c)
    if resource is None:
        return
    spot = _pick(resource, c, lambda _c, key, v: key == "coding" and isinstance(v, list) and v)
    if spot is None:
        return
    container, key = spot
    coding = c.choice(container[key])
    if not isinstance(coding, dict):
        return
    how = c.integer(0, 4)
    if how == 0:
        coding["system"] = c.choice(CODE_SYSTEMS)
    elif how == 1:
        coding.pop("code", None)
    elif how == 2:
        coding.pop("system", None)
    elif how == 3:
        coding["code"] = c.choice(CODES)
    else:
        container[key].append({"system": "http://example.org/unknown-system", "display": c.choice(TEXTS) or "d"})


def identities(doc: dict[str, Any], c: Chooser) -> None:
    """Ids and fullUrls: dropped, turned into urn:uuid, or the Patient removed altogether."""
    if doc.get("resourceType") != "Bundle":
        doc.pop("id", None)
        return
    entries = _entries(doc)
    if not entries:
        return
    how = c.integer(0, 3)
    entry = c.choice(entries)
    if how == 0:
        entry["resource"].pop("id", None)
    elif how == 1:
        entry.pop("fullUrl", None)
    elif how == 2:
        entry["fullUrl"] = f"urn:uuid:00000000-0000-4000-8000-{c.integer(0, 999999):012d}"
        entry["resource"].pop("id", None)
    else:
        doc["entry"] = [e for e in doc["entry"] if (e.get("resource") or {}).get("resourceType") != "Patient"]


def shape(doc: dict[str, Any], c: Chooser) -> None:
    """Bundle-level oddities: unknown types, entries without resources, a nested Bundle."""
    if doc.get("resourceType") != "Bundle":
        return
    how = c.integer(0, 4)
    entries = doc.setdefault("entry", [])
    if how == 0:
        entries.append({"fullUrl": "urn:uuid:nothing"})
    elif how == 1:
        entries.append({"resource": {"resourceType": "Foo", "id": "f"}})
    elif how == 2:
        inner = copy.deepcopy(entries[:2])
        entries.append({"resource": {"resourceType": "Bundle", "type": "collection", "entry": inner}})
    elif how == 3:
        entries.append({"resource": {"resourceType": c.choice([42, None, "", ["Condition"]])}})
    else:
        entries.reverse()


def _templates(subject: dict[str, str], c: Chooser) -> list[dict[str, Any]]:
    """Valid-but-unusual resources of every used type (the other mutations then bend them further)."""
    finding = "urn:fhir-vcf:finding"
    loinc = "http://loinc.org"
    act = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    snomed = "http://snomed.info/sct"
    cpt = "http://www.ama-assn.org/go/cpt"
    dicom = "http://dicom.nema.org/resources/ontology/DCM"
    level = c.choice(["T12", "L1", "T3", "C7", "S1", "T12-L1", "Th12", "L1-2 disc"])
    day = c.choice(DATES[:-2])
    number = c.choice(NUMBERS)
    return [
        {"resourceType": "Observation", "status": c.choice(["final", "registered", "amended", "bogus"]),
         "code": {"coding": [{"system": loinc, "code": c.choice(["72514-3", "38214-3", "38208-5"])}]},
         "subject": subject, "effectiveDateTime": day,
         **c.choice([{"valueQuantity": {"value": number, "unit": c.choice(["mm", "cm", "{score}"])}},
                     {"valueString": c.choice(["8/10", "NRS 8/10", "7-8/10", "", "99 out of 100"]) or "x"},
                     {"valueInteger": c.choice([0, 8, 11, -1])}, {"valueBoolean": True}]),
         "bodySite": {"text": level}, "encounter": {"reference": c.choice(["Encounter/e-x", "#enc", "urn:uuid:e"])}},
        {"resourceType": "Observation", "status": "final", "subject": subject, "effectiveDateTime": day,
         "code": {"coding": [{"system": finding, "code": c.choice([
             "rdq-score", "pain-at-fracture-level", "neurologic-deficit", "spinal-instability",
             "height-loss-percent", "marrow-edema", "retropulsion", "vertebra-plana", "height-loss-progression"])}]},
         **c.choice([{"valueBoolean": c.choice([True, False])}, {"valueInteger": c.choice([0, 17, 24, 25, -1])},
                     {"valueQuantity": {"value": number, "unit": "%"}}]),
         "bodySite": {"coding": [{"system": snomed, "code": "23215003"}], "text": level}},
        {"resourceType": "Observation", "status": "final", "subject": subject, "effectiveDateTime": day,
         "code": {"coding": [{"system": loinc, "code": c.choice(["6301-6", "82810-3"])}]},
         **c.choice([{"valueString": c.choice(["1.2", "high", "99"])}, {"valueQuantity": {"value": number}},
                     {"valueCodeableConcept": {"coding": [{"system": snomed, "code": "77386006"}]}}])},
        {"resourceType": "Encounter", "id": "e-x", "status": c.choice(["finished", "in-progress", "planned"]),
         "subject": subject, "class": c.choice([{"system": act, "code": c.choice(["IMP", "amb", "OBSENC", "XYZ"])},
                                                {"code": "IMP"}, {"system": "urn:other", "code": "IMP"}]),
         "period": c.choice([{}, {"start": day}, {"start": day, "end": c.choice(DATES[:-2])}, {"end": day}])},
        {"resourceType": "ServiceRequest", "status": c.choice(["draft", "active", "on-hold", "completed"]),
         "intent": "order", "subject": subject, "authoredOn": day,
         "code": {"coding": [{"system": cpt, "code": c.choice(["22513", "22515", "22520"])}],
                  "text": f"Kyphoplasty {level}"},
         "quantityQuantity": {"value": number}, "bodySite": [{"text": level}],
         "reasonReference": [{"reference": c.choice(["Condition/missing", "#c1", "urn:uuid:x"])}]},
        {"resourceType": "DiagnosticReport", "status": "final", "subject": subject, "code": {"text": "MRI spine"},
         "effectivePeriod": {"start": day}, "conclusion": c.choice(TEXTS) or "x",
         "conclusionCode": [{"text": f"edema {level}"}], "imagingStudy": [{"reference": "ImagingStudy/none"}],
         "presentedForm": [{"contentType": c.choice(["text/plain", "text/plain; charset=utf-8", "application/pdf"]),
                            "data": "TVJJOiBUMTIgZWRlbWEsIDMwJSBoZWlnaHQgbG9zcw=="}]},
        {"resourceType": "ImagingStudy", "status": "available", "subject": subject, "started": day,
         "modality": [{"system": dicom, "code": c.choice(["MR", "NM", "BMD"])}],
         "series": [{"uid": "1.2.3", "modality": {"code": "MR"}, "description": f"SAG STIR {level}",
                     "bodySite": {"display": level}}, {"uid": "1.2.4", "modality": {"code": "??"}}]},
        {"resourceType": "Condition", "subject": subject, "code": {"text": f"compression fracture {level}"},
         **c.choice([{"onsetAge": {"value": number, "unit": "a"}}, {"onsetRange": {"low": {"value": 1}}},
                     {"onsetString": c.choice(TEXTS) or "x"}, {"onsetPeriod": {"end": day}}, {}]),
         **c.choice([{"abatementString": "resolved"}, {"abatementDateTime": day}, {}]),
         "recordedDate": day},
        {"resourceType": "AllergyIntolerance", "patient": subject, "code": {"text": "PMMA bone cement"},
         "reaction": [{"manifestation": [{"text": "rash"}], "substance": {"text": "iodinated contrast"}}]},
        {"resourceType": "MedicationStatement", "status": c.choice(["active", "not-taken", "completed"]),
         "subject": subject, "medicationReference": {"reference": "#med1"},
         "contained": [{"resourceType": "Medication", "id": "med1", "code": {"text": "alendronate 70 mg"}}],
         "effectivePeriod": {"end": day}},
        {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject,
         "activity": [{"detail": {"status": "in-progress", "description": "TLSO brace, physical therapy",
                                  "productCodeableConcept": {"text": "calcitonin"}}}, {"outcomeReference": []}][:1]},
        {"resourceType": "DeviceRequest", "status": "active", "intent": "order", "subject": subject,
         **c.choice([{"codeReference": {"reference": "Device/brace"}}, {"codeCodeableConcept": {"text": "TLSO"}}])},
        {"resourceType": "Procedure", "status": c.choice(["completed", "not-done"]), "subject": subject,
         "performedString": "last spring", "usedCode": [{"text": "brace"}], "code": {"text": "DXA scan"}},
        {"resourceType": "MedicationAdministration", "status": "completed", "subject": subject,
         "medicationCodeableConcept": {"text": "warfarin"}, "effectiveDateTime": day},
    ]


def inject(doc: dict[str, Any], c: Chooser) -> None:
    """A new resource of a used type with valid-but-unusual content."""
    if doc.get("resourceType") != "Bundle":
        return
    patients = [e["resource"] for e in _entries(doc) if e["resource"].get("resourceType") == "Patient"]
    pid = patients[0].get("id") if patients else None
    subject = {"reference": f"Patient/{pid}"} if isinstance(pid, str) else {"display": "nobody"}
    resource = c.choice(_templates(subject, c))
    if "id" not in resource and c.integer(0, 2):
        resource["id"] = f"inj-{c.integer(0, 3)}"
    doc.setdefault("entry", []).append({"resource": resource})


MUTATIONS: dict[str, Callable[[dict[str, Any], Chooser], None]] = {
    "drop": drop_element,
    "choice": swap_choice,
    "date": set_date,
    "text": set_text,
    "number": set_number,
    "reference": rewrite_reference,
    "contained": add_contained,
    "duplicate": duplicate,
    "codings": codings,
    "identities": identities,
    "shape": shape,
    "inject": inject,
}


def mutate(c: Chooser, max_mutations: int = 4) -> tuple[str, dict[str, Any], list[str]]:
    name = c.choice(sorted(BUNDLES))
    doc = copy.deepcopy(BUNDLES[name])
    applied = []
    for _ in range(c.integer(1, max_mutations)):
        kind = c.choice(sorted(MUTATIONS))
        MUTATIONS[kind](doc, c)
        applied.append(kind)
    return name, doc, applied


# ----------------------------------------------------------------------------------------- the property


def check(doc: Any, *, source: str = "mutated.json", policies: Sequence[str] | None = None) -> str:
    """Load and evaluate `doc` under each policy; assert the contract. 'input-error' or 'evaluated'."""
    try:
        records = load_document(doc, source=source)
    except InputError as err:
        # Every problem in a Bundle is about an entry: the error names the resource or the element.
        assert err.source == source and err.message and (err.resource or err.element), repr(err)
        assert "Value error," not in err.message and ".root" not in str(err), str(err)
        return "input-error"
    for record in records:
        for policy_id in policies or sorted(POLICIES):
            evaluation = evaluate_record(record, as_of=AS_OF, policy=POLICIES[policy_id])
            assert evaluation["decision"] in DECISIONS
            assert evaluation["criteria"]
            CarePlan.model_validate(evaluation["carePlan"])
            json.dumps(evaluation)
            assert render_text(evaluation).endswith("\n")
    return "evaluated"


def explore(runs: int = 1000, seed: int = 0) -> None:
    """Hand exploration: many random mutants, first failure of each kind printed (not run by pytest)."""
    import traceback

    seen: set[str] = set()
    for i in range(runs):
        c = RandomChooser(seed + i)
        name, doc, applied = mutate(c)
        try:
            check(doc, policies=["cms-lcd-pva"])
        except Exception as exc:  # exploration reports every failure
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {tb.filename.split('/')[-1]}:{tb.lineno}"
            if key not in seen:
                seen.add(key)
                print(f"[{seed + i}] {name} {applied}: {key}: {exc!s:.300}")


# --------------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_every_sample_evaluates_under_every_policy(name):
    assert check(copy.deepcopy(BUNDLES[name])) == "evaluated"


@ROBUST
@given(st.data())
def test_mutated_bundles_load_or_fail_with_an_input_error(data):
    name, doc, applied = mutate(DataChooser(data))
    note(f"{name}: {', '.join(applied)}")
    check(json.loads(json.dumps(doc)))  # exactly what a file with this content would give

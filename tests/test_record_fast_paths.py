"""The loader's shortcuts (issue 11) against the slower code each replaces, on every bundle and at the edges.

- `relative_reference` returns a reference already of the form "Type/id" as it is;
- `skip_reason` and `_patient_reference` read an Element's present elements from its `__dict__`
  rather than through `field` (a model is still read through `field`);
- `attachment_skips` takes the attachments without wording the element of each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from every_bundle import used_resources
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_vcf import record
from fhir_vcf.elements import Element, read_resource
from fhir_vcf.record import USED_TYPES, validate_resource

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted(p for folder in ("samples", "tests/data/unseen", "tests/data/unseen-exports", "tests/data/realistic")
                 for p in (ROOT / folder).glob("*.json") if p.name != "expected.json")


def _relative_as_before(reference: str) -> str:
    """`record.relative_reference` as it was before its shortcut for "Type/id"."""
    if reference.startswith("urn:"):
        return reference
    parts = [p for p in reference.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


_PIECES = ["Patient", "p1", "_history", "2", "", "urn:uuid:1", "urn:", "http:", "x.org", "fhir", "a b", "/", "//"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=0, max_size=5), st.sampled_from(["/", "//", ""]))
def test_relative_reference_reads_as_before_for_generated_references(pieces, joiner):
    reference = joiner.join(pieces)
    assert record.relative_reference(reference) == _relative_as_before(reference)


@pytest.mark.parametrize("reference", [
    "Patient/1", "Patient/1/", "/Patient/1", "Patient//1", "_history/2", "Patient/_history", "_history/_history",
    "Patient/1/_history/2", "http://x/fhir/Patient/1", "urn:uuid:9/x", "urn:x", "Patient", "", "/", "a/b/c",
    "Observation/o-1", "Patient/1 ", " Patient/1", "P/q"])
def test_relative_reference_reads_as_before_at_the_edges(reference):
    assert record.relative_reference(reference) == _relative_as_before(reference)


def _resources() -> list[dict[str, Any]]:
    found = []
    for path in BUNDLES:
        doc = json.loads(path.read_text())
        entries = doc.get("entry", []) if doc.get("resourceType") == "Bundle" else [{"resource": doc}]
        found += [e["resource"] for e in entries if e.get("resource", {}).get("resourceType") in USED_TYPES]
    return found


_NOISY = [
    {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"}, "code": {"text": "x"},
     "verificationStatus": {"coding": [{"code": code}]}} for code in ("refuted", "entered-in-error", "confirmed")
] + [
    {"resourceType": "Observation", "id": "o", "status": status, "code": {"text": "x"},
     "subject": {"display": "no reference"}} for status in ("entered-in-error", "cancelled", "final")
] + [
    {"resourceType": "DocumentReference", "id": "d", "status": status, "docStatus": doc_status,
     "subject": {"reference": "Patient/p"},
     "content": [{"attachment": {"contentType": kind, "data": "aGVsbG8="}},
                 {"attachment": {"contentType": "application/pdf", "url": "http://x/y.pdf"}}]}
    for status, doc_status, kind in (("current", "final", "text/plain"), ("superseded", "final", "text/plain"),
                                     ("current", "entered-in-error", "text/plain"), ("current", "final", "text/html"))
] + [
    {"resourceType": "DiagnosticReport", "id": "r", "status": "final", "code": {"text": "x"},
     "subject": {"reference": "Patient/p"},
     "presentedForm": [{"contentType": "text/plain; charset=utf-8"}, {"contentType": "image/png", "data": "AA=="}]},
    {"resourceType": "Medication", "id": "m", "code": {"text": "x"}},
    {"resourceType": "MedicationStatement", "id": "s", "status": "active", "medicationCodeableConcept": {"text": "x"},
     "subject": {"reference": "Group/g"}},
    {"resourceType": "AllergyIntolerance", "id": "a", "patient": {"reference": "Patient/p"},
     "verificationStatus": {"coding": [{"code": "refuted"}]}},
]


def _attachment_skips_as_before(resource: Any) -> list[str]:
    """`record.attachment_skips` as it was, through `attachments` (which words each element)."""
    return [why for a, _ in record.attachments(resource)
            if a is not None and (why := record.attachment_problem(a)) is not None]


def test_an_elements_skip_reason_patient_and_attachments_read_as_a_models_and_as_before():
    """For every resource of every bundle and the noisy ones: the Element (read from its `__dict__`)
    and the R4B model (read through `field`) give the same skip reason, patient and attachment skips,
    and those are what `field` and `attachments` give."""
    cases = _resources() + _NOISY
    assert len(cases) > 500
    for data in cases:
        element = read_resource(data)
        model = validate_resource(data, source="x", label="y")
        assert isinstance(element, Element) and not isinstance(model, Element)
        assert record.skip_reason(element) == record.skip_reason(model), data.get("id")
        assert record._patient_reference(element) == record._patient_reference(model), data.get("id")
        for resource in (element, model):
            for name in ("status", "verificationStatus", "subject", "patient"):  # as the element table reads
                by_table = getattr(resource, name) if name in type(resource).model_fields else None
                assert record.field(resource, name) == by_table
            assert record.attachment_skips(resource) == _attachment_skips_as_before(resource)
    reasons = {record.skip_reason(read_resource(data)) for data in _NOISY}
    assert reasons >= {record.REFUTED, record.ENTERED_IN_ERROR, record.CANCELLED, record.SUPERSEDED, None}
    assert {why for data in _NOISY for why in record.attachment_skips(read_resource(data))} == {
        record.UNSUPPORTED_ATTACHMENT, record.ATTACHMENT_NOT_INLINE}


def _labels_as_before(bundle: dict[str, Any], prefix: str = "") -> list[str]:
    """The label of each resource of a Bundle as `_bundle_entries` gave it before (`record._label` then)."""
    found = []
    for i, entry in enumerate(bundle.get("entry", [])):
        resource = entry.get("resource")
        if resource is None:
            continue
        if resource.get("resourceType") == "Bundle":
            found += _labels_as_before(resource, f"{prefix}entry[{i}].resource.")
            continue
        rtype, rid = resource.get("resourceType"), resource.get("id")
        found.append(f"{rtype}/{rid}" if isinstance(rid, str) else f"{prefix}entry[{i}] ({rtype})")
    return found


def test_bundle_entries_label_each_resource_as_label_does():
    """`_bundle_entries` words each entry's label itself (the type already read): every bundle, and
    entries without an id, with an id that is not a string, or in a nested Bundle, read as `_label`'s."""
    odd = {"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final"}},
        {"resource": {"resourceType": "Observation", "id": 7}},
        {"resource": {"resourceType": "Condition", "id": ""}},
        {"request": {"method": "DELETE"}},
        {"resource": {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}},
                                                          {"resource": {"resourceType": "Patient", "id": "p"}}]}}]}
    documents = [json.loads(path.read_text()) for path in BUNDLES] + [odd]
    for document in documents:
        if document.get("resourceType") != "Bundle":
            continue
        labels = [label for _, _, label in record.entries_of(document, source="x")]
        assert labels == _labels_as_before(document)
    assert [label for _, _, label in record.entries_of(odd, source="x")] == [
        "entry[0] (Observation)", "entry[1] (Observation)", "Condition/", "entry[4].resource.entry[0] (Patient)",
        "Patient/p"]


_CONDITION = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"}, "code": {"text": "x"}}


def _status_edges() -> list[dict[str, Any]]:
    refuted = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}
    in_error = {"coding": [{"code": "entered-in-error"}]}
    return [
        {**_CONDITION, "verificationStatus": json.dumps(refuted)},  # a JSON text: the JSON check does not parse it
        {**_CONDITION, "verificationStatus": {"coding": [json.dumps(refuted["coding"][0])]}},
        {**_CONDITION, "verificationStatus": json.dumps(in_error)},
        {**_CONDITION, "verificationStatus": refuted},
        {**_CONDITION, "verificationStatus": {"coding": [{"code": "confirmed"}]}},
        {"resourceType": "Observation", "id": "o", "status": "Cancelled", "code": {"text": "x"}},
        {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"}},
        {"resourceType": "DocumentReference", "id": "d", "status": "superseded",
         "content": [{"attachment": {"contentType": "text/plain", "data": "eA=="}}]},
        {"resourceType": "DocumentReference", "id": "d", "status": "current",
         "content": [{"attachment": {"contentType": "application/pdf", "url": "x"}}]},
    ]


def test_a_resource_the_json_check_let_through_is_asked_again_whenever_its_reading_could_set_it_aside():
    """`_load_resources` asks `skip_reason` of a read resource only when `_may_be_noise_when_read` says
    it may answer: on every resource of every bundle under samples/ and tests/data/ and at the edges
    (a verificationStatus written as a JSON text, a recased status), the reason it would give otherwise
    is None, and the edges that are noise when read are found."""
    found = 0
    for data in used_resources() + _status_edges():
        if record._noise_in_json(data) is not None or record.routine_reason(data) is not None:
            continue
        try:
            resource = record.read_validated(data, source="x", label="x")
        except record.InputError:
            continue
        reason = record.skip_reason(resource)
        if not record._may_be_noise_when_read(data["resourceType"], data):
            assert reason is None, data
        found += reason is not None
    assert found >= 4  # the JSON texts refuted and in error, and both DocumentReferences
    loaded = record.load_document({"resourceType": "Bundle", "type": "collection",
                                   "entry": [{"resource": d} for d in _status_edges()]}, source="x")
    assert sum(sum(r.skipped.values()) for r in loaded) >= 4


def test_attachments_are_asked_of_a_read_resource_only_when_its_json_holds_their_element():
    """`_load_resources` asks `attachment_skips` only when the JSON holds the element `_ATTACHED` names
    for its type (a read never adds an element): on every resource of every bundle under samples/ and
    tests/data/ and the noisy ones, any other resource, of any type, has no attachment skip."""
    asked = 0
    for data in used_resources() + _NOISY:
        try:
            resource = record.read_validated(data, source="x", label="x")
        except record.InputError:
            continue
        if record._ATTACHED.get(data["resourceType"]) in data:
            asked += 1
        else:
            assert record.attachment_skips(resource) == [], data.get("id")
            assert not record.attachments(resource), data.get("id")
    assert asked >= 5  # the noisy DocumentReferences and DiagnosticReport, and the bundles' reports


def test_the_index_holds_every_reference_form_of_what_was_loaded_as_before():
    """`_load_resources` indexes a fullUrl (and its relative form) only when it is not the "Type/id" just
    indexed: on every bundle and on id-less and absolute fullUrls, the index holds exactly the
    reference, the fullUrl and its relative form of each loaded resource, as when every form was added."""
    odd = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://x/fhir/Patient/p9", "resource": {"resourceType": "Patient"}},
        {"fullUrl": "http://x/fhir/Observation/o1", "resource": {
            "resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "http://x/fhir/Patient/p9"}}},
        {"fullUrl": "Observation/o2", "resource": {
            "resourceType": "Observation", "id": "o2", "status": "final", "code": {"text": "y"},
            "subject": {"reference": "Patient/p9"}}}]}
    for document in [json.loads(path.read_text()) for path in BUNDLES] + [odd]:
        records = record.load_document(document, source="x")
        if not records:
            continue
        loaded = set(records[0].refs.values())
        expected = set()
        for full_url, data, label in record.entries_of(document, source="x"):
            rid = data.get("id")
            ref = f"{data['resourceType']}/{rid}" if isinstance(rid, str) and rid else (full_url or label)
            if ref in loaded:
                expected |= {ref} | ({full_url, record.relative_reference(full_url)} if full_url else set())
        assert set(records[0].index) == expected
    assert "Patient/p9" in record.load_document(odd, source="x")[0].index

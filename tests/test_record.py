"""PatientRecord loading: Bundle types, reference forms, grouping by patient, noise, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhir_vcf.errors import InputError
from fhir_vcf.record import load_document
from fhir_vcf.sources.files import load_file

BASE = "https://ehr.example.org/fhir"
UUID_P = "urn:uuid:0b0a3a5e-8f53-4d0e-9f7b-2b6d3c3f5a01"
UUID_E = "urn:uuid:6c1f7a0e-1f2d-4a9b-8d55-7a1e4f0c2b02"


def patient(pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1950-01-01"}


def condition(cid: str, subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "code": {"text": "Osteoporotic compression fracture L1"},
        "subject": {"reference": subject},
        "onsetDateTime": "2025-06-02",
        **extra,
    }


def bundle(btype: str, *entries: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"resourceType": "Bundle", "type": btype, "entry": list(entries)}
    if btype == "document":
        data["identifier"] = {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:5e2f"}
        data["timestamp"] = "2025-06-30T08:00:00Z"
    return data


def entry(resource: dict[str, Any], full_url: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resource": resource, **extra}
    if full_url:
        out["fullUrl"] = full_url
    return out


def ids(record: Any, rtype: str) -> list[str]:
    return [r.id for r in record.of_type(rtype)]


@pytest.mark.parametrize("btype", ["collection", "searchset", "transaction", "batch", "document", "message"])
def test_every_bundle_type_gives_one_record(btype):
    extra: dict[str, Any] = {}
    if btype in ("transaction", "batch"):
        extra = {"request": {"method": "PUT", "url": "Patient/p1"}}
    if btype == "searchset":
        extra = {"search": {"mode": "match"}}
    entries = [
        entry(patient(), f"{BASE}/Patient/p1", **extra),
        entry(condition("c1", "Patient/p1"), f"{BASE}/Condition/c1"),
    ]
    if btype == "document":
        entries.insert(0, entry({"resourceType": "Composition", "id": "comp", "status": "final",
                                 "type": {"text": "Consult note"}, "date": "2025-06-30",
                                 "author": [{"display": "Spine clinic"}], "title": "Consult"}))
    if btype == "message":
        entries.insert(0, entry({"resourceType": "MessageHeader", "id": "mh",
                                 "eventCoding": {"system": "urn:x", "code": "referral"},
                                 "source": {"endpoint": "urn:x"}}))
    records = load_document(bundle(btype, *entries), source="b.json")
    assert [r.patient for r in records] == ["Patient/p1"]
    assert ids(records[0], "Condition") == ["c1"]


def test_a_transaction_delete_entry_has_nothing_to_read():
    data = bundle("transaction", entry(patient()), {"request": {"method": "DELETE", "url": "Condition/old"}})
    (record,) = load_document(data, source="t.json")
    assert record.of_type("Condition") == []


def test_a_single_resource_is_a_record():
    (record,) = load_document(patient("solo"), source="p.json")
    assert record.patient == "Patient/solo"
    assert record.patient_resource is not None and record.patient_resource.gender == "female"


def test_a_single_condition_is_filed_under_its_subject():
    (record,) = load_document(condition("c1", "Patient/p9"), source="c.json")
    assert record.patient == "Patient/p9"
    assert ids(record, "Condition") == ["c1"]


@pytest.mark.parametrize(
    "reference",
    ["Patient/p1", f"{BASE}/Patient/p1", f"{BASE}/Patient/p1/_history/3", UUID_P],
    ids=["relative", "absolute", "versioned", "urn-uuid"],
)
def test_reference_forms_resolve_and_group(reference):
    data = bundle(
        "collection",
        entry(patient(), UUID_P if reference == UUID_P else f"{BASE}/Patient/p1"),
        entry(condition("c1", reference)),
    )
    (record,) = load_document(data, source="r.json")
    assert record.patient == "Patient/p1"
    assert ids(record, "Condition") == ["c1"]
    assert record.resolve(reference) is record.patient_resource
    (cond,) = record.of_type("Condition")
    assert record.resolve(cond.subject) is record.patient_resource


def test_resources_without_ids_are_known_by_their_full_url():
    enc = {"resourceType": "Encounter", "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
           "subject": {"reference": UUID_P}}
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
           "subject": {"reference": UUID_P}, "encounter": {"reference": UUID_E}, "valueInteger": 8}
    pat = {"resourceType": "Patient", "gender": "male"}
    data = bundle("transaction", entry(pat, UUID_P), entry(enc, UUID_E), entry(obs, "urn:uuid:77"))
    (record,) = load_document(data, source="t.json")
    assert record.patient == UUID_P
    (observation,) = record.of_type("Observation")
    assert record.ref(observation) == "urn:uuid:77"
    assert record.resolve(observation.encounter).class_fhir.code == "IMP"


def test_two_patients_are_grouped_apart():
    data = bundle(
        "collection",
        entry(patient("a")),
        entry(patient("b")),
        entry(condition("ca", "Patient/a")),
        entry(condition("cb1", "Patient/b")),
        entry(condition("cb2", f"{BASE}/Patient/b")),
    )
    records = {r.patient: r for r in load_document(data, source="two.json")}
    assert set(records) == {"Patient/a", "Patient/b"}
    assert ids(records["Patient/a"], "Condition") == ["ca"]
    assert ids(records["Patient/b"], "Condition") == ["cb1", "cb2"]


def test_unfiled_resource_joins_the_only_patient():
    enc = {"resourceType": "Encounter", "id": "e1", "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}
    (record,) = load_document(bundle("collection", entry(patient()), entry(enc)), source="u.json")
    assert ids(record, "Encounter") == ["e1"]


def test_noise_is_skipped():
    ver = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

    def status(code: str) -> dict[str, Any]:
        return {"coding": [{"system": ver, "code": code}]}

    data = bundle(
        "collection",
        entry(patient()),
        entry(condition("keep", "Patient/p1")),
        entry(condition("eie", "Patient/p1", verificationStatus=status("entered-in-error"))),
        entry(condition("refuted", "Patient/p1", verificationStatus=status("refuted"))),
        entry({"resourceType": "Observation", "id": "obs-eie", "status": "entered-in-error",
               "code": {"text": "NRS"}, "subject": {"reference": "Patient/p1"}, "valueInteger": 2}),
        entry({"resourceType": "ServiceRequest", "id": "sr-cancelled", "status": "cancelled", "intent": "order",
               "code": {"text": "Kyphoplasty L1"}, "subject": {"reference": "Patient/p1"}}),
    )
    (record,) = load_document(data, source="n.json")
    assert ids(record, "Condition") == ["keep"]
    assert record.of_type("Observation", "ServiceRequest") == []


def test_unused_types_are_not_validated():
    bad_practitioner = {"resourceType": "Practitioner", "id": "dr", "gender": 42, "notAnElement": True}
    data = bundle("collection", entry(patient()), entry(bad_practitioner), entry({"resourceType": "Madeup", "x": 1}))
    (record,) = load_document(data, source="u.json")
    assert record.patient == "Patient/p1"
    assert record.of_type("Practitioner") == []


@pytest.mark.parametrize(
    ("resource", "label", "element"),
    [
        (condition("bad", "Patient/p1", onsetDateTime="2025-13-45"), "Condition/bad", "onsetDateTime"),
        ({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "NRS"},
          "valueInteger": "eight"}, "Observation/o1", "valueInteger"),
        ({"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"}, "onsetDatetime": "2025"},
         "Condition/c2", "onsetDatetime"),
    ],
    ids=["bad-date", "bad-integer", "unknown-element"],
)
def test_a_malformed_used_type_names_the_resource_and_element(resource, label, element):
    with pytest.raises(InputError) as info:
        load_document(bundle("collection", entry(patient()), entry(resource)), source="bad.json")
    err = info.value
    assert (err.source, err.resource, err.element) == ("bad.json", label, element)
    assert str(err).startswith(f"bad.json: {label} {element}: invalid ")


def test_an_entry_without_an_id_is_named_by_position():
    data = bundle("collection", entry(patient()), entry({"resourceType": "Condition", "subject": {"reference": "x"},
                                                         "onsetDateTime": "nope"}))
    with pytest.raises(InputError, match=r"entry\[1\] \(Condition\) onsetDateTime"):
        load_document(data, source="bad.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"foo": 1}', "no resourceType"),
        ("[1, 2]", "expected a JSON object"),
        ('{"resourceType": "Bundle", "type": "collection", "entry": {}}', "entry must be an array"),
        ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"id": "x"}}]}', "no resourceType"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
    ],
    ids=["syntax", "not-fhir", "array", "entry-object", "entry-without-type", "not-utf8"],
)
def test_load_file_input_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "in.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        load_file(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_load_file_missing(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_file(tmp_path / "absent.json")


def test_load_file_reads_a_bundle(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(bundle("collection", entry(patient()), entry(condition("c1", "Patient/p1")))))
    (record,) = load_file(path)
    assert record.source == str(path)
    assert ids(record, "Condition") == ["c1"]


def test_a_reference_into_another_patients_record_has_a_canonical_reference():
    # The index is shared by the records of one input, so an Observation may resolve an Encounter
    # filed under another patient; `ref` of that Encounter once raised KeyError (refs were per record).
    enc = {"resourceType": "Encounter", "id": "e-b", "status": "finished", "subject": {"reference": "Patient/b"},
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}}
    obs = {"resourceType": "Observation", "id": "o-a", "status": "final", "code": {"text": "NRS"},
           "subject": {"reference": "Patient/a"}, "encounter": {"reference": "Encounter/e-b"}}
    data = bundle("collection", entry(patient("a")), entry(patient("b")), entry(enc), entry(obs))
    records = {r.patient: r for r in load_document(data, source="x.json")}
    (observation,) = records["Patient/a"].of_type("Observation")
    target = records["Patient/a"].resolve(observation.encounter)
    assert records["Patient/a"].ref(target) == "Encounter/e-b"


def test_an_unfiled_resource_beside_two_patients_still_has_a_reference():
    enc = {"resourceType": "Encounter", "status": "finished", "period": {"start": "2025-06-10"},
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}}
    data = bundle("collection", entry(patient("a")), entry(patient("b")), entry(enc, UUID_E))
    record = load_document(data, source="x.json")[0]
    assert record.ref(record.resolve(UUID_E)) == UUID_E


# ---------------------------------------------------------------- loader edge cases


@pytest.mark.parametrize(
    "data",
    [
        {"resourceType": "Bundle", "type": "collection"},
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:1"}, {}]},
    ],
    ids=["no-entry", "empty-entry", "entries-without-resource"],
)
def test_a_bundle_with_nothing_to_read_gives_no_record(data):
    assert load_document(data, source="empty.json") == []


def test_a_bundle_inside_a_bundle_is_read_through():
    # A batch-response of searchsets, a collection of documents: the resources were once dropped
    # silently (the Condition below vanished and the patient looked fracture-free).
    inner = bundle("searchset", entry(condition("c1", "Patient/p1"), f"{BASE}/Condition/c1"))
    (record,) = load_document(bundle("batch-response", entry(patient()), entry(inner)), source="n.json")
    assert ids(record, "Condition") == ["c1"]
    assert record.resolve(f"{BASE}/Condition/c1") is record.of_type("Condition")[0]


def test_an_error_in_a_nested_bundle_names_its_path():
    inner = bundle("collection", entry({"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
                                        "onsetDateTime": "June"}))
    with pytest.raises(InputError) as info:
        load_document(bundle("collection", entry(patient()), entry(inner)), source="n.json")
    assert info.value.resource == "entry[1].resource.entry[0] (Condition)"
    assert info.value.element == "onsetDateTime"


def test_bundles_nested_without_end_are_an_input_error():
    data: dict[str, Any] = bundle("collection", entry(patient()))
    for _ in range(20):
        data = bundle("collection", entry(data))
    with pytest.raises(InputError, match="nested more than"):
        load_document(data, source="deep.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"resourceType": "Foo", "id": "x"}, "unknown FHIR resource type 'Foo'"),
        ({"resourceType": "patient", "id": "x"}, "did you mean 'Patient'"),
        ({"resourceType": 5}, "resourceType must be a non-empty string, not 5"),
        ({"resourceType": ["Patient"]}, "resourceType must be a non-empty string"),
        (bundle("collection", {"resource": {"resourceType": None, "id": "x"}}), "must be a non-empty string"),
        (bundle("collection", {"resource": "Patient/p1"}), "expected a JSON object"),
    ],
    ids=["unknown-type", "lower-case-type", "int-type", "list-type", "null-type-in-entry", "string-resource"],
)
def test_resource_types_that_are_not_fhir_are_input_errors(data, message):
    with pytest.raises(InputError, match=message):
        load_document(data, source="t.json")


def test_a_contained_resource_of_unknown_type_is_an_input_error():
    # The R4B models raise KeyError (not a validation error) here: it once surfaced as an internal error.
    cond = condition("c1", "Patient/p1", contained=[{"resourceType": "Foo", "id": "z"}])
    with pytest.raises(InputError) as info:
        load_document(bundle("collection", entry(patient()), entry(cond)), source="c.json")
    assert (info.value.resource, info.value.element) == ("Condition/c1", "contained[0].resourceType")
    assert "unknown FHIR resource type 'Foo'" in str(info.value)


def test_elements_nested_too_deeply_are_an_input_error():
    # Valid JSON a few hundred levels deep makes the R4B validators recurse past Python's limit.
    extension: list[dict[str, Any]] = [{"url": "urn:x", "valueString": "v"}]
    for _ in range(400):
        extension = [{"url": "urn:x", "extension": extension}]
    with pytest.raises(InputError, match="nested too deeply") as info:
        load_document({**patient(), "extension": extension}, source="deep.json")
    assert info.value.resource == "Patient/p1"


@pytest.mark.parametrize(
    ("extra", "element", "message"),
    [
        ({"valueQuantity": {"value": "abc"}}, "valueQuantity.value", "'abc' is not a valid FHIR decimal"),
        ({"effectiveDateTime": "2025-13-01"}, "effectiveDateTime", "'2025-13-01' is not a valid FHIR dateTime"),
        ({"status": ""}, "status", "empty value"),
        ({"effectiveDateTime": "2025", "effectivePeriod": {"start": "2025"}}, "effective[x]",
         "only one of effectiveDateTime, effectivePeriod may be given"),
        ({"component": [{"code": {"text": "a"}, "valueInteger": 1, "valueString": "x"}]}, "component[0].value[x]",
         "only one of valueInteger, valueString may be given"),
        ({"bodySite": [{"text": "T12"}]}, "bodySite", "CodeableConcept"),
        ({"valueInteger": 2**40}, "valueInteger", "less than or equal to 2147483647"),
    ],
    ids=["decimal", "datetime", "empty", "choice", "nested-choice", "list-for-object", "int-range"],
)
def test_validation_messages_name_the_nested_element_and_the_problem(extra, element, message):
    obs = {"resourceType": "Observation", "id": "x", "status": "final", "code": {"text": "NRS"},
           "subject": {"reference": "Patient/p1"}, **extra}
    with pytest.raises(InputError) as info:
        load_document(bundle("collection", entry(patient()), entry(obs)), source="o.json")
    assert (info.value.resource, info.value.element) == ("Observation/x", element)
    assert message in info.value.message
    assert "Value error," not in info.value.message and ".root" not in str(info.value)


def test_load_file_edge_cases(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="invalid JSON"):
        load_file(empty)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(bundle("collection", entry(patient()))).encode())
    assert [r.patient for r in load_file(bom)] == ["Patient/p1"]


def test_what_is_set_aside_is_counted_per_patient_in_the_order_first_seen():
    """Set-aside resources are counted per (patient, reason) in one go: each record's `skipped` has
    its reasons in the order they first appear for that patient, and every resource counted once."""

    def obs(oid: str, subject: str, status: str) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": oid, "status": status, "code": {"text": "NRS"},
                "subject": {"reference": subject}, "valueInteger": 2}

    data = bundle(
        "collection",
        entry(patient("a")),
        entry(patient("b")),
        entry(obs("b1", "Patient/b", "cancelled")),
        entry({"resourceType": "Practitioner", "id": "dr"}),
        entry(obs("a1", "Patient/a", "entered-in-error")),
        entry({"resourceType": "Claim", "id": "c1", "patient": {"reference": "Patient/a"}}),
        entry(obs("a2", "Patient/a", "cancelled")),
        entry(obs("b2", f"{BASE}/Patient/b", "entered-in-error")),
        entry(obs("a3", "Patient/a", "entered-in-error")),
        entry(obs("b3", "Patient/b", "cancelled")),
    )
    records = {r.patient: r for r in load_document(data, source="two.json")}
    assert list(records["Patient/a"].skipped.items()) == [("entered-in-error", 2), ("type-not-read", 1),
                                                          ("cancelled", 1)]
    assert list(records["Patient/b"].skipped.items()) == [("cancelled", 2), ("entered-in-error", 1)]


def _count_by_named_patient(set_aside: list[tuple[Any, str]], records: dict[str, Any], patient_key: Any) -> None:
    """The count `_count_set_aside` replaced: per (the patient each resource names, reason), every resource's
    patient read, the only record taking what names no record."""
    from fhir_vcf.record import _raw_patient

    counts: dict[tuple[str | None, str], int] = {}
    for data, reason in set_aside:
        key = (_raw_patient(data), reason)
        counts[key] = counts.get(key, 0) + 1
    for (pointer, reason), count in counts.items():
        target = records.get(patient_key(pointer)) if pointer else None
        if target is None and len(records) == 1:
            target = next(iter(records.values()))
        if target is not None:
            target.skipped[reason] += count


def test_one_patients_set_aside_counts_are_the_same_without_reading_whom_each_names(monkeypatch):
    """With one patient in the input, `_count_set_aside` counts every reason on that record without
    reading the patient each resource names: the same counts, in the same order, as counting per named
    patient, on every bundle here (one patient or several) and on a bundle naming other patients."""
    from pathlib import Path

    from fhir_vcf import record as loader

    root = Path(__file__).resolve().parent.parent
    paths = sorted(p for folder in ("samples", "samples/ehr-exports", "tests/data", "tests/data/unseen",
                                    "tests/data/unseen-exports", "tests/data/realistic")
                   for p in (root / folder).glob("*.json") if p.name != "expected.json")
    mixed = bundle("collection", entry(patient("a")), entry({"resourceType": "Practitioner", "id": "dr"}),
                   entry(condition("c1", "Patient/zz", verificationStatus={"coding": [{"code": "refuted"}]})),
                   entry(condition("c2", "Patient/a", clinicalStatus={"coding": [{"code": "active"}]},
                                   verificationStatus={"coding": [{"code": "entered-in-error"}]})))
    documents = [json.loads(p.read_text()) for p in paths] + [mixed]

    def counted() -> list[Any]:
        found = []
        for document in documents:
            try:
                found.append([(r.patient, list(r.skipped.items())) for r in load_document(document, source="x")])
            except InputError as exc:
                found.append(str(exc))
        return found

    now = counted()
    monkeypatch.setattr(loader, "_count_set_aside", _count_by_named_patient)
    assert now == counted()
    assert sum(len(records) == 1 and bool(records[0][1]) for records in now if isinstance(records, list)) > 20

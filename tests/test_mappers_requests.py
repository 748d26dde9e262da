"""Augmentation requests: technique, levels, level count, deleted codes, and which one is judged."""

from __future__ import annotations

from datetime import date

import pytest
from fhir_builders import coding, concept, condition, record, service_request, vertebra

from fhir_vcf.facts import FractureFacts, Method
from fhir_vcf.mappers import map_record

AS_OF = date(2025, 6, 30)


def facts(*resources, request: str | None = None) -> FractureFacts:
    return map_record(record(*resources), as_of=AS_OF, request=request)


def test_levels_from_body_site_codes():
    f = facts(service_request("sr", coding("cpt", "22513"), coding("cpt", "22515"), status="draft",
                              authored="2025-06-20", body_sites=[vertebra("L1"), vertebra("T12")],
                              reasons=["Condition/vcf"]),
              condition("vcf", coding("icd", "M80.08XA"), onset="2025-06-02", body_sites=[vertebra("T12")]))
    req = f.request
    assert req is not None and req.reference == "ServiceRequest/sr"
    assert (req.technique, req.levels, req.level_count) == ("kyphoplasty", ("T12", "L1"), 2)
    assert req.cpt == ("22513", "22515") and req.method is Method.CODE
    assert req.reasons == ("Condition/vcf",)
    assert req.authored == date(2025, 6, 20) and req.status == "draft"


def test_levels_from_code_text():
    f = facts(service_request("sr", text="kyphoplasty T12, L1", status="active"))
    req = f.request
    assert (req.technique, req.levels, req.level_count, req.method) == ("kyphoplasty", ("T12", "L1"), 2, Method.TEXT)
    assert req.cpt == ()


@pytest.mark.parametrize(
    ("words", "body_sites", "levels"),
    [
        # Order text as clinicians type it: a level excluded or a previous procedure is not a level to treat.
        ("PVP T12 (L1 not to be treated)", (), ("T12",)),
        ("Kyphoplasty T12, not L1", (), ("T12",)),
        ("Kyphoplasty T12 (L1 chronic - not to be treated)", (), ("T12",)),
        ("Kyphoplasty T12 and L2; L1 not to be treated", (), ("T12", "L2")),
        # Coded body sites say which levels (input profile: level count = bodySites); the text may add
        # history ("prior L1 kyphoplasty 2023") that is no level of this order.
        ("Kyphoplasty T12 (prior L1 kyphoplasty 2023)", (vertebra("T12"),), ("T12",)),
    ],
)
def test_request_text_levels_that_are_not_to_be_treated(words, body_sites, levels):
    f = facts(service_request("sr", coding("cpt", "22513"), text=words, body_sites=list(body_sites)))
    assert f.request.levels == levels


def test_levels_from_body_site_text():
    f = facts(service_request("sr", coding("cpt", "22511"), body_sites=[concept(text="L3 vertebral body")]))
    assert f.request.levels == ("L3",) and f.request.technique == "vertebroplasty"


def test_snomed_procedure_matched_by_words_only():
    f = facts(service_request("sr", coding("snomed", "447766003", "Percutaneous vertebroplasty"), status="draft"))
    assert f.request.technique == "vertebroplasty" and f.request.method is Method.TEXT
    f = facts(service_request("sr", text="Vertebral augmentation L2", status="draft"))
    assert f.request.technique == "unspecified" and f.request.levels == ("L2",)


@pytest.mark.parametrize(
    ("codings", "quantity", "count"),
    [
        ((coding("cpt", "22514"),), None, 1),
        ((coding("cpt", "22514"), coding("cpt", "22515")), None, 2),
        ((coding("cpt", "22514"), coding("cpt", "22515"), coding("cpt", "22515")), None, 3),
        ((coding("cpt", "22514"), coding("cpt", "22515")), 3, 4),
    ],
)
def test_level_count_from_add_ons_when_no_level_named(codings, quantity, count):
    f = facts(service_request("sr", *codings, quantity=quantity))
    assert f.request.levels == () and f.request.level_count == count


def test_deleted_codes_are_still_requests():
    f = facts(service_request("sr", coding("cpt", "22523"), coding("cpt", "72291"), body_sites=[vertebra("T12")]))
    req = f.request
    assert req.deleted_codes == ("22523", "72291")
    assert req.cpt == () and req.technique == "kyphoplasty"


def test_other_service_requests_are_not_augmentation():
    f = facts(service_request("mri", coding("cpt", "72148", "MRI lumbar spine"), text="MRI L-spine"),
              service_request("pt", text="Physical therapy"))
    assert f.requests == () and f.request is None


def test_completed_request_listed_but_not_judged():
    f = facts(service_request("done", coding("cpt", "22513"), status="completed", authored="2025-06-01"))
    assert [r.reference for r in f.requests] == ["ServiceRequest/done"]
    assert f.request is None


def test_latest_draft_or_active_is_judged_by_default():
    f = facts(
        service_request("old", coding("cpt", "22513"), status="active", authored="2025-06-01"),
        service_request("new", coding("cpt", "22514"), status="draft", authored="2025-06-20"),
        service_request("hold", coding("cpt", "22510"), status="on-hold", authored="2025-06-25"),
    )
    assert f.request.reference == "ServiceRequest/new"
    assert len(f.requests) == 3


def test_named_request_is_judged():
    resources = (
        service_request("a", coding("cpt", "22513"), status="draft", authored="2025-06-20",
                        body_sites=[vertebra("T12")]),
        service_request("b", coding("cpt", "22514"), status="draft", authored="2025-06-01",
                        body_sites=[vertebra("L2")]),
    )
    assert facts(*resources).request.reference == "ServiceRequest/a"
    f = facts(*resources, request="ServiceRequest/b")
    assert f.request.reference == "ServiceRequest/b"
    assert set(f.acuity) == {"L2"}  # the judged request's levels, not the other one's


def test_named_request_not_in_record_falls_back_to_default():
    f = facts(service_request("a", coding("cpt", "22513"), status="draft"), request="ServiceRequest/zzz")
    assert f.request.reference == "ServiceRequest/a"


def test_request_authored_after_as_of_is_invisible():
    f = facts(service_request("a", coding("cpt", "22513"), status="draft", authored="2025-07-02"))
    assert f.requests == ()


def _every_order_and_procedure():
    from pathlib import Path

    from fhir_vcf.errors import InputError
    from fhir_vcf.sources.files import bundle_files, load_file

    root = Path(__file__).resolve().parents[1]
    for path in bundle_files([root / "samples", root / "samples" / "ehr-exports", root / "tests" / "data",
                              root / "tests" / "data" / "unseen", root / "tests" / "data" / "unseen-exports",
                              root / "tests" / "data" / "realistic"]):
        try:
            records = load_file(path)
        except InputError:
            continue
        for rec in records:
            for resource in rec.of_type("ServiceRequest", "Procedure"):
                yield rec, resource


def test_requested_technique_is_map_requests_technique():
    """The transports recognise a draft order (and the audit a performed procedure) by
    `requested_technique`, map_request's recognition without levels or counts: the same answer for
    every ServiceRequest and Procedure of every bundle, augmentation or not."""
    from fhir_vcf.mappers.requests import map_request, requested_technique

    seen = {None: 0, "kyphoplasty": 0, "vertebroplasty": 0, "unspecified": 0}
    for rec, resource in _every_order_and_procedure():
        mapped = map_request(rec, resource)
        technique = requested_technique(resource)
        assert technique == (mapped.technique if mapped else None), rec.ref(resource)
        seen[technique] += 1
    # orders of each kind and other resources were compared ("unspecified": the cases below)
    assert seen[None] and seen["kyphoplasty"] and seen["vertebroplasty"], seen


@pytest.mark.parametrize("words, technique", [
    ("Balloon kyphoplasty T12", "kyphoplasty"),
    ("Vertebroplasty L1", "vertebroplasty"),
    ("Vertebral augmentation L1", "unspecified"),
    ("No kyphoplasty; vertebroplasty L2", "vertebroplasty"),
    ("MRI lumbar spine", None),
])
def test_requested_technique_from_words(words, technique):
    from fhir_vcf.mappers.requests import map_request, requested_technique

    order = service_request("o1", text=words)
    rec = record(order)
    resource = rec.of_type("ServiceRequest")[0]
    mapped = map_request(rec, resource)
    assert requested_technique(resource) == technique == (mapped.technique if mapped else None)


def _every_order_and_procedure_as_json():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for folder in ("samples", "samples/ehr-exports", "tests/data", "tests/data/unseen", "tests/data/unseen-exports",
                   "tests/data/realistic"):
        for path in sorted((root / folder).glob("*.json")):
            try:
                doc = json.loads(path.read_text())
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            entries = doc.get("entry", []) if doc.get("resourceType") == "Bundle" else [{"resource": doc}]
            for entry in entries if isinstance(entries, list) else []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") in ("ServiceRequest", "Procedure"):
                    yield resource


_WORDS = ["Balloon kyphoplasty T12", "Vertebroplasty L1", "Vertebral augmentation L1",
          "No kyphoplasty; vertebroplasty L2", "MRI lumbar spine", "no vertebroplasty", "Kyphoplasty T12, L1"]


def test_a_remembered_code_reading_is_the_models():
    """`_read_code` keeps what an order's code says in the memory of a shared code element (read by the
    transport, then by map_request on the record's copy). For every ServiceRequest and Procedure of every
    bundle, and orders by words and by codes, the recognition read from the element (first, then
    remembered, after every other code was read) is the one read from the R4B model, which has no memory."""
    from fhir_vcf.elements import NotValid, read_resource
    from fhir_vcf.mappers.requests import _read_code, map_request, requested_technique
    from fhir_vcf.record import validate_resource

    resources = [*_every_order_and_procedure_as_json(),
                 *(service_request(f"w{i}", text=words) for i, words in enumerate(_WORDS)),
                 service_request("c1", coding("cpt", "22513"), coding("cpt", "22515"), text="Kyphoplasty T12, L1"),
                 service_request("c2", coding("cpt", "22520"), text="vertebroplasty"),
                 service_request("c3", coding("cpt", "22514"), coding("cpt", "22515"), coding("cpt", "22515")),
                 service_request("c4", coding("snomed", "447766003", "Percutaneous vertebroplasty")),
                 service_request("c5")]
    pairs = []
    for i, data in enumerate(resources):
        try:
            element = read_resource(data)
        except NotValid:
            continue
        pairs.append((f"R/{i}", element, validate_resource(data, source="test", label=f"R/{i}")))
    assert len(pairs) > 40
    for _ in range(2):  # the first pass fills the memories, the second reads them
        for ref, element, model in pairs:
            assert _read_code(element.code) == _read_code(model.code), ref
            assert requested_technique(element) == requested_technique(model), ref
    # the same code written twice is one element, read once: the other order's reference is not in its evidence
    orders = [service_request(i, coding("cpt", "22513"), text="Kyphoplasty L1") for i in "ab"]
    first, second = (read_resource(order) for order in orders)
    assert first.code is second.code
    rec = record(*orders)
    for resource in rec.of_type("ServiceRequest"):
        mapped = map_request(rec, resource)
        assert {e.reference for e in mapped.evidence} == {rec.ref(resource)}

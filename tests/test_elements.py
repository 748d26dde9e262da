"""The record's resources are `fhir_vcf.elements` Elements: they must read exactly as the R4B models.

The mappers were written against fhir.resources models; the record now hands them Elements built
without a model (issue 11). These tests hold the two to each other: same values and Python types
for every element of every resource in the samples and test bundles, the same refusals for bad
input (and the same error, worded by the model), and the same attribute behaviour.
"""

from __future__ import annotations

import json
import pickle
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strings import strings_in

from fhir_vcf.elements import Element, NotValid, read_resource
from fhir_vcf.errors import InputError
from fhir_vcf.mappers import _context as ctx
from fhir_vcf.mappers import care, exclusions
from fhir_vcf.record import USED_TYPES, load_document, validate_resource

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = sorted(p for folder in ("samples", "tests/data/unseen", "tests/data/unseen-exports", "tests/data/realistic")
                 for p in (ROOT / folder).glob("*.json") if p.name != "expected.json")


def _resources(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text())
    entries = doc.get("entry", []) if doc.get("resourceType") == "Bundle" else [{"resource": doc}]
    return [e["resource"] for e in entries if e.get("resource", {}).get("resourceType") in USED_TYPES]


def _plain(value: Any) -> Any:
    """Every element, present or not, with its Python type: what a mapper could observe."""
    if hasattr(type(value), "model_fields"):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return (type(value).__name__, repr(value)) if value is not None else None


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_resource_reads_as_its_r4b_model(path):
    for data in _resources(path):
        model = validate_resource(data, source=path.name, label=str(data.get("id")))
        assert _plain(read_resource(data)) == _plain(model), data.get("id")


OBSERVATION = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "NRS"},
               "subject": {"reference": "Patient/p"}}

# Each: what the R4B model says of it (valid or which element is wrong); the walk must agree.
EDGES = [
    ({"valueQuantity": {"value": "1.5"}}, None),
    ({"valueInteger": 2.0}, None),
    ({"valueInteger": 2.5}, "valueInteger"),
    ({"valueInteger": 2**40}, "valueInteger"),
    ({"status": "  "}, "status"),
    ({"status": " final"}, "status"),
    ({"status": None}, "status"),
    ({"status": None, "_status": {"extension": [{"url": "urn:x", "valueString": "unknown"}]}}, None),
    ({"code": json.dumps({"text": "x"})}, None),
    ({"code": "NRS"}, "code"),
    ({"category": [None]}, "category"),
    ({"category": {"text": "x"}}, "category"),
    ({"bodySite": [{"text": "T12"}]}, "bodySite"),
    ({"effectiveDateTime": "2024-02-30"}, "effectiveDateTime"),
    ({"effectiveDateTime": "2024-06-01T10:00:00"}, "effectiveDateTime"),
    ({"issued": "2024-06-01"}, "issued"),
    ({"effectiveDateTime": "2024", "effectivePeriod": {"start": "2024"}}, "effective[x]"),
    ({"component": [{"code": {"text": "a"}, "valueInteger": 1, "valueString": "x"}]}, "component[0].value[x]"),
    ({"component": [{"valueInteger": 1}]}, "component[0].code"),
    ({"note": [{"text": "a", "authorString": "x", "authorReference": {"reference": "x"}}]}, "note[0].author[x]"),
    ({"contained": [{"resourceType": "Medication", "id": "m", "code": {"text": "x"}}]}, None),
    ({"contained": [{"resourceType": "Medication", "id": "m", "bogus": 1}]}, "contained[0].bogus"),
    ({"contained": [{"resourceType": "Foo", "id": "z"}]}, "contained[0].resourceType"),
    ({"code": {"coding": [{"code": "x  y"}]}}, "code.coding[0].code"),
    ({"identifier": [{"value": "v", "_value": {"extension": [{"url": "urn:x", "valueCode": "x"}]}}]}, None),
    ({"onsetDateTime": "2024"}, "onsetDateTime"),
    ({"valueTime": "25:00:00"}, "valueTime"),
]


@pytest.mark.parametrize(("extra", "element"), EDGES, ids=[json.dumps(e)[:40] for e, _ in EDGES])
def test_the_walk_refuses_what_the_model_refuses_and_loading_names_the_element(extra, element):
    data = {**OBSERVATION, **extra}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": data}]}
    if element is None:
        assert _plain(read_resource(data)) == _plain(validate_resource(data, source="x", label="o"))
        assert load_document(bundle, source="x")
        return
    with pytest.raises(NotValid):
        read_resource(data)
    with pytest.raises(InputError) as info:
        load_document(bundle, source="x")
    assert (info.value.resource, info.value.element) == ("Observation/o", element)


def test_elements_read_like_models():
    enc = read_resource({"resourceType": "Encounter", "id": "e", "status": "finished",
                         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                         "period": {"start": "2025-06-01T10:00:00+02:00", "end": "2025-06"}})
    assert isinstance(enc, Element) and enc.get_resource_type() == "Encounter"
    assert enc.class_fhir.code == "IMP"  # `class` is a Python keyword: the models call it class_fhir
    assert enc.period.start == datetime.fromisoformat("2025-06-01T10:00:00+02:00")
    assert enc.period.end == "2025-06"  # a partial dateTime stays a string, as in the models
    assert enc.subject is None and enc.hospitalization is None  # absent elements of the type
    with pytest.raises(AttributeError):
        enc.effectiveDateTime  # noqa: B018  (not an element of Encounter, as with the model)
    obs = read_resource({**OBSERVATION, "effectiveDateTime": "2025-06-01", "valueQuantity": {"value": 7.5}})
    assert obs.effectiveDateTime == date(2025, 6, 1) and obs.valueQuantity.value == Decimal("7.5")
    assert pickle.loads(pickle.dumps(obs)) == obs  # population engines ship records between processes


def test_a_list_of_elements_is_a_list_with_its_own_memory():
    """`Elements` has no `__init__` of its own: its `_memo` is None until set, set on it alone, and kept
    with its items across processes (pickle), like an Element's."""
    from fhir_vcf.elements import Elements
    from fhir_vcf.mappers.common import memo_of

    obs = read_resource({**OBSERVATION, "category": [{"text": "a"}, {"text": "b"}]})
    first, second = obs.category, Elements([obs.category[0]])
    assert type(first) is Elements and first == [obs.category[0], obs.category[1]]
    assert first._memo is None and second._memo is None and Elements()._memo is None and Elements() == []
    memo = memo_of(first)
    assert memo == {} and first._memo is memo and memo_of(first) is memo
    assert second._memo is None and Elements._memo is None  # set on that list alone
    memo["k"] = "v"
    copied = pickle.loads(pickle.dumps(first))
    assert type(copied) is Elements and copied == first and copied._memo == {"k": "v"}
    assert pickle.loads(pickle.dumps(second))._memo is None


def test_noise_is_skipped_before_it_is_checked():
    # Recorded in error: never read, so never validated (input profile, rule 3); its bad date is no error.
    noise = {**OBSERVATION, "status": "entered-in-error", "effectiveDateTime": "yesterday"}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}, {"resource": noise}]}
    (record,) = load_document(bundle, source="x")
    assert record.of_type("Observation") == []


def _texts() -> list[str]:
    found = []
    for path in BUNDLES:
        for data in _resources(path):
            found.extend(v for v in strings_in(data) if len(v) > 3)
    return found


@pytest.mark.parametrize("family", ["care", "exclusions", "analgesics"])
def test_a_joined_family_matches_exactly_where_one_of_its_terms_does(family):
    patterns = {
        "care": [*care._TEXT_KINDS.values(), care._ANALGESIC_TEXT, care._OSTEOPOROSIS_TEXT, care._DXA_TEXT,
                 care._PROGRAM_TEXT],
        "exclusions": [*exclusions._TEXT.values(), *exclusions._NORMAL.values(), exclusions._INSTABILITY,
                       exclusions._PAIN_ELSEWHERE, exclusions._PAIN_AT_FRACTURE],
        "analgesics": list(care._ANALGESIC_NAMES.values()),
    }[family]
    joined = ctx.TermFilter(patterns)
    assert joined.pattern is not None
    texts = _texts()
    hits = 0
    for body in texts:
        expected = any(p.search(body) for p in patterns)
        assert (joined.pattern.search(body) is not None) == expected == joined.may_match(body), body
        assert joined.may_match(body) == expected  # and again, remembered
        hits += expected
    assert 0 < hits < len(texts)  # the texts exercise both answers


def test_remembered_texts_stay_bounded_and_answers_stay_right(monkeypatch):
    # Both memories hold texts from the input: bounded, emptied when full, never a different answer.
    words = ctx.TermFilter([ctx.compile_terms(["kyphoplasty"])])
    monkeypatch.setattr(ctx.TermFilter, "LIMIT", 5)
    for i in range(12):
        assert words.may_match(f"s/p kyphoplasty {i}") and not words.may_match(f"knee {i}")
        assert len(words._seen) <= 5
    from fhir_vcf.elements import _Primitive

    monkeypatch.setattr(_Primitive, "LIMIT", 5)
    for i in range(1, 13):
        obs = read_resource({**OBSERVATION, "effectiveDateTime": f"2025-06-{i:02d}"})
        assert obs.effectiveDateTime == date(2025, 6, i)


def test_a_repeated_element_is_read_once_and_shared_and_others_are_not():
    """Elements of a record repeat (codings, references, quantities): each is read once and shared
    (`elements._FLAT`), keyed by its exact JSON. Shared reads are the same values; an element written
    differently (another number type), or holding a resource, is read apart."""
    def observation(rid: str, value: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": rid, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
                "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": value}}

    first, second = read_resource(observation("a", 5)), read_resource(observation("b", 5))
    assert first is not second
    assert first.subject is second.subject and first.subject.reference == "Patient/p1"
    assert first.code.coding[0] is second.code.coding[0]
    assert first.valueQuantity is second.valueQuantity and first.valueQuantity.value == Decimal(5)
    as_float = read_resource(observation("f", 5.0)).valueQuantity
    assert as_float is not first.valueQuantity and repr(as_float.value) == repr(Decimal("5.0"))
    other = read_resource(observation("c", 5) | {"subject": {"reference": "Patient/p2"}})
    assert other.subject is not first.subject and other.subject.reference == "Patient/p2"
    with pytest.raises(NotValid):  # a refusal is never remembered as a read
        read_resource(observation("d", 5) | {"subject": {"reference": "Patient/p1", "display": ""}})
    assert read_resource(observation("e", 5)).subject is first.subject


def _nested_extension(depth: int, concept: dict[str, Any]) -> dict[str, Any]:
    """An Observation whose CodeableConcept sits `depth` extensions deep."""
    ext: dict[str, Any] = {"url": "urn:x", "valueCodeableConcept": concept}
    for _ in range(depth):
        ext = {"url": "urn:x", "extension": [ext]}
    return {**OBSERVATION, "extension": [ext]}


def _read_or_refused(data: dict[str, Any]) -> Any:
    try:
        return _plain(read_resource(data))
    except NotValid:
        return "refused"


def test_concepts_are_shared_and_read_exactly_as_when_built_each_time(monkeypatch):
    """An element (a CodeableConcept) is read once and shared (`elements._element`, `_FLAT`): every resource
    of every bundle, and concepts at the depth limit, read the same (values, types, refusals) with the
    sharing as with each element built every time."""
    from fhir_vcf import elements

    concept = {"coding": [{"system": "http://loinc.org", "code": "72514-3", "display": "Pain"}], "text": "Pain"}
    cases = [data for path in BUNDLES for data in _resources(path)]
    cases += [_nested_extension(depth, concept) for depth in range(elements.MAX_DEPTH - 6, elements.MAX_DEPTH + 2)]
    cases += [{**OBSERVATION, "code": bad} for bad in (
        {"coding": [{"code": "x", "display": ""}]}, {"coding": [{"code": "x"}], "bogus": "y"},
        {"coding": [{"code": "x", "userSelected": "true"}]}, {"coding": ["x"]}, {"coding": []}, {"text": ""})]
    shared = [_read_or_refused(data) for data in cases]
    shared_again = [_read_or_refused(data) for data in cases]  # now read from the shared elements
    elements._FLAT.clear()
    monkeypatch.setattr(elements, "_element", elements._build)  # every element built each time
    monkeypatch.setattr(elements, "_resource", lambda data, table, rtype: elements._build(data, table, 0))
    built = [_read_or_refused(data) for data in cases]
    assert shared == built and shared_again == built
    assert "refused" in built and any(b != "refused" for b in built[-14:-6])  # both sides of the depth limit

    monkeypatch.undo()
    first, second = read_resource({**OBSERVATION, "code": concept}), read_resource({**OBSERVATION, "code": concept})
    assert first.code is second.code and first.code.coding[0].display == "Pain"
    other = read_resource({**OBSERVATION, "code": {**concept, "text": "Pain score"}})
    assert other.code is not first.code and other.code.text == "Pain score"
    quantity = {"coding": [{"system": "http://loinc.org", "code": "72514-3"}], "text": "Pain"}
    assert read_resource({**OBSERVATION, "code": quantity}).code is not first.code


# --- R4B date, dateTime and instant: the `_Dates` shortcut against the model's own adapter ---------

def _date_converters() -> list[tuple[str, Any]]:
    """(kind, the loader's conversion) for each R4B date primitive; each holds the adapter it replaces."""
    from typing import Optional

    from fhir_core.types import DateTimeType, DateType, InstantType

    from fhir_vcf import elements

    found = [(name, elements._primitive(Optional[kind]).validate)  # noqa: UP045 (the models' spelling)
             for name, kind in (("date", DateType), ("dateTime", DateTimeType), ("instant", InstantType))]
    assert all(isinstance(convert, elements._Dates) for _, convert in found)
    return found


def _outcome(convert: Any, value: Any) -> Any:
    """What a conversion gives, observably: the value, its type, its zone (type, offset, UTC singleton)
    and every field; or the error with its wording."""
    from pydantic import ValidationError
    from pydantic_core import TzInfo

    try:
        got = convert(value)
    except ValidationError as e:
        return ("refused", str(e), e.errors(include_url=False, include_context=False))
    zone = getattr(got, "tzinfo", None)
    fields = got.isoformat() if isinstance(got, date) else None
    return (type(got), got, fields, type(zone), zone.utcoffset(None) if zone else None, zone is TzInfo(0),
            got is value)


def _assert_dates_agree(values: list[Any]) -> None:
    for kind, convert in _date_converters():
        for value in values:
            fast, slow = _outcome(convert, value), _outcome(convert.validate, value)
            assert fast == slow, (kind, value, fast, slow)


_DATE_EDGES = [
    "2016-12-31T23:59:60Z", "2016-12-31T23:59:60.123+01:00", "2016-12-31T23:59:61Z", "2025-01-01T24:00:00Z",
    "2025-01-01T23:60:00Z", "2025-01-01T10:00:00+14:00", "2025-01-01T10:00:00-14:00", "2025-01-01T10:00:00+14:01",
    "2025-01-01T10:00:00+13:59", "2025-01-01T10:00:00+15:00", "2025-01-01T10:00:00-00:00", "2025-01-01T10:00:00+00:00",
    "2025-01-01T10:00:00Z", "2025-01-01T10:00:00z", "2025-01-01t10:00:00Z", "2025-01-01T10:00:00+0100",
    "2025-01-01T10:00:00+01", "2025-01-01T10:00:00+01:60", "2025-01-01T10:00:00", "2025-01-01T10:00Z",
    "2025-01-01T10Z", "2025-01-01 10:00:00Z", "2025-01-01T10:00:00.Z",
    *[f"2025-01-01T10:00:00.{'123456789987'[:n]}Z" for n in range(1, 13)],
    *[f"2025-01-01T10:00:00.{'9' * n}-05:30" for n in range(1, 13)],
    "2025", "2025-06", "2025-13", "2025-00", "2025-6", "0000", "0001", "9999", "0001-01", "9999-12",
    "0001-01-01", "9999-12-31", "0000-01-01", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59.999999999+14:00", "9999-12-31T23:59:59.999999999-14:00", "0000-01-01T00:00:00Z",
    "2025-02-29", "2024-02-29", "2025-02-30", "2025-04-31", "2025-02-29T10:00:00Z", "2024-02-29T10:00:00Z",
    "2025-02-30T10:00:00Z", "2025-00-10", "2025-01-00", "2025-01-32", "20250101", "2025-W01-1", "2025-001",
    " 2025-01-01", "2025-01-01 ", "2025-01-01\n", "\t2025-01-01T10:00:00Z", "2025-01-01T10:00:00Z\n", "",
    "٢٠٢٥-٠١-٠١", "２０２５-01-01", "2025-01-01T10:00:00.１Z", "+2025-01-01", "-2025-01-01", "12025-01-01",
    "2025-01-01T10:00:00.123+01:00", "2025-1-1", "2025-01-01T1:00:00Z", "1e3", "now", "2025-01-01T10:00:00+01:00:00",
]
_NON_STRINGS = [None, 0, 2025, 1.5, True, b"2025-01-01", [], ["2025-01-01"], {}, date(2025, 1, 1),
                datetime(2025, 1, 1, 10, 0), datetime(2025, 1, 1), datetime.fromisoformat("2025-01-01T10:00:00+01:00")]


def test_dates_read_by_the_shortcut_exactly_as_by_the_model_everywhere_in_the_bundles():
    """Every string of every JSON file of samples/ and tests/data that could be a date or time."""
    files = sorted((ROOT / "samples").rglob("*.json")) + sorted((ROOT / "tests" / "data").rglob("*.json"))
    values: set[str] = set()
    for path in files:
        try:
            doc = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        values.update(s for s in strings_in(doc) if s[:1].isdigit() and len(s) <= 80)
    assert len(values) > 500
    shortcut = [v for v in values if _of_shortcut_shape(v)]
    assert len(shortcut) > 200  # most are of the shortcut's shapes
    _assert_dates_agree(sorted(values))


def _of_shortcut_shape(value: str) -> bool:
    from fhir_vcf import elements

    return bool(elements._DATE_TIME.fullmatch(value) or elements._DATE_ONLY.fullmatch(value))


def test_dates_read_by_the_shortcut_exactly_as_by_the_model_at_the_edges():
    _assert_dates_agree(_DATE_EDGES + _NON_STRINGS)
    assert sum(map(_of_shortcut_shape, _DATE_EDGES)) > 30  # the shortcut's own shapes are among them


def _near_miss(text: str, draw: Any) -> str:
    """The text with one character replaced, inserted or removed: where a pattern's edges are."""
    chars = st.sampled_from(list("0123456789-+:.TZtz 6\n١x"))
    at = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["replace", "insert", "delete"]))
    if how == "insert":
        return text[:at] + draw(chars) + text[at:]
    if how == "delete" or at == len(text):
        return text[:at] + text[at + 1:]
    return text[:at] + draw(chars) + text[at + 1:]


@st.composite
def _fhir_date_texts(draw: Any) -> str:
    from fhir_core.types import Date, DateTime, Instant

    pattern = draw(st.sampled_from([DateTime.pattern, Instant.pattern, Date.pattern]))
    text = draw(st.from_regex(pattern, fullmatch=True))
    return _near_miss(text, draw) if draw(st.booleans()) else text


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fhir_date_texts())
def test_dates_read_by_the_shortcut_exactly_as_by_the_model_for_generated_texts(text):
    _assert_dates_agree([text])


def test_nested_elements_read_by_the_walks_shortcut_exactly_as_through_read_and_built_each_time(monkeypatch):
    """`_build` hands a nested element that is a dict straight to `elements._element`, without `_read`'s
    checks (its type, the depth limit, resource or not), made once by `_build` instead: every resource of
    every bundle, and elements near the depth limit, written as JSON strings, or not objects, read the
    same (values, types, refusals) as with every nested element read through `_read` and built each time."""
    from fhir_vcf import elements

    concept = {"coding": [{"system": "http://loinc.org", "code": "72514-3", "display": "Pain"}], "text": "Pain"}
    cases = [data for path in BUNDLES for data in _resources(path)]
    cases += [_nested_extension(depth, concept) for depth in range(elements.MAX_DEPTH - 4, elements.MAX_DEPTH + 2)]
    cases += [_nested_extension(depth, {"text": "Pain"})
              for depth in range(elements.MAX_DEPTH - 3, elements.MAX_DEPTH + 2)]
    cases += [{**OBSERVATION, **extra} for extra in (
        {"code": json.dumps(concept)}, {"category": [json.dumps(concept)]}, {"category": [concept, "x"]},
        {"category": [concept, None]}, {"category": [concept, 1]}, {"category": [[concept]]}, {"category": [{}]},
        {"code": {}}, {"subject": {"reference": 5}}, {"subject": "Patient/p"},
        {"subject": json.dumps({"reference": "x"})},
        {"contained": [{"resourceType": "Medication", "id": "m", "code": concept}]},
        {"contained": [json.dumps({"resourceType": "Medication", "id": "m"})]},
        {"component": [{"code": concept, "valueQuantity": {"value": 1, "unit": "mg"}}]},
        {"component": [{"code": json.dumps(concept)}]})]
    quick = [_read_or_refused(data) for data in cases]
    quick_again = [_read_or_refused(data) for data in cases]  # now from the shared elements
    elements._FLAT.clear()

    def through_read(data: Any, table: Any, depth: int) -> Any:
        """A nested element as `_read` read it before the shortcut (its checks), built each time."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise NotValid from None
        if type(data) is not dict or depth > elements.MAX_DEPTH or table.is_resource:
            raise NotValid
        return elements._build(data, table, depth)

    monkeypatch.setattr(elements, "_element", through_read)
    monkeypatch.setattr(elements, "_resource", lambda data, table, rtype: elements._build(data, table, 0))
    slow = [_read_or_refused(data) for data in cases]
    assert quick == slow and quick_again == slow
    assert "refused" in slow and slow.count("refused") < len(slow) - 100

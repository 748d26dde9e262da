"""The loading layer's shortcuts (issue 11) give what the long way gives: the escape check started at
the first backslash, the shared collector pause, elements shared by their JSON, reports without
attachments."""

from __future__ import annotations

import gc
import importlib
import inspect
import json
import pkgutil
from typing import Any

import fhir.resources.R4B as r4b
import pytest
from every_bundle import used_resources
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase

from fhir_vcf import collector, elements, record
from fhir_vcf.elements import NotValid, read_resource
from fhir_vcf.errors import InputError
from fhir_vcf.sources import files


class _Searches:
    """`_SUSPECT_ESCAPE` with each search's start recorded."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.pattern = files._SUSPECT_ESCAPE

    def search(self, raw: bytes, start: int = 0) -> Any:
        self.starts.append(start)
        return self.pattern.search(raw, start)


def test_the_escape_check_starts_at_the_first_backslash_and_still_finds_what_follows(monkeypatch):
    searches = _Searches()
    monkeypatch.setattr(files, "_SUSPECT_ESCAPE", searches)
    plain = b'{"resourceType": "Patient", "id": "p"}'
    assert files.parse_json(plain, source="x") == {"resourceType": "Patient", "id": "p"}
    assert searches.starts == []  # no backslash: nothing to look for
    body = '{"a": "line\\nbreak", "b": "x\\u0000"}'
    with pytest.raises(InputError, match="NUL"):
        files.parse_json(body, source="x")
    with pytest.raises(InputError, match="NUL"):
        files.parse_json(body.encode(), source="x")
    assert searches.starts == [body.index("\\")] * 2
    assert files.parse_json(b'{"a": "\\\\u0000"}', source="x") == {"a": "\\u0000"}  # an escaped backslash


def test_paused_is_one_shared_context_that_nests_and_gives_the_setting_back():
    assert collector.paused() is collector.paused()
    assert gc.isenabled()
    try:
        with collector.paused():
            with collector.paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the outer pause still holds
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.isenabled()


def _observation(rid: str, quantity: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": "final", "code": {"text": "x"},
            "valueQuantity": quantity}


def _built(data: dict[str, Any]) -> Any:
    """`data` read with nothing shared or met before."""
    saved, seen = dict(elements._FLAT), dict(elements._SEEN)
    elements._FLAT.clear()
    elements._SEEN.clear()
    try:
        return repr(read_resource(data))
    except NotValid:
        return "refused"
    finally:
        elements._FLAT.clear()
        elements._FLAT.update(saved)
        elements._SEEN.clear()
        elements._SEEN.update(seen)


@pytest.mark.parametrize("values", [
    [1, 1.0, True, "1"], [0.0, -0.0], [10**30, 1e30], [float("nan"), None], [float("inf"), None]])
def test_elements_written_apart_are_never_read_as_one_another(values):
    """Python calls 1, 1.0 and True equal; the key (orjson's text) does not, and what it would write
    alike (NaN, Infinity and None as null) or cannot write (an integer past 64 bits) is not shared."""
    elements._FLAT.clear()
    for value in values + values[::-1]:
        data = _observation("o", {"value": value, "unit": "mg"})
        try:
            shared = repr(read_resource(data))
        except NotValid:
            shared = "refused"
        assert shared == _built(data), value


def test_key_order_decides_the_shared_element():
    elements._FLAT.clear()
    one = read_resource(_observation("a", {"value": 2, "unit": "mg"})).valueQuantity
    other = read_resource(_observation("b", {"unit": "mg", "value": 2})).valueQuantity
    assert one is not other and list(one.__dict__) == ["value", "unit"] and list(other.__dict__) == ["unit", "value"]
    assert read_resource(_observation("c", {"value": 2, "unit": "mg"})).valueQuantity is one


def test_an_element_holding_a_resource_is_never_shared():
    parameters = {"resourceType": "Parameters", "id": "p",
                  "parameter": [{"name": "x", "resource": {"resourceType": "Patient", "id": "q"}}]}
    data = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
            "contained": [parameters]}
    first, second = read_resource(data), read_resource(json.loads(json.dumps(data)))
    assert first.contained[0].parameter[0] is not second.contained[0].parameter[0]
    assert first.contained[0].parameter[0].resource is not second.contained[0].parameter[0].resource


def _r4b_models() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(r4b.__path__):
        if info.name.startswith(("fhirtypes", "tests")):
            continue
        module = importlib.import_module(f"{r4b.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, FHIRAbstractModel):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def _holds_a_resource_somewhere(model: type) -> bool:
    seen, todo = {model}, [model]
    while todo:
        for info in todo.pop().model_fields.values():
            core, _ = elements._core(info.annotation)
            if not (isinstance(core, type) and issubclass(core, FhirBase)):
                continue
            target = core.get_model_klass()
            if elements._is_resource(target):
                return True
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return False


def test_an_element_type_is_shared_exactly_when_no_resource_can_sit_anywhere_inside_it():
    """`_Table.shared` looks at an element's own fields only: in R4B that decides for every depth."""
    models = [m for m in _r4b_models() if not elements._is_resource(m)]
    assert len(models) > 300
    wrong = [m.__name__ for m in models if elements._table(m).shared == _holds_a_resource_somewhere(m)]
    assert wrong == []


def test_every_element_of_every_r4b_type_reads_none_when_absent_without_a_getattr_hook():
    """An Element has no `__getattr__` (it slowed every attribute read): an absent element reads None
    from its type's class, which holds every element name of every R4B type (none is named like an
    Element attribute), and a name the type lacks is an AttributeError, as on the model."""
    assert "__getattr__" not in vars(elements.Element)
    for model in _r4b_models():
        node = elements._table(model).node.__new__(elements._table(model).node)
        node.__dict__ = {}
        assert all(getattr(node, name) is None for name in model.model_fields), model.__name__
        with pytest.raises(AttributeError):
            node.notAnElementOfAnyType  # noqa: B018


def test_a_report_without_attachments_lists_none():
    report = read_resource({"resourceType": "DiagnosticReport", "id": "r", "status": "final",
                            "code": {"text": "CT"}})
    assert record.attachment_skips(report) == []
    document = read_resource({"resourceType": "DocumentReference", "id": "d", "status": "current",
                              "content": [{"attachment": {"contentType": "application/pdf", "url": "x"}}]})
    assert record.attachment_skips(document) == [record.UNSUPPORTED_ATTACHMENT]
    assert record.attachments(report) == []


def _read_each(cases: list[dict[str, Any]]) -> list[str]:
    out = []
    for data in cases:
        try:
            out.append(repr(read_resource(data)))
        except NotValid:
            out.append("refused")
    return out


def test_a_resource_met_again_reads_exactly_as_when_built_each_time(monkeypatch):
    """A resource met again with the same JSON text (`elements._SEEN`, from the third time on) reads as
    when built: every resource of every bundle under samples/ and tests/data/, numbers written apart
    (1, 1.0, true, "1"), null, NaN, refusals; read three times in turn, against each built every time."""
    values = [1, 1.0, True, "1", 10**30, 1e30, float("nan"), None, "abc"]
    cases = used_resources()
    assert len(cases) > 2000
    cases += [_observation(f"v{i}", {"value": v, "unit": "mg"}) for i, v in enumerate(values)]
    cases += [_observation("same-id", {"value": v, "unit": "mg"}) for v in values + values[::-1]]
    monkeypatch.setattr(elements, "_SEEN_LIMIT", 10**6)  # every resource of the bundles remembered at once
    elements._FLAT.clear()
    elements._SEEN.clear()
    again = [_read_each(cases) for _ in range(3)]
    assert sum(v is not None for v in elements._SEEN.values()) > 1000  # the third reading was from memory
    monkeypatch.setattr(elements, "_resource", lambda data, table, rtype: elements._build(data, table, 0))
    elements._FLAT.clear()
    built = _read_each(cases)
    assert again[0] == built and again[1] == built and again[2] == built
    assert "refused" in built


def test_a_resource_met_again_is_a_new_element_with_the_memory_of_its_copy():
    """Its identity is its own (its reference is worked out per record); what the mappers read from it
    follows from its content, so the copy remembered (the second met) hands its memory on."""
    data = _observation("again", {"value": 2, "unit": "mg"})
    first, second, third = (read_resource(data) for _ in range(3))
    assert first._memo is None and second._memo == {}
    second._memo["derived"] = 1
    assert third is not second and third == second and third._memo is second._memo
    assert third.valueQuantity is first.valueQuantity  # its elements are shared, as any repeated element
    data["status"] = "amended"  # other content: a memory of its own
    assert read_resource(data)._memo == {}


def test_a_resource_changed_after_it_was_read_is_read_as_it_now_is():
    data = _observation("changed", {"value": 2, "unit": "mg"})
    for _ in range(3):
        read_resource(data)
    data["status"] = "amended"
    assert read_resource(data).status == "amended"
    data["valueQuantity"]["value"] = 3
    assert str(read_resource(data).valueQuantity.value) == "3"


def test_a_resource_holding_resources_is_never_given_the_elements_of_another_reading():
    data = {"resourceType": "Observation", "id": "holder", "status": "final", "code": {"text": "x"},
            "contained": [{"resourceType": "Medication", "id": "m"}]}
    readings = [read_resource(data) for _ in range(4)]
    assert len({id(r.contained[0]) for r in readings}) == 4


def test_resources_met_are_remembered_boundedly(monkeypatch):
    monkeypatch.setattr(elements, "_SEEN_LIMIT", 5)
    elements._SEEN.clear()
    for i in range(23):
        read_resource(_observation(f"bounded{i}", {"value": i}))
    assert 0 < len(elements._SEEN) <= 5


def _evaluations(path, as_of_dates, policy):
    from fhir_vcf.evaluation import evaluate_record
    from fhir_vcf.record import load_document

    records = load_document(json.loads(path.read_text(encoding="utf-8")), source=path.name)
    return records, [evaluate_record(r, as_of=d, policy=policy) for r in records for d in as_of_dates]


def test_a_resource_met_again_reads_from_its_memory_as_read_fresh():
    """A resource met again with the same content is given the memory of what the mappers read from it
    before (`elements._SEEN`); every bundle's evaluations, read with memories filled as of another day,
    are those of a fresh read (nothing met before)."""
    from every_bundle import AS_OF_DATES, BUNDLES

    from fhir_vcf.errors import FhirVcfError
    from fhir_vcf.rules.policy import load_policies

    policy = load_policies()["cms-lcd-pva"]
    shared = 0
    for path in BUNDLES:
        for order in (AS_OF_DATES, AS_OF_DATES[::-1]):
            elements._FLAT.clear()
            elements._SEEN.clear()
            try:
                _, fresh = _evaluations(path, order[:1], policy)
            except (FhirVcfError, ValueError):
                break
            for _ in range(2):  # met again twice: the second remembers it, the third takes its memory
                _evaluations(path, order[1:], policy)
            records, again = _evaluations(path, order, policy)
            assert again[::2] == fresh, path
            seen = {id(entry[2]) for entry in elements._SEEN.values() if entry is not None}
            shared += sum(id(r._memo) in seen for rec in records for rs in rec.resources.values() for r in rs)
    assert shared > 1000

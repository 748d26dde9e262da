"""`fhir_vcf.frozen`: the cheap `__init__` of each fact class and of the rules' results against the plain
`dataclass(frozen=True)` of the same fields (the route it replaces): the same signature and defaults, the
same instance, still frozen."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, date, datetime

import pytest

from fhir_vcf import clinical_time, facts
from fhir_vcf.frozen import _NO_VALUE, frozen
from fhir_vcf.mappers import exclusions, fractures
from fhir_vcf.rules import judgement

# The fact classes, the frozen values the mappers make per mention or per event, and the rules' results.
CLASSES = [cls for module in (facts, clinical_time, fractures, exclusions, judgement) for cls in vars(module).values()
           if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
           and cls.__dataclass_params__.frozen]


def _plain(cls: type) -> type:
    """The plain frozen dataclass of `cls`'s fields, its `__init__` the one `dataclasses` writes."""
    spec = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory,
                                               compare=f.compare)) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__, spec, frozen=True)


def _value(f: dataclasses.Field) -> object:
    """A value for a field of no default, by its annotation's words (the instances are compared, not used)."""
    kind = str(f.type)
    if "datetime" in kind:
        return datetime(2025, 6, 2, 10, tzinfo=UTC)
    if "date" in kind:
        return date(2025, 6, 2)
    if "bool" in kind:
        return True
    return f"{f.name}-value"


def test_every_fact_class_is_made_by_frozen():
    assert len(CLASSES) >= 10
    for cls in CLASSES:
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert cls.__init__.__globals__.get("_NO_VALUE") is _NO_VALUE, cls  # fast_init's, not the dataclass's


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_cheap_init_is_the_dataclass_init(cls: type):
    plain = _plain(cls)
    ours, theirs = inspect.signature(cls.__init__), inspect.signature(plain.__init__)
    assert [(p.name, p.kind) for p in ours.parameters.values()][1:] == \
        [(p.name, p.kind) for p in theirs.parameters.values()][1:]
    required = {f.name: _value(f) for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    made, expected = cls(**required), plain(**required)
    assert made.__dict__ == expected.__dict__  # the defaults, and each factory's value
    every = {f.name: _value(f) for f in dataclasses.fields(cls)}
    assert cls(**every).__dict__ == plain(**every).__dict__
    assert cls(*every.values()).__dict__ == plain(*every.values()).__dict__  # positional, in field order
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, name, "changed")


def test_a_factory_is_called_per_instance_and_equality_and_hashing_are_the_dataclass_own():
    a, b = (facts.FractureFacts(patient="p", as_of=date(2025, 6, 2)) for _ in range(2))
    assert a.onset is not b.onset
    ev = facts.Evidence("Condition/c", "code", facts.Method.CODE, "found")
    assert ev == facts.Evidence("Condition/c", "code", facts.Method.CODE, "found")
    assert hash(ev) == hash(facts.Evidence("Condition/c", "code", facts.Method.CODE, "found"))
    assert clinical_time.DayRange(date(2025, 1, 1), date(2025, 1, 1), "x") == \
        clinical_time.DayRange(date(2025, 1, 1), date(2025, 1, 1), "y")  # `written` is not compared
    assert dataclasses.replace(ev, found="other").found == "other"


def test_fields_it_cannot_make_are_refused():
    class Hidden:
        _secret: int = 1

    Hidden.__annotations__ = {"_secret": "int"}
    with pytest.raises(TypeError):
        frozen(Hidden)


def test_a_class_with_post_init_is_refused():
    """The dataclass's own __init__ calls __post_init__; the cheap one would silently skip it."""

    class Checked:
        value: int

        def __post_init__(self) -> None:
            raise ValueError

    with pytest.raises(TypeError, match="__post_init__"):
        frozen(Checked)

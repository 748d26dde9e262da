"""Read-only FHIR resources over parsed JSON, checked against the R4B definitions without building models.

Building a fhir.resources (pydantic) model of every resource a record holds was most of the cost of
an evaluation (an Encounter of 371 bytes: 240 µs). The mappers only read: so `read_resource` walks
the parsed JSON once, with the element table of the R4B model of each type (names, types,
cardinality, required elements, choice groups; compiled once per class from `model_fields`), checks
every element the same way and converts each primitive with the R4B model's own type (the
pydantic `TypeAdapter` of its annotation), so a mapper reads exactly what the model would give:
`date` / `datetime` / the partial-date `str` for dates, `Decimal` for decimals, `None` when
absent, nested elements and lists, `class_fhir` for `class`, `get_resource_type()`.

Any element of any R4 type is readable, present or not (an absent one is None), so a mapper that
starts reading another element needs no change here. Where this walk finds a problem, it does not
word it: `NotValid` sends the caller back to the full model, whose error names the element.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.types import Date, DateTime, FhirBase, Instant
from pydantic import TypeAdapter, ValidationError
from pydantic_core import TzInfo

# Deeper than this no real resource goes; the full model reports such input ("nested too deeply").
MAX_DEPTH = 48


class NotValid(Exception):
    """The resource breaks an R4B rule (the full model says which, in words)."""


class Element:
    """A FHIR element or resource read from JSON; attributes as the R4B models name them.

    Present elements live in the instance `__dict__` (plain attribute reads); any other element the
    type defines reads as None from the class, like an unset model field (each type's class holds
    None under every element name: `_table`); a name the type lacks is Python's own AttributeError.
    No `__getattr__`: a class with one has every attribute read go through its hook (the interpreter
    cannot specialise them), and every miss (`getattr(x, name, None)`) build an error to drop.
    `_memo` holds what the mappers derive from a resource (its clinical date, its codings), computed
    once per resource (`fhir_vcf.mappers.common`); None until first asked.
    """

    __slots__ = ("__dict__", "__weakref__", "_memo")
    model_fields: ClassVar[dict[str, Any]] = {}
    __resource_type__: ClassVar[str] = ""
    _model: ClassVar[type]

    @classmethod
    def get_resource_type(cls) -> str:
        return cls.__resource_type__

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    __hash__ = object.__hash__

    def __reduce__(self) -> tuple[Any, ...]:  # records cross process boundaries in population runs
        return _rebuild, (type(self)._model, dict(self.__dict__))


class Elements(list):
    """A list of complex elements (`code.coding`, `category`): a list, with the same `_memo` as an Element.

    No `__init__` of its own, so `Elements(items)` is list's own construction in C (a Python-level
    `__init__` nearly doubled the cost of each, ~100 a patient): `_memo` reads None from the class
    until the mappers set it, which puts it in the instance `__dict__`.
    """

    __slots__ = ("__dict__",)
    _memo: Any = None


def _rebuild(model: type, state: dict[str, Any]) -> Element:
    node = _table(model).node.__new__(_table(model).node)
    node.__dict__.update(state)
    node._memo = None
    return node


# What a field holds.
_PRIMITIVE, _COMPLEX, _RESOURCE = 0, 1, 2


class _Primitive:
    """A primitive type's conversion (the model's own `TypeAdapter`), remembering short strings.

    Codes, systems, units and dates repeat across every resource of a feed; their conversion is a
    pure function of the text, and its results (str, date, datetime, Decimal, ...) are immutable,
    so each distinct short text is converted once while it is remembered. Bounded (the texts come
    from the input): at `LIMIT` texts the memory is emptied and refills with what recurs (~2 MiB
    at most per primitive type, a few dozen types).
    """

    LIMIT = 10_000
    __slots__ = ("seen", "validate")

    def __init__(self, validate: Callable[[Any], Any]) -> None:
        self.validate = validate
        self.seen: dict[str, Any] = {}

    def __call__(self, value: Any) -> Any:
        if type(value) is not str or len(value) > 64:
            return self.validate(value)
        found = self.seen.get(value, self)
        if found is self:
            found = self.validate(value)
            if len(self.seen) >= self.LIMIT:
                self.seen.clear()
            self.seen[value] = found
        return found


# A full date, or a full date-time with seconds and a zone: the shapes of nearly every FHIR date,
# dateTime and instant of a feed, read here without pydantic (~1.9 µs each through the model's
# adapter, ~31 distinct ones a patient). The R4 patterns of these shapes (fhir_core's, without the
# leap second), in ASCII digits only; `date` / `datetime.fromisoformat` refuse the rest (year 0000,
# days a month lacks).
_FULL_DATE = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_DATE_ONLY = re.compile(_FULL_DATE)
_DATE_TIME = re.compile(
    _FULL_DATE + r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
# Offset seconds of every zone `_DATE_TIME` admits (-14:00 .. +14:00, and Z).
_ZONES: dict[str, int] = {"Z": 0, "+14:00": 14 * 3600, "-14:00": -14 * 3600} | {
    f"{sign}{hours:02d}:{minutes:02d}": (hours * 3600 + minutes * 60) * (-1 if sign == "-" else 1)
    for sign in "+-" for hours in range(14) for minutes in range(60)
}


class _Dates:
    """The conversion of an R4B `date`, `dateTime` or `instant`: the model's own, with a shortcut.

    A text of the shapes above is the value the model's adapter gives: a `date`, or a `datetime`
    whose fraction is cut (not rounded) to microseconds, with pydantic's own `TzInfo` of the offset
    (a new one each time, as pydantic's: shared for UTC only). Everything else (partial dates, leap
    seconds, other shapes or types) and anything `fromisoformat` refuses (2025-02-30) goes to the
    adapter, so refusals and their errors are the model's. `tests/test_elements.py` holds the two
    to each other.
    """

    __slots__ = ("dates", "times", "validate")

    def __init__(self, validate: Callable[[Any], Any], dates: bool, times: bool) -> None:
        self.validate = validate
        self.dates = dates  # a full date alone reads as a `date` (R4B date, dateTime)
        self.times = times  # a full date-time reads as a `datetime` (R4B dateTime, instant)

    def __call__(self, value: Any) -> Any:
        if type(value) is str:
            try:
                if self.times:
                    found = _DATE_TIME.fullmatch(value)
                    if found is not None:
                        read = datetime.fromisoformat(value)  # its own zone: a `datetime.timezone`
                        return datetime.combine(read, read.time(), TzInfo(_ZONES[found.group(1)]))
                if self.dates and _DATE_ONLY.fullmatch(value) is not None:
                    return date.fromisoformat(value)
            except ValueError:  # not a real day, or year 0000: the adapter says so, in its words
                pass
        return self.validate(value)


def _dates(annotation: Any, validate: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`validate`, with the `_Dates` shortcut when the annotation is a single R4B date, dateTime or instant."""
    core, many = _core(annotation)
    kind = type(getattr(core, "__metadata__", (None,))[0])
    if many or kind not in (Date, DateTime, Instant):
        return validate
    return _Dates(validate, dates=kind is not Instant, times=kind is not Date)


@dataclass(slots=True)
class _Field:
    name: str  # the attribute ("class_fhir")
    kind: int
    many: bool
    convert: _Primitive | None  # primitives: the model's own type
    model: type | None  # complex: the element's model class
    choice: str | None  # the choice group ("value" for valueQuantity)
    table: _Table | None = None  # complex: the element table of `model`, once first needed


@dataclass(slots=True)
class _Table:
    node: type[Element]
    fields: dict[str, _Field]  # by JSON key (alias)
    required: tuple[tuple[str, int, str | None], ...]  # (attribute, kind, attribute of the `_x` extension sibling)
    required_choices: tuple[str, ...]
    choices: dict[str, tuple[str, ...]]
    is_resource: bool
    # Its elements may be shared (`_FLAT`): no field holds a resource. In R4B only the elements that
    # hold one directly (Bundle.entry, .response, Parameters.parameter) or a resource can hold one at
    # any depth: `tests/test_loading_fast_paths.py` walks every R4B type to hold this to it.
    shared: bool


_TABLES: dict[type, _Table] = {}
_PRIMITIVES: dict[str, _Primitive] = {}


def _core(annotation: Any) -> tuple[Any, bool]:
    """(the inner type, is a list) of an Optional / List annotation."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
            annotation = args[0]
        elif origin in (list, typing.List) and len(args) == 1:  # noqa: UP006
            annotation, many = args[0], True
        else:
            return annotation, many


def _primitive(annotation: Any) -> _Primitive:
    key = repr(annotation)
    found = _PRIMITIVES.get(key)
    if found is None:
        found = _PRIMITIVES[key] = _Primitive(_dates(annotation, TypeAdapter(annotation).validator.validate_python))
    return found


def _table(model: type) -> _Table:
    found = _TABLES.get(model)
    if found is not None:
        return found
    fields: dict[str, _Field] = {}
    for name, info in model.model_fields.items():
        core, many = _core(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        choice = extra.get("one_of_many")
        if isinstance(core, type) and issubclass(core, FhirBase):
            target = core.get_model_klass()
            kind = _RESOURCE if target.__name__ in {"Resource", "DomainResource"} else _COMPLEX
            fields[info.alias or name] = _Field(name, kind, many, None, target, choice)
        else:
            fields[info.alias or name] = _Field(name, _PRIMITIVE, many, _primitive(info.annotation), None, choice)
    probe = model.model_construct()
    by_name = {f.name: key for key, f in fields.items()}
    required = [(key, f.kind, None) for key, f in fields.items()
                if f.kind != _PRIMITIVE and model.model_fields[f.name].is_required()]
    for name, ext in probe.get_required_fields():
        required.append((by_name[name], _PRIMITIVE, by_name.get(ext) if ext else None))
    required = [(fields[key].name, kind, fields[ext].name if ext else None) for key, kind, ext in required]
    choices = {prefix: tuple(names) for prefix, names in probe.get_one_of_many_fields().items()}
    required_choices = tuple(
        prefix for prefix, names in choices.items()
        if (model.model_fields[names[0]].json_schema_extra or {}).get("one_of_many_required") is True
    )
    absent = {name: None for name in model.model_fields if not hasattr(Element, name)}
    node = type(model.__name__, (Element,), {
        **absent,  # an absent element is a class attribute: reading it costs a dict miss, not a call
        "__slots__": (),
        "model_fields": model.model_fields,
        "__resource_type__": getattr(model, "__resource_type__", model.__name__),
        "_model": model,
        "__module__": __name__,
    })
    is_resource = hasattr(model, "get_resource_type") and _is_resource(model)
    holds_resource = any(f.kind == _RESOURCE or (f.model is not None and _is_resource(f.model))
                         for f in fields.values())
    found = _TABLES[model] = _Table(node, fields, tuple(required), required_choices, choices, is_resource,
                                    not is_resource and not holds_resource)
    return found


def _is_resource(model: type) -> bool:
    return any(base.__name__ == "Resource" and base.__module__.endswith(".resource") for base in model.__mro__)


_MODELS: dict[str, type | None] = {}


def model_of(rtype: Any) -> type | None:
    """The R4B model class of a resource type name, or None when R4B has no such type."""
    if not isinstance(rtype, str) or not rtype:
        return None
    if rtype in _MODELS:
        return _MODELS[rtype]
    try:
        found = get_fhir_model_class(rtype)
    except (ValueError, KeyError, TypeError):
        found = None
    if len(_MODELS) < 1000:  # bounded: the names come from the input
        _MODELS[rtype] = found
    return found


_RESOURCE_TABLES: dict[str, _Table] = {}  # by resource type name (R4B's types only: bounded)


def read_resource(data: dict[str, Any]) -> Element:
    """The resource as an Element, or NotValid when the R4B model would refuse it."""
    rtype = data.get("resourceType")
    table = _RESOURCE_TABLES.get(rtype) if type(rtype) is str else None
    if table is None:
        model = model_of(rtype)
        if model is None:
            raise NotValid
        table = _RESOURCE_TABLES[rtype] = _table(model)  # type: ignore[index]
    if type(data) is dict:  # parsed JSON: none of `_read`'s checks applies to a resource at depth 0
        return _resource(data, table, rtype)  # type: ignore[arg-type]
    return _read(data, table, 0)


# Resources repeat too: a CDS Hooks client calls order-select again for the same patient, with the same
# prefetch, each time the order is edited. A resource is still never shared (its identity is its
# reference), but what its walk found (its elements, all of them shared or content-determined) is handed
# to a new Element when the same resource comes again, written exactly as before: the same JSON text, as
# orjson writes it (see `_FLAT` for why that text decides the content). So is the memory of what the
# mappers read from it (`_memo`: its clinical date and day, its free and report texts), which follows
# from its content alone, as on a shared element; the copy remembered hands it on. The text is taken
# only from the second time a resource is met by its Type/id and the patient it names (so a feed of new
# resources pays a dict look-up each, not a serialisation: generated feeds, the benchmark's grown
# histories among them, give every patient the same ids), and taken when it is stored (the caller's dict
# may change after the read). Built each time: a resource whose text holds `null` anywhere (a JSON null,
# or the word in a string: either way it is only not remembered), NaN or Infinity, what orjson cannot
# write, or an element that may hold a resource (`contained`, whose resources are never shared). Bounded
# like `_FLAT`.
_SEEN: dict[tuple[str, str, Any], tuple[bytes, dict[str, Any], dict[Any, Any]] | None] = {}
_SEEN_LIMIT = 2_000


def _resource(data: dict[str, Any], table: _Table, rtype: str) -> Element:
    """`_build(data, table, 0)`, or a new Element with the elements read from the same resource before."""
    rid = data.get("id")
    if type(rid) is not str:
        return _build(data, table, 0)
    pointer = data.get("subject") or data.get("patient")
    key = (rtype, rid, pointer.get("reference") if type(pointer) is dict else None)
    seen = _SEEN.get(key, _SEEN)
    if seen is _SEEN:  # met for the first time: remembered as met only
        node = _build(data, table, 0)
        _remember(key, None)
        return node
    try:
        text = orjson.dumps(data, option=KEY_OPTIONS)
    except orjson.JSONEncodeError:
        return _build(data, table, 0)
    if seen is not None and seen[0] == text:
        node = table.node.__new__(table.node)
        node.__dict__ = seen[1].copy()
        node._memo = seen[2]
        return node
    node = _build(data, table, 0)
    if text.find(b"null") < 0 and _shareable(data, table):
        node._memo = {}
        _remember(key, (text, node.__dict__.copy(), node._memo))
    return node


def _remember(key: tuple[str, str, Any], value: tuple[bytes, dict[str, Any], dict[Any, Any]] | None) -> None:
    if len(_SEEN) >= _SEEN_LIMIT:
        _SEEN.clear()
    _SEEN[key] = value


def _shareable(data: dict[str, Any], table: _Table) -> bool:
    """No element of the resource (read already: the tables of its elements are known) may hold a resource."""
    fields = table.fields
    for key in data:
        f = fields.get(key)
        if f is not None and (f.kind == _RESOURCE or (f.table is not None and not f.table.shared)):
            return False
    return True


# Elements repeat (codings, references, periods, concepts, quantities: of the 337 complex elements
# the benchmark's order-select request reads, 104 are distinct; across patients the codes of a feed
# recur), so each is read once and shared while remembered, keyed by its element table, its depth
# (where the depth limit refuses depends on it) and its content as orjson writes it. For parsed JSON
# (dicts, lists, strings, numbers, booleans, null: what every source hands the loader) that text
# determines the content: key order is kept, and 1, 1.0 and true are written apart. What it cannot
# tell apart or write (NaN and Infinity, written null like None; a subclass; an integer past 64
# bits) is built each time (`_element`). An Element is never changed once read and what the mappers
# remember on it (`_memo`) follows from its content alone, so one read serves every copy. Resources
# are never shared (their identity is their reference), nor an element that may hold one
# (`_Table.shared`). Bounded like `_Primitive`: at `_FLAT_LIMIT` the memory is emptied and refills.
_FLAT: dict[tuple[int, int, bytes], Element] = {}
_FLAT_LIMIT = 20_000
# orjson's options for a text that decides content: a subclass, a datetime or a dataclass is refused, not written
# like the plain JSON value (the loader's routine screen keys its memory the same way).
KEY_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _read(data: Any, table: _Table, depth: int) -> Element:
    if type(data) is not dict:
        if not isinstance(data, str):
            raise NotValid
        try:  # the models accept a complex element written as a JSON string
            data = json.loads(data)
        except ValueError:
            raise NotValid from None
        if type(data) is not dict:
            raise NotValid
    if depth > MAX_DEPTH:
        raise NotValid
    if depth and not table.is_resource:
        return _element(data, table, depth)
    return _build(data, table, depth)


def _element(data: dict[str, Any], table: _Table, depth: int) -> Element:
    """What `_read` gives a complex element that is a dict, not a resource, at a depth from 1 to
    `MAX_DEPTH`, without `_read`'s checks (`_build` calls it where it has made them): shared (`_FLAT`)
    when its table may be shared and orjson writes it without null (see `_FLAT`), else built. The key
    is made here, not in a function of its own: ~300 elements a CDS call take this path."""
    if not table.shared:
        return _build(data, table, depth)
    try:
        text = orjson.dumps(data, option=KEY_OPTIONS)
    except orjson.JSONEncodeError:
        return _build(data, table, depth)
    key = (id(table), depth, text)
    found = _FLAT.get(key)
    if found is None:
        found = _build(data, table, depth)
        remember_by_text(_FLAT, key, text, found, _FLAT_LIMIT)
    return found


def remember_by_text(memory: dict[Any, Any], key: Any, text: bytes, value: Any, limit: int) -> None:
    """Keep `value` under `key` in a memory keyed by `text` (orjson's, with `KEY_OPTIONS`), unless the
    text holds `null`: None, NaN and Infinity are all written so (and a string holding the word is
    only not remembered), so a text found in the memory holds none and only a new one is searched.
    At `limit` the memory is emptied and refills with what recurs. `find`, not `in`: `in` on bytes
    first tries its operand as an integer, formatting (then dropping) a TypeError each time."""
    if text.find(b"null") < 0:
        if len(memory) >= limit:
            memory.clear()
        memory[key] = value


def _build(data: dict[str, Any], table: _Table, depth: int) -> Element:
    out: dict[str, Any] = {}
    chosen: set[str] | None = None
    fields = table.fields
    for key, value in data.items():
        f = fields.get(key)
        if f is None:
            if key == "resourceType" and table.is_resource:
                if value != table.node.__resource_type__:
                    raise NotValid
                continue
            raise NotValid
        if value is None:
            continue
        if f.kind == _PRIMITIVE:
            convert = f.convert
            try:
                if type(value) is str and len(value) <= 64:  # `_Primitive.__call__`, inlined: the hot path
                    found = convert.seen.get(value, convert)  # type: ignore[union-attr]
                    value = convert(value) if found is convert else found  # type: ignore[misc]
                else:
                    value = convert.validate(value)  # type: ignore[union-attr]
            except ValidationError:
                raise NotValid from None
        elif f.many:
            if type(value) is not list:
                raise NotValid
            if f.kind == _COMPLEX:  # `_item` without its per-item steps: `_read` refuses a None item too
                table_of = f.table
                if table_of is None:
                    table_of = f.table = _table(f.model)  # type: ignore[arg-type]
                if depth < MAX_DEPTH and not table_of.is_resource:  # `_read`'s checks, made once for the list
                    value = Elements([_element(item, table_of, depth + 1) if type(item) is dict
                                      else _read(item, table_of, depth + 1) for item in value])
                else:
                    value = Elements([_read(item, table_of, depth + 1) for item in value])
            else:
                value = Elements([_item(item, f, depth) for item in value])
        elif f.table is not None and type(value) is dict:  # a complex element whose table is known
            if depth < MAX_DEPTH and not f.table.is_resource:
                value = _element(value, f.table, depth + 1)
            else:
                value = _read(value, f.table, depth + 1)
        else:
            value = _item(value, f, depth)
        if f.choice is not None:
            if chosen is None:
                chosen = set()
            elif f.choice in chosen:
                raise NotValid
            chosen.add(f.choice)
        out[f.name] = value
    for name, kind, ext in table.required:
        if out.get(name) is None:
            sibling = out.get(ext) if ext else None
            if kind != _PRIMITIVE or not getattr(sibling, "extension", None):
                raise NotValid
    for prefix in table.required_choices:
        if chosen is None or prefix not in chosen:
            raise NotValid
    node = table.node.__new__(table.node)
    node.__dict__ = out
    node._memo = None
    return node


def _item(value: Any, f: _Field, depth: int) -> Element:
    if value is None:
        raise NotValid
    if f.kind == _RESOURCE:
        model = model_of(value.get("resourceType") if type(value) is dict else None)
        if model is None:
            raise NotValid
        return _read(value, _table(model), depth + 1)
    table = f.table
    if table is None:
        table = f.table = _table(f.model)  # type: ignore[arg-type]
    return _read(value, table, depth + 1)

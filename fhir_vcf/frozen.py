"""`frozen`: a frozen dataclass whose `__init__` is cheap.

The facts the mappers hand the rules (`Evidence`, `Fact`, `DayRange`, ...) are immutable values:
equal and hashed by their fields, never changed once made. `dataclass(frozen=True)` keeps them so,
but its `__init__` sets each field through `object.__setattr__` (its own `__setattr__` refuses),
about 1,000 instructions a field: a four-field `Evidence` cost ~7,900 instructions to make, and a
mapped record makes about 150 such objects. The `__init__` made here writes the same fields, with
the same signature and defaults, straight into the instance's `__dict__` (~3,900), and everything
else is the dataclass's own: assignment still raises `FrozenInstanceError`, equality, hashing,
`repr`, `replace` and `asdict` are unchanged (tests/test_frozen.py holds each class to a plain frozen
dataclass of the same fields).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_NO_VALUE = object()  # the default of a field made by a factory: the factory is called per instance


def frozen(cls: type[T]) -> type[T]:
    """`dataclass(frozen=True)` of `cls`, its `__init__` replaced by `fast_init`'s."""
    made = dataclasses.dataclass(frozen=True)(cls)
    made.__init__ = fast_init(made)  # type: ignore[misc]
    return made


def fast_init(cls: type) -> Any:
    """An `__init__` with the signature of the dataclass's own, writing the fields into `__dict__`.
    Made from source, as `dataclasses` makes its own: one statement a field, no call."""
    if hasattr(cls, "__post_init__"):  # the dataclass's own __init__ would call it; this one does not
        raise TypeError(f"{cls.__name__}: __post_init__ is not supported")
    names: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    params, body = [], []
    for f in dataclasses.fields(cls):
        if not f.init or f.kw_only or f.name.startswith("_"):
            raise TypeError(f"{cls.__name__}.{f.name}: only plain positional fields are supported")
        if f.default is not dataclasses.MISSING:
            names[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            names[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_NO_VALUE")
            body.append(f"    if {f.name} is _NO_VALUE: {f.name} = _factory_{f.name}()")
        else:
            params.append(f.name)
        body.append(f"    _d[{f.name!r}] = {f.name}")
    source = f"def __init__(_self, {', '.join(params)}):\n    _d = _self.__dict__\n" + "\n".join(body) + "\n"
    exec(source, names)  # the source is made above from the class's own field names
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init

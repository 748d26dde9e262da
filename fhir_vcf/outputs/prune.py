"""Dropping empty values from what is answered: CDS Hooks (cards) and FHIR (the CarePlan) forbid
null and empty values (`None`, "", [], {}) at every depth. One rule for both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def prune_empty(value: Any) -> Any:
    """Drop null and empty values (`None`, "", [], {}) at every depth: CDS Hooks forbids them.

    Cards are plain dicts, lists and JSON scalars, so those are told by their exact type first (an
    `isinstance(..., Mapping)` is an ABC check, and `== ""` / `== []` / `== {}` three comparisons,
    for each of the ~100 values of a card), and a scalar member is kept or dropped in place, without
    a call of its own. A plain dict or list member comes back as a plain dict or list, so its
    emptiness is its truth; anything else takes `_prune_any`, the general rule, and `_dropped`."""
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            item_kind = type(item)
            if item_kind is str:
                if item:
                    out[key] = item
            elif item_kind is dict or item_kind is list:
                kept = prune_empty(item)
                if kept:
                    out[key] = kept
            elif item_kind in _SCALARS:
                out[key] = item
            elif item is not None:
                kept = prune_empty(item)
                if not _dropped(kept):
                    out[key] = kept
        return out
    if kind is list:
        items = []
        for item in value:
            item_kind = type(item)
            if item_kind is dict or item_kind is list:
                kept = prune_empty(item)
                if kept:
                    items.append(kept)
            elif item_kind is str:
                if item:
                    items.append(item)
            elif item_kind in _SCALARS:
                items.append(item)
            elif item is not None:
                kept = prune_empty(item)
                if not _dropped(kept):
                    items.append(kept)
        return items
    if kind in _PLAIN:
        return value
    return _prune_any(value)


def _dropped(kept: Any) -> bool:
    """Whether a pruned value of any type is an empty one: None, or an empty str, list or dict (of
    their exact types by their truth, of any other type by comparison)."""
    return kept is None or (type(kept) in _EMPTIABLE and not kept) or (type(kept) not in _PLAIN and _is_empty(kept))


# Exact types whose empty values are pruned, and the exact types whose emptiness that test decides
# (`0`, `False`, `0.0` are values, not empties; `str` subclasses and other objects take `_is_empty`).
_EMPTIABLE = (str, list, dict)
_PLAIN = frozenset({str, list, dict, int, float, bool, type(None)})
_SCALARS = frozenset({int, float, bool})  # never empty


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _prune_any(value: Any) -> Any:
    """`prune_empty` of a value that is not a plain dict, list or JSON scalar (a Mapping, a list
    subclass, anything else): the rule as first written."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            kept = prune_empty(item)
            if _is_empty(kept):
                continue
            out[key] = kept
        return out
    if isinstance(value, list):
        items = [prune_empty(v) for v in value]
        return [v for v in items if not _is_empty(v)]
    return value

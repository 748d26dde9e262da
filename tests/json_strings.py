"""Test support: every string held in a parsed JSON value (to try a text reader on all the words of
the samples and test bundles)."""

from __future__ import annotations

from typing import Any


def strings_in(value: Any) -> list[str]:
    """The strings of `value`, depth first, in document order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []

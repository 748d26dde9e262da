"""Test support: every string held in a parsed JSON value (to try a text reader on all the words of
the samples and test bundles)."""

from __future__ import annotations

import json
from typing import Any

from every_bundle import BUNDLES


def strings_in(value: Any) -> list[str]:
    """The strings of `value`, depth first, in document order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def bundle_strings() -> list[str]:
    """Every distinct string of every bundle under samples/ and tests/data/ (a file that is not JSON
    is passed over), sorted: the texts a reader's fast path is held to its plain route on."""
    found: set[str] = set()
    for path in BUNDLES:
        try:
            found.update(strings_in(json.loads(path.read_text(encoding="utf-8"))))
        except ValueError:
            continue
    return sorted(found)

"""Vertebral levels: labels, their head-to-foot order, and the region each belongs to.

Labels are the contract's short forms (`T12`, `L1`). Cervical and sacral levels are recognised
too, so that a level outside the policy's range is reported and fails the level rule instead of
vanishing (input profile, "level labels").
"""

from __future__ import annotations

from collections.abc import Iterable

CERVICAL = tuple(f"C{n}" for n in range(1, 8))
THORACIC = tuple(f"T{n}" for n in range(1, 13))
LUMBAR = tuple(f"L{n}" for n in range(1, 6))
SACRAL = tuple(f"S{n}" for n in range(1, 6))
ALL_LEVELS: tuple[str, ...] = CERVICAL + THORACIC + LUMBAR + SACRAL
_POSITION = {label: i for i, label in enumerate(ALL_LEVELS)}

# "The sacrum" without a segment is reported as S1: it is outside every policy's range either way.
SACRUM = "S1"


def is_level(label: str) -> bool:
    return label in _POSITION


def position(label: str) -> int:
    """Head-to-foot index of a level; raises KeyError for a label that is not a level."""
    return _POSITION[label]


def sort_levels(labels: Iterable[str]) -> list[str]:
    """Unique levels, head to foot (keyed by the table's own look-up: no Python call per level)."""
    return sorted(set(labels), key=_POSITION.__getitem__)


def level_range(first: str, last: str) -> list[str]:
    """Every level from `first` to `last` inclusive, in either order ("T11-L1" → T11, T12, L1)."""
    a, b = sorted((position(first), position(last)))
    return list(ALL_LEVELS[a : b + 1])


def in_range(label: str, first: str, last: str) -> bool:
    return position(first) <= position(label) <= position(last)


def region(label: str) -> str:
    """cervical | thoracic | lumbar | sacral: CPT codes are chosen by region."""
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[label[0]]

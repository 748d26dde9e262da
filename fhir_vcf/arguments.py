"""Argument types shared by the command-line transports, so every command refuses a bad number alike.

argparse turns an ArgumentTypeError into "fhir-vcf serve: error: argument --port: invalid port 'x':
expected 1-65535" and exit 2: a message the user can act on, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(what: str, low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """An argparse type accepting integers from `low` to `high` (no upper bound when None)."""
    expected = f"{low}-{high}" if high is not None else f"{low} or more"

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"invalid {what} {value!r}: expected {expected}")
        return number

    return parse


def share(value: str) -> float:
    """An argparse type accepting a proportion from 0 to 1."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid share {value!r}: expected a number from 0 to 1")
    return number

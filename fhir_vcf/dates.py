"""The as-of date: every rule that counts days counts to it (input profile, "The evaluation date")."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime

_CALENDAR_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_as_of(value: object) -> date:
    """A calendar date written exactly YYYY-MM-DD, or ValueError.

    Only the extended form: `date.fromisoformat` alone would also take "20250630" or an ISO week
    date, which no interface of the service promises.
    """
    if not isinstance(value, str) or not _CALENDAR_DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
    return date.fromisoformat(value)


def today_utc() -> date:
    return datetime.now(UTC).date()


def as_of_argument(value: str) -> date:
    """argparse type for every `--as-of`: a calendar date, so that a replayed bundle always gives one answer."""
    try:
        return parse_as_of(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {value!r}: expected YYYY-MM-DD, e.g. 2025-06-30") from None

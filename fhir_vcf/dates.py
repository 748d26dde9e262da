"""The as-of date: every rule that counts days counts to it (input profile, "The evaluation date")."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime

_CALENDAR_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# The as-of dates a decision can hold on. The rules count days back from it over windows of weeks to
# years (symptom episode, conservative care, imaging age), and Python dates end at years 1 and 9999:
# an as-of date near either end made that arithmetic overflow (a 500). No electronic record predates
# 1900, and a year's margin below 9999 covers every window.
EARLIEST_AS_OF = date(1900, 1, 1)
LATEST_AS_OF = date(9998, 12, 31)


def parse_as_of(value: object) -> date:
    """A calendar date written exactly YYYY-MM-DD, or ValueError.

    Only the extended form: `date.fromisoformat` alone would also take "20250630" or an ISO week
    date, which no interface of the service promises.
    """
    if not isinstance(value, str) or not _CALENDAR_DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
    return check_as_of(date.fromisoformat(value))


def check_as_of(value: date) -> date:
    """The date itself when a decision can hold on it (EARLIEST_AS_OF to LATEST_AS_OF), else ValueError."""
    if not EARLIEST_AS_OF <= value <= LATEST_AS_OF:
        raise ValueError(f"{value.isoformat()} is outside the dates a decision can hold on "
                         f"({EARLIEST_AS_OF.isoformat()} to {LATEST_AS_OF.isoformat()})")
    return value


def today_utc() -> date:
    return datetime.now(UTC).date()


def as_of_argument(value: str) -> date:
    """argparse type for every `--as-of`: a calendar date, so that a replayed bundle always gives one answer."""
    try:
        return parse_as_of(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date {value!r}: expected YYYY-MM-DD between {EARLIEST_AS_OF} and {LATEST_AS_OF}, "
            "e.g. 2025-06-30") from None

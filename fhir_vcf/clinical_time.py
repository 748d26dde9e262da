"""Clinical time: FHIR dates, dateTimes and instants as the spans of time they name, and the as-of date.

One module owns time (issue 9; input profile, "Dates and times" and "The evaluation date"), so that
every mapper reads a timestamp the same way:

- A value is an interval, `When`: the earliest and latest instants it can mean (UTC), and the first and
  last calendar days it names *as written* (its own local date). `2025-05-19T23:30:00-05:00` is one
  instant (04:30 UTC on 20 May) on the local day 19 May; `2025-05-19` is that whole day; `2025-04`
  the whole month; `2025` the whole year.
- "Latest", "before", "after" and trends compare instants, offsets included: `09:00-05:00` is after
  `13:00Z`. A date written without a time has no offset: against it only calendar days tell an order
  (`before`), and a sort places it as that day in UTC.
- Day counts use the calendar dates as written (`DayRange`): an onset of 19 May 23:30 in Chicago is
  19 May, whatever the UTC date. A partial date counts as the range of its days, and a rule decides
  only when the whole range falls on one side of its threshold.

Values arrive as strings (FHIR JSON), or already parsed as `date` / `datetime` (the R4B models turn
complete dates into those and keep partial ones as strings): all are accepted.
"""

from __future__ import annotations

import argparse
import calendar
import re
from dataclasses import field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any

from pydantic_core import TzInfo

from fhir_vcf.frozen import frozen

# FHIR R4 date / dateTime / instant (datatypes): a year, a month, a day, or a day with a time and an offset.
_FHIR_TIME = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<clock>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_CALENDAR_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_END_OF_DAY = time(23, 59, 59, 999999)


@frozen
class DayRange:
    """The calendar days a clinical date can be, as written: one day (`first == last`) or a span.

    `written` is the record's own words for it ("2025-04", "age 70", "onset period ending 2025-05-02"),
    so that an answer can quote what it had to work from.
    """

    first: date
    last: date
    written: str = field(default="", compare=False)  # words, not a value: "2025-06-02T10:00Z" is the day 2025-06-02

    @classmethod
    def day(cls, day: date, written: str = "") -> DayRange:
        return cls(day, day, written or day.isoformat())

    @property
    def exact(self) -> bool:
        return self.first == self.last

    def days_to(self, as_of: date) -> tuple[int, int]:
        """(fewest, most) days from the range to the as-of date; days after it count as the as-of day
        itself (an onset is never later than the date the record is read)."""
        last = min(self.last, as_of) if self.first <= as_of else self.last
        return (as_of - last).days, (as_of - self.first).days

    def gap(self, other: DayRange) -> int:
        """Days between two ranges (0 when they touch or overlap)."""
        return max(0, (other.first - self.last).days, (self.first - other.last).days)

    def isoformat(self) -> str:
        """"2025-05-19" for one day, "2025-04-01 to 2025-04-30" for a span (open ends left out)."""
        if self.exact:
            return self.first.isoformat()
        if self.first == date.min:
            return f"on or before {self.last.isoformat()}"
        if self.last == date.max:
            return f"on or after {self.first.isoformat()}"
        return f"{self.first.isoformat()} to {self.last.isoformat()}"

    def __str__(self) -> str:
        if self.exact or not self.written:
            return self.isoformat()
        return f"{self.written} ({self.isoformat()})"


@frozen
class When:
    """A timestamp as the interval it names: instants (aware, UTC) and calendar days as written."""

    earliest: datetime
    latest: datetime
    first_day: date
    last_day: date
    written: str
    timed: bool  # written with a time of day (a dateTime or instant, not a date)

    @property
    def day(self) -> date | None:
        """The one calendar day it names, or None for a month or a year (no day can be invented)."""
        return self.first_day if self.first_day == self.last_day else None

    @property
    def days(self) -> DayRange:
        return DayRange(self.first_day, self.last_day, self.written)

    @property
    def order(self) -> tuple[datetime, datetime]:
        """A sort key: by earliest instant, then latest (a day sorts before the times inside it)."""
        return self.earliest, self.latest

    def before(self, other: When) -> bool:
        """Certainly before. Two times of day compare as instants; a date (or a month, a year) has no
        offset, so against it only the calendar days as written can tell: the same day has no order."""
        if self.timed and other.timed:
            return self.latest < other.earliest
        return self.last_day < other.first_day

    def after_day(self, as_of: date) -> bool:
        """Wholly after the as-of date (its first day as written is later)."""
        return self.first_day > as_of

    def within(self, start: When, end: When | None) -> bool:
        """Certainly inside the period start..end (end None: still open). To the instant when all three
        carry a time; otherwise by calendar days as written (a date has no offset to compare instants
        with). A month or a year at either side places nothing inside it unless it must be."""
        if self.timed and start.timed and (end is None or end.timed):
            return start.latest <= self.earliest and (end is None or self.latest <= end.earliest)
        return start.last_day <= self.first_day and (end is None or self.last_day <= end.first_day)


def parse(value: object) -> When | None:
    """A FHIR date / dateTime / instant (a string, a `date` or a `datetime`) as a When; None for None.

    A string that is not a FHIR date is a ValueError: the caller names the resource and element.
    A time without an offset (invalid FHIR; the validating models refuse it) is read as UTC.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        zone = value.tzinfo
        if type(zone) in _FIXED_ZONES:
            return _parse_fixed(value, zone)
        # Keyed with the offset: 23:30-05:00 and 04:30Z are equal datetimes but not the same local day.
        return _parse_datetime(value, value.utcoffset())
    if isinstance(value, date):
        return _parse_date(value)
    if isinstance(value, str):
        return _parse_text(value.strip())
    raise ValueError(f"{value!r} is not a FHIR date, dateTime or instant")


def written_day(value: Any) -> date | None:
    """The one calendar day of a loaded `date` or `datetime` as written: the `first_day` and `last_day`
    that `parse` would give it, without building a When. None for anything else (a text, a partial
    date), and for a time near either end of the calendar, whose UTC reading `parse` may refuse:
    those go through `parse`, errors and all."""
    kind = type(value)
    if kind is date:
        return value
    if kind is datetime and 2 <= value.year <= 9998:
        return value.date()
    return None


# Every mapper asks for the same resources' dates: read each value once (an evaluation reads thousands).
@lru_cache(maxsize=8192)
def _parse_datetime(value: datetime, offset: timedelta | None) -> When:
    return _instant(value, value.isoformat())


# The zones of one fixed offset: pydantic's (every loaded time of day has one) and the standard library's.
# Two of them are equal exactly when their offsets are.
_FIXED_ZONES = frozenset({TzInfo, timezone})


@lru_cache(maxsize=8192)
def _parse_fixed(value: datetime, zone: tzinfo) -> When:
    """`_parse_datetime` of a time with a fixed-offset zone, keyed by the zone rather than the offset:
    equal zones mean equal offsets, and asking a zone for its offset (twice more to compare two
    times, once to hash one) was half of what a remembered time cost (~4,800 instructions, ~2,600 now)."""
    return _instant(value, value.isoformat())


@lru_cache(maxsize=8192)
def _parse_date(value: date) -> When:
    return _days(value, value, value.isoformat())


@lru_cache(maxsize=8192)
def _parse_text(text: str) -> When:
    m = _FHIR_TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a FHIR date, dateTime or instant (YYYY, YYYY-MM, YYYY-MM-DD, "
                         "or YYYY-MM-DDThh:mm:ss with Z or an offset)")
    try:
        year = int(m["year"])
        if m["month"] is None:
            return _days(date(year, 1, 1), date(year, 12, 31), text)
        month = int(m["month"])
        if m["day"] is None:
            return _days(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), text)
        if m["clock"] is None:
            day = date(year, month, int(m["day"]))
            return _days(day, day, text)
        zone = (m["zone"] or "Z").replace("Z", "+00:00")
        return _instant(datetime.fromisoformat(f"{m['year']}-{m['month']}-{m['day']}T{m['clock']}{zone}"), text)
    except ValueError:  # 2025-02-30, month 13, hour 25
        raise ValueError(f"{text!r} is not a calendar date or time") from None


def _days(first: date, last: date, written: str) -> When:
    return When(datetime.combine(first, time.min, UTC), datetime.combine(last, _END_OF_DAY, UTC),
                first, last, written, timed=False)


def _instant(moment: datetime, written: str) -> When:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    instant = aware.astimezone(UTC)
    return When(instant, instant, aware.date(), aware.date(), written, timed=True)


def add_years(day: date, years: int) -> date:
    """The same calendar day `years` later (29 February becomes 28 February in a common year)."""
    year = day.year + years
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


# Age units (UCUM, as FHIR Age uses them) → how to step a birth date by one unit.
AGE_UNITS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days"}


def after_birth(birth: date, amount: int, unit: str) -> date:
    """The calendar day `amount` units (UCUM a / mo / wk / d) after a birth date."""
    kind = AGE_UNITS[unit]
    if kind == "years":
        return add_years(birth, amount)
    if kind == "months":
        return add_months(birth, amount)
    return birth + timedelta(weeks=amount) if kind == "weeks" else birth + timedelta(days=amount)


def age_days(birth: DayRange, low: tuple[int, str] | None, high: tuple[int, str] | None, written: str) -> DayRange:
    """The days on which a person born within `birth` was aged low..high (whole units, UCUM a / mo / wk
    / d, both ends inclusive: "aged 70" runs from the 70th birthday to the day before the 71st). A
    missing end is open."""
    first = date.min if low is None else after_birth(birth.first, *low)
    last = date.max if high is None else after_birth(birth.last, high[0] + 1, high[1]) - timedelta(days=1)
    return DayRange(first, last, written)


# --------------------------------------------------------------------------- the as-of date

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

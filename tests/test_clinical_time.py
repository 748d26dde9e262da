"""Clinical time (fhir_vcf/clinical_time.py): FHIR dates as intervals of instants and days as written.

Input profile, "Dates and times": timestamps compare as instants (UTC offsets respected); day counts use
the calendar date as written; partial dates are ranges ("2025-04" is 1-30 April, "2025" the year).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import TzInfo

from fhir_vcf import clinical_time
from fhir_vcf.clinical_time import DayRange, age_days, parse

CHICAGO = timezone(timedelta(hours=-5))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "earliest", "latest", "first", "last"),
    [
        ("2025", utc(2025, 1, 1), utc(2025, 12, 31, 23, 59, 59, 999999), date(2025, 1, 1), date(2025, 12, 31)),
        ("2025-04", utc(2025, 4, 1), utc(2025, 4, 30, 23, 59, 59, 999999), date(2025, 4, 1), date(2025, 4, 30)),
        ("2024-02", utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999999), date(2024, 2, 1), date(2024, 2, 29)),
        ("2025-05-19", utc(2025, 5, 19), utc(2025, 5, 19, 23, 59, 59, 999999), date(2025, 5, 19), date(2025, 5, 19)),
        # 23:30 in Chicago is 04:30 UTC the next day; its own calendar date stays 19 May.
        ("2025-05-19T23:30:00-05:00", utc(2025, 5, 20, 4, 30), utc(2025, 5, 20, 4, 30), date(2025, 5, 19),
         date(2025, 5, 19)),
        ("2025-05-19T23:30:00Z", utc(2025, 5, 19, 23, 30), utc(2025, 5, 19, 23, 30), date(2025, 5, 19),
         date(2025, 5, 19)),
        ("2025-05-20T00:30:00.250+09:00", utc(2025, 5, 19, 15, 30, 0, 250000), utc(2025, 5, 19, 15, 30, 0, 250000),
         date(2025, 5, 20), date(2025, 5, 20)),
    ],
)
def test_a_fhir_value_is_the_interval_it_names(value, earliest, latest, first, last):
    found = parse(value)
    assert (found.earliest, found.latest, found.first_day, found.last_day) == (earliest, latest, first, last)
    assert found.written == value


def test_parsed_values_are_accepted_as_they_come_from_the_models():
    """The R4B models hand over `date` / aware `datetime`; lighter readers may hand over strings."""
    assert parse(date(2025, 5, 19)) == parse("2025-05-19")
    moment = parse(datetime(2025, 5, 19, 23, 30, tzinfo=CHICAGO))
    assert moment.earliest == utc(2025, 5, 20, 4, 30) and moment.day == date(2025, 5, 19) and moment.timed
    assert parse(None) is None


@pytest.mark.parametrize("value", ["2025-13", "2025-02-30", "20250519", "May 2025", "2025-05-19T25:00:00Z", ""])
def test_a_value_that_is_no_fhir_date_is_an_error_not_a_guess(value):
    with pytest.raises(ValueError):
        parse(value)


def test_instants_order_across_offsets():
    """09:10 in Chicago (14:10 UTC) is after 13:00 UTC although its clock reads earlier."""
    chicago, utc_score = parse("2025-06-23T09:10:00-05:00"), parse("2025-06-23T13:00:00Z")
    assert utc_score.before(chicago) and not chicago.before(utc_score)
    assert sorted([chicago, utc_score], key=lambda w: w.order) == [utc_score, chicago]


def test_a_month_and_a_day_inside_it_have_no_order():
    month, day = parse("2025-06"), parse("2025-06-10")
    assert not month.before(day) and not day.before(month)
    assert parse("2025-05").before(day)


def test_a_date_without_a_time_orders_only_by_calendar_days():
    """A date has no offset: 20:00 in Chicago on 23 June (01:00 UTC on 24 June) may be before or after
    "2025-06-23"; "2025-06-22" is certainly before 00:30 in Tokyo on 23 June (15:30 UTC on 22 June)."""
    day, evening = parse("2025-06-23"), parse("2025-06-23T20:00:00-05:00")
    assert not day.before(evening) and not evening.before(day)
    assert parse("2025-06-22").before(parse("2025-06-23T00:30:00+09:00"))
    assert parse("2025-06-22T23:30:00-05:00").before(day)


def test_a_partial_date_names_no_single_day():
    assert parse("2025-06").day is None
    assert parse("2025-06-10T08:00:00+02:00").day == date(2025, 6, 10)


def test_after_the_as_of_date_means_wholly_after_on_its_own_calendar():
    as_of = date(2025, 6, 30)
    assert not parse("2025-06-30T23:30:00-05:00").after_day(as_of)  # 1 July in UTC, 30 June where it was written
    assert parse("2025-07-01T00:30:00+09:00").after_day(as_of)  # 30 June in UTC, 1 July where it was written
    assert not parse("2025-06").after_day(as_of) and not parse("2025").after_day(as_of)
    assert parse("2025-07").after_day(as_of)


def test_within_a_period_to_the_instant_or_by_days_as_written():
    start, end = parse("2025-06-24T04:00:00Z"), parse("2025-06-24T06:00:00Z")
    assert parse("2025-06-23T23:30:00-05:00").within(start, end)  # 04:30 UTC
    assert not parse("2025-06-23T22:30:00-05:00").within(start, end)  # 03:30 UTC
    assert parse("2025-06-23T23:30:00-05:00").within(parse("2025-06-23"), parse("2025-06-23"))  # days as written
    assert not parse("2025-06").within(parse("2025-06-10"), None)  # a month may begin before the stay
    assert parse("2025-06-11").within(parse("2025-06-10"), None)


@pytest.mark.parametrize(
    ("days", "fewest", "most"),
    [
        (DayRange.day(date(2025, 5, 19)), 42, 42),
        (DayRange(date(2025, 4, 1), date(2025, 4, 30)), 61, 90),
        (DayRange(date(2025, 6, 1), date(2025, 6, 30)), 0, 29),
        (DayRange(date(2025, 1, 1), date(2025, 12, 31)), 0, 180),  # days after the as-of date count as it
    ],
)
def test_day_counts_over_a_range(days, fewest, most):
    assert days.days_to(date(2025, 6, 30)) == (fewest, most)


def test_ages_are_the_days_between_birthdays():
    born = DayRange.day(date(1945, 3, 1))
    assert age_days(born, (80, "a"), (80, "a"), "onsetAge 80 a") == DayRange(date(2025, 3, 1), date(2026, 2, 28))
    assert age_days(born, (79, "a"), (80, "a"), "") == DayRange(date(2024, 3, 1), date(2026, 2, 28))
    assert age_days(born, None, (70, "a"), "") == DayRange(date.min, date(2016, 2, 29))
    assert age_days(born, (966, "mo"), (966, "mo"), "") == DayRange(date(2025, 9, 1), date(2025, 9, 30))
    # Born 29 February: the birthday in a common year is 28 February.
    leap = DayRange.day(date(1944, 2, 29))
    assert age_days(leap, (81, "a"), (81, "a"), "") == DayRange(date(2025, 2, 28), date(2026, 2, 27))
    # A birth date known only by its year widens the ages by that year.
    assert age_days(DayRange(date(1945, 1, 1), date(1945, 12, 31)), (80, "a"), (80, "a"), "") == DayRange(
        date(2025, 1, 1), date(2026, 12, 30))


def test_a_range_says_what_it_is():
    assert str(DayRange.day(date(2025, 5, 19))) == "2025-05-19"
    assert str(DayRange(date(2025, 4, 1), date(2025, 4, 30), "2025-04")) == "2025-04 (2025-04-01 to 2025-04-30)"
    assert DayRange(date.min, date(2025, 3, 15)).isoformat() == "on or before 2025-03-15"


def test_the_as_of_date_is_read_here_too():
    assert clinical_time.parse_as_of("2025-06-30") == date(2025, 6, 30)
    with pytest.raises(ValueError):
        clinical_time.parse_as_of("2025-06")


@given(local=st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2090, 12, 31)),
       minutes=st.integers(min_value=-12 * 60, max_value=14 * 60))
def test_any_offset_keeps_its_own_date_and_its_instant(local, minutes):
    """Whatever the offset, the day as written is the local date and the instant is local minus the offset."""
    sign, hours, mins = "-" if minutes < 0 else "+", abs(minutes) // 60, abs(minutes) % 60
    written = f"{local.strftime('%Y-%m-%dT%H:%M:%S')}{sign}{hours:02d}:{mins:02d}"
    found = parse(written)
    assert found.days == DayRange.day(local.date())
    assert found.earliest == local.replace(microsecond=0, tzinfo=UTC) - timedelta(minutes=minutes)
    as_model_gives = parse(datetime.fromisoformat(written))  # the same value parsed by a model first
    assert (as_model_gives.earliest, as_model_gives.days) == (found.earliest, found.days)


def test_a_date_that_is_no_date_names_the_resource_and_element():
    from types import SimpleNamespace

    from fhir_vcf.errors import InputError
    from fhir_vcf.mappers import common

    with pytest.raises(InputError) as info:
        common.when(SimpleNamespace(id="x"), "2025-02-30", "onsetDateTime")
    assert info.value.element == "onsetDateTime" and "2025-02-30" in str(info.value)


def _plain(value: datetime) -> clinical_time.When:
    """A time read afresh, remembered nowhere: what `parse` answers."""
    return clinical_time._instant(value, value.isoformat())


_ZONES = st.one_of(st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: TzInfo(m * 60)),
                   st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
                   st.none())


@given(moments=st.lists(st.tuples(st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2090, 12, 31)),
                                  _ZONES), min_size=1, max_size=6))
def test_a_remembered_time_is_the_one_read_afresh(moments):
    """Times are remembered by their zone when it is a fixed offset (pydantic's, the standard library's):
    each answer is the plain reading, whatever times, equal as instants or not, were read before."""
    for local, zone in moments:
        value = local.replace(tzinfo=zone)
        found = parse(value)
        assert found == _plain(value) and found.written == value.isoformat()


def test_equal_instants_in_other_zones_keep_their_own_days():
    """04:30Z and 23:30-05:00 the day before are equal datetimes: each keeps its own day as written,
    and an offset written in either library's zone reads alike."""
    utc = datetime(2025, 5, 20, 4, 30, tzinfo=TzInfo(0))
    chicago = datetime(2025, 5, 19, 23, 30, tzinfo=TzInfo(-5 * 3600))
    assert utc == chicago
    assert (parse(utc).day, parse(chicago).day) == (date(2025, 5, 20), date(2025, 5, 19))
    assert parse(chicago.replace(tzinfo=timezone(timedelta(hours=-5)))) == parse(chicago) == _plain(chicago)
    for value in (chicago, utc, chicago.replace(tzinfo=timezone(timedelta(hours=-5))), utc.replace(tzinfo=UTC)):
        assert parse(value) == _plain(value)

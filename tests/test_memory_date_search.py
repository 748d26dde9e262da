"""The in-memory FHIR store's date search (replay and the demo endpoint) follows the FHIR R4 rules.

FHIR R4 "Search" (3.1.1.4 prefixes, 3.1.1.5.4 date): a date value stands for the range its precision
implies, a Period for its span, and each prefix compares ranges. The cases marked "R4 table" are the
examples of the specification's own prefix table; the others apply its definitions one rule at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_vcf.sources.memory import MemoryFhir, QueryError, _date_test, date_range, element_range


def store(*resources: dict) -> MemoryFhir:
    return MemoryFhir((None, r) for r in resources)


def obs(rid: str, **date: object) -> dict:
    return {"resourceType": "Observation", "id": rid, "subject": {"reference": "Patient/p1"}, **date}


def ids(fhir: MemoryFhir, query: str) -> list[str]:
    bundle = fhir.query(query)
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []))


def matches(search: str, target: object) -> bool:
    found = element_range(target)
    assert found is not None
    return _date_test(search)(found)


# --- ranges from precision ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "low", "high"), [
    ("2025", "2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
    ("2025-02", "2025-02-01T00:00:00+00:00", "2025-03-01T00:00:00+00:00"),
    ("2025-12", "2025-12-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
    ("2025-06-30", "2025-06-30T00:00:00+00:00", "2025-07-01T00:00:00+00:00"),
    ("2025-06-30T10:15Z", "2025-06-30T10:15:00+00:00", "2025-06-30T10:16:00+00:00"),
    ("2025-06-30T10:15:07+02:00", "2025-06-30T10:15:07+02:00", "2025-06-30T10:15:08+02:00"),
    ("2025-06-30T10:15:07.25Z", "2025-06-30T10:15:07.250000+00:00", "2025-06-30T10:15:07.260000+00:00"),
])
def test_a_value_is_the_range_its_precision_implies(value: str, low: str, high: str) -> None:
    found = date_range(value)
    assert found is not None
    assert (found[0].isoformat(), found[1].isoformat()) == (low, high)


@pytest.mark.parametrize("value", ["yesterday", "2025-13", "2025-02-30", "25-06-30", "2025-06-30T25:00Z", ""])
def test_what_is_no_fhir_date(value: str) -> None:
    assert date_range(value) is None


def test_a_period_is_its_whole_span_open_where_it_has_no_end() -> None:
    assert element_range({"start": "2025-06-01", "end": "2025-06-03"}) == (
        datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 4, tzinfo=UTC))
    assert element_range({"start": "2025-06-01"}) == (datetime(2025, 6, 1, tzinfo=UTC), None)
    assert element_range({"end": "2025"}) == (None, datetime(2026, 1, 1, tzinfo=UTC))
    assert element_range({}) is None


# --- each prefix ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("search", "target", "expected"), [
    # R4 table
    ("eq2013-01-14", "2013-01-14T00:00Z", True),
    ("eq2013-01-14", "2013-01-14T10:00Z", True),
    ("eq2013-01-14", "2013-01-15T00:00Z", False),
    ("ne2013-01-14", "2013-01-15T00:00Z", True),
    ("ne2013-01-14", "2013-01-14T00:00Z", False),
    ("ne2013-01-14", "2013-01-14T10:00Z", False),
    ("lt2013-01-14T10:00Z", "2013-01-14", True),
    ("gt2013-01-14T10:00Z", "2013-01-14T11:00Z", True),
    ("ge2013-03-14", {"start": "2013-01-21"}, True),
    ("le2013-03-14", {"start": "2013-01-21"}, True),
    # eq: the search range contains the target's; a coarser target is not contained
    ("eq2025-06", "2025-06-30", True),
    ("eq2025-06-30", "2025-06", False),
    ("eq2025", {"start": "2025-03-01", "end": "2025-04-01"}, True),
    ("2025-06-30", "2025-06-30", True),  # no prefix is eq
    # gt / lt: the target reaches above / below the search range
    ("gt2025-06-30", "2025-06-30", False),
    ("gt2025-06-30", "2025-07-01", True),
    ("gt2025-06-30", {"start": "2025-06-01", "end": "2025-07-02"}, True),  # a period running past it
    ("lt2025-06-30", "2025-06-30", False),
    ("lt2025-06-30", {"start": "2025-06-29", "end": "2025-06-30"}, True),
    # ge / le: that, or the target contained
    ("ge2025-06-30", "2025-06-30T12:00Z", True),
    ("ge2025-06-30", "2025-06-29", False),
    ("le2025-06-30", "2025-06-30T12:00Z", True),
    ("le2025-06-30", "2025-07-01", False),
    # sa / eb: wholly after / before, no overlap
    ("sa2025-06-30", "2025-07-01", True),
    ("sa2025-06-30", "2025-06-30T23:59Z", False),
    ("sa2025-06-30", {"start": "2025-07-01"}, True),
    ("sa2025-06-30", {"start": "2025-06-30", "end": "2025-07-05"}, False),  # gt, but it overlaps
    ("eb2025-06-30", "2025-06-29", True),
    ("eb2025-06-30", {"start": "2025-06-01", "end": "2025-06-30"}, False),  # lt, but it overlaps
    ("eb2025-06-30", {"end": "2025-06-29"}, True),
    # time zones: the same instant written in another offset
    ("eq2025-07-01", "2025-06-30T23:30-05:00", True),
    ("eq2025-06-30", "2025-06-30T23:30-05:00", False),
])
def test_each_prefix_compares_ranges(search: str, target: object, expected: bool) -> None:
    assert matches(search, target) is expected


def test_ap_widens_the_search_range_by_a_tenth_of_its_distance_from_now() -> None:
    now = datetime(2025, 6, 30, tzinfo=UTC)
    test = _date_test("ap2025-05-01", now=now)  # 60 days ago: ±6 days
    assert test((datetime(2025, 5, 6, tzinfo=UTC), datetime(2025, 5, 7, tzinfo=UTC)))
    assert test((datetime(2025, 4, 25, 1, tzinfo=UTC), datetime(2025, 4, 26, tzinfo=UTC)))
    assert not test((datetime(2025, 5, 8, 1, tzinfo=UTC), datetime(2025, 5, 9, tzinfo=UTC)))
    assert not test((datetime(2025, 4, 20, tzinfo=UTC), datetime(2025, 4, 21, tzinfo=UTC)))
    today = _date_test("ap2025-06-30", now=now + timedelta(hours=1))
    assert not today((datetime(2025, 7, 2, tzinfo=UTC), datetime(2025, 7, 3, tzinfo=UTC)))


# --- through the store's queries ---------------------------------------------------------------------------


@pytest.fixture
def fhir() -> MemoryFhir:
    return store(
        obs("day", effectiveDateTime="2025-06-10"),
        obs("minute", effectiveDateTime="2025-06-20T08:30:00Z"),
        obs("span", effectivePeriod={"start": "2025-06-05", "end": "2025-06-25"}),
        obs("open", effectivePeriod={"start": "2025-06-28"}),
        obs("month", effectiveDateTime="2025-05"),
        obs("none"),
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
         "onsetDateTime": "2025-06-02", "recordedDate": "2025-06-15", "meta": {"lastUpdated": "2025-06-16T09:00:00Z"}},
        {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"},
         "onsetPeriod": {"start": "2025-04-01", "end": "2025-04-30"}, "recordedDate": "2025-05-01"},
    )


def test_repeated_parameters_and_commas_or(fhir: MemoryFhir) -> None:
    # a period that overlaps both bounds matches both (ge: reaches above 06-10; le: reaches below 06-20)
    assert ids(fhir, "Observation?date=ge2025-06-10&date=le2025-06-20") == ["day", "minute", "span"]
    assert ids(fhir, "Observation?date=sa2025-06-09&date=eb2025-06-21") == ["day", "minute"]
    assert ids(fhir, "Observation?date=eq2025-06-10,eq2025-06-20") == ["day", "minute"]
    assert ids(fhir, "Observation?date=2025-05") == ["month"]


def test_periods_overlap_and_open_periods_reach_forever(fhir: MemoryFhir) -> None:
    assert ids(fhir, "Observation?date=gt2025-06-24") == ["open", "span"]
    assert ids(fhir, "Observation?date=sa2025-06-24") == ["open"]
    assert ids(fhir, "Observation?date=lt2025-06-06") == ["month", "span"]
    assert ids(fhir, "Observation?date=eb2025-06-06") == ["month"]
    assert ids(fhir, "Observation?date=gt2099") == ["open"]


def test_a_resource_without_the_element_matches_no_prefix(fhir: MemoryFhir) -> None:
    for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"):
        assert "none" not in ids(fhir, f"Observation?date={prefix}2025-06-10"), prefix


def test_type_specific_r4_date_parameters(fhir: MemoryFhir) -> None:
    assert ids(fhir, "Condition?onset-date=ge2025-06-01") == ["c1"]
    assert ids(fhir, "Condition?onset-date=eq2025-04") == ["c2"]
    assert ids(fhir, "Condition?recorded-date=lt2025-06") == ["c2"]
    assert ids(fhir, "Condition?_lastUpdated=ge2025-06-16") == ["c1"]
    # Condition has no R4 `date`: its clinical date (the onset) stands in, as EHR sandboxes do
    assert ids(fhir, "Condition?date=ge2025-06-01") == ["c1"]


def test_a_malformed_date_is_a_query_error(fhir: MemoryFhir) -> None:
    for bad in ("yesterday", "ge2025-02-30", "xx2025", "2025-06-30T25:00Z"):
        with pytest.raises(QueryError, match="not a FHIR date"):
            fhir.query(f"Observation?date={bad}")

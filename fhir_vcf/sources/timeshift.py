"""Move a FHIR record in time: every date of it by the same number of days.

Demo mode serves the sample patients as if they were recorded relative to today, so that a client
that sends no as-of date (every real EHR) sees the decisions the samples document for the date
they were written for. Moving *every* clinical date of a patient by one number of days keeps
every interval the rules count (fracture age, pain scores after the fracture, treatment weeks,
the patient's age), so a decision on the day the record was written for is the decision on the
day it was moved to.

Which values move: the string values of date elements (FHIR R4 `date`, `dateTime`, `instant`: the
element names below, a Period's `start`/`end`, `Timing.event`), each kept at its own precision
and time zone (`2025-06` stays a month, `...T10:15:00+02:00` keeps its offset). Codes, ids,
identifiers and narrative text never move, even when they look like a year (LOINC `1989-3`,
"treated 2019").
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

# Element names whose values are FHIR dates, dateTimes or instants (FHIR R4 resources the service
# reads and their common datatypes); `[x]` choices end in DateTime / Date / Instant and are matched
# by suffix.
DATE_ELEMENTS = frozenset({
    "authoredOn", "birthDate", "created", "date", "dateAsserted", "dateWritten", "end", "event", "issued",
    "lastOccurrence", "lastUpdated", "onset", "recorded", "recordedDate", "start", "started", "timestamp",
    "whenHandedOver", "whenPrepared", "asserted", "statusDate", "occurrenceDateTime", "expirationDate",
})
DATE_SUFFIXES = ("DateTime", "Date", "Instant")

_DATE_VALUE = re.compile(r"^(?P<date>\d{4}(?:-\d{2}(?:-\d{2})?)?)(?P<rest>T.*)?$")


def is_date_element(name: str) -> bool:
    return name in DATE_ELEMENTS or name.endswith(DATE_SUFFIXES)


def shift_value(value: str, days: int) -> str:
    """One FHIR date/dateTime/instant moved by `days`, at its own precision; anything else unchanged.

    A partial date moves with its first day and keeps its precision (`2025-06` + 20 days is
    `2025-06` or `2025-07`): the interval is kept as precisely as the value states it.
    """
    match = _DATE_VALUE.match(value)
    if not match or not days:
        return value
    text, rest = match.group("date"), match.group("rest") or ""
    parts = text.split("-")
    try:
        first = date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 1, int(parts[2]) if len(parts) > 2 else 1)
        if rest:  # validate the time part the way FHIR writes it; the clock time itself does not move
            datetime.fromisoformat(f"{first.isoformat()}{rest.replace('Z', '+00:00')}")
    except ValueError:
        return value
    moved = first + timedelta(days=days)
    if len(parts) == 1:
        return f"{moved.year:04d}{rest}"
    if len(parts) == 2:
        return f"{moved.year:04d}-{moved.month:02d}{rest}"
    return moved.isoformat() + rest


def shift_resource(resource: Mapping[str, Any], days: int) -> dict[str, Any]:
    """A deep copy of `resource` with every date element moved by `days`."""
    moved = copy.deepcopy(dict(resource))
    if days:
        _shift_in_place(moved, days)
    return moved


def _shift_in_place(node: Any, days: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and is_date_element(key):
                node[key] = shift_value(value, days)
            elif isinstance(value, list) and is_date_element(key):
                node[key] = [shift_value(v, days) if isinstance(v, str) else v for v in value]
                for item in node[key]:
                    _shift_in_place(item, days)
            elif key not in {"text", "div"}:  # narrative stays as written
                _shift_in_place(value, days)
    elif isinstance(node, list):
        for item in node:
            _shift_in_place(item, days)


def days_between(written_for: date, moved_to: date) -> int:
    return (moved_to - written_for).days


__all__ = ["DATE_ELEMENTS", "days_between", "is_date_element", "shift_resource", "shift_value"]


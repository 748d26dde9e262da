"""An in-memory FHIR store that answers the read/search subset of CDS Hooks prefetch templates.

Two tools need a FHIR server without having one: `fhir-vcf replay` fills each prefetch template
from a Bundle file, and demo mode serves the sample patients at `/demo/fhir`. Both ask this store,
so a template means the same thing in both places.

Supported (the CDS Hooks 2.0 prefetch query subset, plus what a FHIR client needs to page):

- reads: `Type/id`;
- type searches: `Type?patient=…`, `subject=…` (reference: `123`, `Patient/123` or an absolute
  URL), `_id`, `identifier` (`system|value`), token equality on `status`, `category`, `code`, `clinical-status`,
  `verification-status`, `intent` (`code`, `system|code`, `|code`, comma = OR, `:not`);
- date searches (`date`, `_lastUpdated`, and the R4 date parameters of the types the service
  reads: `onset-date`, `recorded-date`, `authoredon`, `authored`, `occurrence`, `started`,
  `issued`, `effective`, ...) by the FHIR R4 rules for dates ("Search", 3.1.1.4.2 / 3.1.1.5.4):
  a value stands for the range its precision implies (`2025` = the whole year, `2025-06-30` = the
  day, `...T10:00Z` = that minute), a Period for its whole span (open ended without `end`), and
  each prefix compares those ranges: `eq` the search range contains the target's, `ne` it does
  not, `gt`/`lt` the target's reaches above/below the search range, `ge`/`le` that or contained,
  `sa`/`eb` the target lies wholly after/before it, `ap` they overlap once the search range is
  widened by 10 % of its distance from now. Repeated parameters AND, comma-separated values OR.
  A time without a zone is taken as UTC (this store's time zone). For `date` on a type whose R4
  definition has none (Condition, MedicationRequest, ...), the resource's clinical date stands in:
  what EHR sandboxes do, so that a prefetch template written for one still gets an answer;
- `_count` and `_sort` (`date`, `-date`, `_id`, `_lastUpdated`, comma-separated keys).

Parameters outside that list are reported as ignored (FHIR's lenient handling) rather than
guessed at; result-shaping parameters that cannot change which resources match (`_format`,
`_elements`, `_summary`, `_total`, `_include`) are accepted silently. The store keeps the
bundle's resources as JSON and never validates them: validation is the service's job, and
replaying a broken record must reach the service unchanged.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from fhir_vcf import clinical_time
from fhir_vcf.errors import InputError

# Token search parameter → the element it reads (FHIR R4 search parameter definitions).
TOKEN_PARAMS: dict[str, str] = {
    "status": "status",
    "category": "category",
    "code": "code",
    "clinical-status": "clinicalStatus",
    "verification-status": "verificationStatus",
    "intent": "intent",
}

# Parameters that shape the answer but cannot change which resources match.
SHAPING_PARAMS = frozenset({"_format", "_elements", "_summary", "_total", "_include", "_revinclude", "_pretty"})

# The clinical date of a resource (input profile, rule 4), first found wins. This is what the
# `date` search parameter and `_sort=date` mean for the types the service reads.
DATE_PATHS: tuple[tuple[str, ...], ...] = (
    ("effectiveDateTime",),
    ("effectivePeriod", "start"),
    ("effectiveInstant",),
    ("period", "start"),
    ("onsetDateTime",),
    ("onsetPeriod", "start"),
    ("performedDateTime",),
    ("performedPeriod", "start"),
    ("occurrenceDateTime",),
    ("occurrencePeriod", "start"),
    ("authoredOn",),
    ("started",),
    ("dateAsserted",),
    ("date",),
    ("recordedDate",),
    ("issued",),
    ("created",),
)

# FHIR R4 "Search", 3.1.1.4 prefixes (all of them apply to dates).
_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
AP_FRACTION = 0.1  # FHIR R4 search, `ap`: "10% of the gap between now and the date" (recommended)

# Date search parameters → the elements they read, per resource type (FHIR R4 search parameter
# definitions; `[x]` choices written out). `*` is every type.
DATE_PARAMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("*", "_lastUpdated"): ("meta.lastUpdated",),
    ("AllergyIntolerance", "date"): ("recordedDate",),
    ("CarePlan", "date"): ("period",),
    ("CareTeam", "date"): ("period",),
    ("ClinicalImpression", "date"): ("date",),
    ("Composition", "date"): ("date",),
    ("Consent", "date"): ("dateTime",),
    ("DiagnosticReport", "date"): ("effectiveDateTime", "effectivePeriod"),
    ("DiagnosticReport", "issued"): ("issued",),
    ("DocumentReference", "date"): ("date",),
    ("Encounter", "date"): ("period",),
    ("EpisodeOfCare", "date"): ("period",),
    ("FamilyMemberHistory", "date"): ("date",),
    ("Flag", "date"): ("period",),
    ("Immunization", "date"): ("occurrenceDateTime",),
    ("List", "date"): ("date",),
    ("Observation", "date"): ("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
    ("Procedure", "date"): ("performedDateTime", "performedPeriod"),
    ("RiskAssessment", "date"): ("occurrenceDateTime", "occurrencePeriod"),
    ("SupplyRequest", "date"): ("authoredOn",),
    ("Condition", "onset-date"): ("onsetDateTime", "onsetPeriod"),
    ("Condition", "recorded-date"): ("recordedDate",),
    ("Condition", "abatement-date"): ("abatementDateTime", "abatementPeriod"),
    ("ImagingStudy", "started"): ("started",),
    ("MedicationAdministration", "effective-time"): ("effectiveDateTime", "effectivePeriod"),
    ("MedicationRequest", "authoredon"): ("authoredOn",),
    ("MedicationStatement", "effective"): ("effectiveDateTime", "effectivePeriod"),
    ("ServiceRequest", "authored"): ("authoredOn",),
    ("ServiceRequest", "occurrence"): ("occurrenceDateTime", "occurrencePeriod"),
    ("DeviceRequest", "event-date"): ("occurrenceDateTime", "occurrencePeriod"),
}

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")


@dataclass
class SearchResult:
    """The matches of one search, before paging; `ignored` names parameters that had no effect."""

    resource_type: str
    matches: list[dict[str, Any]]
    applied: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    count: int | None = None

    def page(self, offset: int = 0, count: int | None = None) -> list[dict[str, Any]]:
        size = self.count if count is None else count
        if size is None:
            return self.matches[offset:]
        return self.matches[offset : offset + size]


class QueryError(InputError):
    """A query the store cannot answer (a malformed parameter value): a 400 for the demo server."""


def parse_instant(value: Any) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware datetime (partial dates at their start), else None.

    Read by `fhir_vcf.clinical_time`, as the mappers read it: an instant with its offset."""
    if not isinstance(value, str) or not value:
        return None
    try:
        found = clinical_time.parse(value)
    except ValueError:
        return None
    return found.earliest if found is not None else None


def clinical_date(resource: Mapping[str, Any]) -> datetime | None:
    for path in DATE_PATHS:
        value: Any = resource
        for step in path:
            value = value.get(step) if isinstance(value, Mapping) else None
        moment = parse_instant(value)
        if moment is not None:
            return moment
    return None


# A FHIR date, dateTime or instant, with the parts its precision has (FHIR R4 datatypes).
_FHIR_DATE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)

Range = tuple["datetime | None", "datetime | None"]  # [low, high): None is unbounded


def date_range(value: Any) -> Range | None:
    """The range a FHIR date/dateTime/instant stands for, by its precision: `2025` → the year,
    `2025-06` → the month, `2025-06-30` → the day, `2025-06-30T10:00Z` → that minute, and so on
    down to the fraction of a second written. None when `value` is no FHIR date."""
    if not isinstance(value, str):
        return None
    match = _FHIR_DATE.match(value.strip())
    if not match:
        return None
    part = match.groupdict()
    zone = UTC
    if part["zone"] and part["zone"] != "Z":
        sign = 1 if part["zone"][0] == "+" else -1
        hours, minutes = int(part["zone"][1:3]), int(part["zone"][4:6])
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        year = int(part["year"])
        if part["month"] is None:
            return datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)
        month = int(part["month"])
        if part["day"] is None:
            low = datetime(year, month, 1, tzinfo=zone)
            return low, (datetime(year + 1, 1, 1, tzinfo=zone) if month == 12
                         else datetime(year, month + 1, 1, tzinfo=zone))
        low = datetime(year, month, int(part["day"]), tzinfo=zone)
        if part["hour"] is None:
            return low, low + timedelta(days=1)
        low = low.replace(hour=int(part["hour"]), minute=int(part["minute"]))
        if part["second"] is None:
            return low, low + timedelta(minutes=1)
        low = low.replace(second=int(part["second"]))
        if part["fraction"] is None:
            return low, low + timedelta(seconds=1)
        digits = part["fraction"][:6]
        low = low.replace(microsecond=int(digits.ljust(6, "0")))
        return low, low + timedelta(microseconds=10 ** (6 - len(digits)))
    except ValueError:  # 2025-02-30, hour 25, ...
        return None


def element_range(value: Any) -> Range | None:
    """The range of a date element's value: a date/dateTime/instant, or a Period (its whole span;
    a missing `start` or `end` leaves that side open, as FHIR R4 says of a Period)."""
    if isinstance(value, Mapping):
        start, end = date_range(value.get("start")), date_range(value.get("end"))
        if start is None and end is None:
            return None
        return (start[0] if start else None), (end[1] if end else None)
    return date_range(value)


def _element(resource: Mapping[str, Any], path: str) -> Any:
    value: Any = resource
    for step in path.split("."):
        value = value.get(step) if isinstance(value, Mapping) else None
    return value


def _clinical_date_range(resource: Mapping[str, Any]) -> Range | None:
    """The stand-in for `date` on a type with no R4 `date` parameter: the first clinical date found
    (DATE_PATHS' order), a Period as a whole."""
    seen: set[str] = set()
    for path in DATE_PATHS:
        name = path[0]
        if name in seen:
            continue
        seen.add(name)
        found = element_range(resource.get(name))
        if found is not None:
            return found
    return None


def date_param_paths(resource_type: str, name: str) -> tuple[str, ...] | None:
    """The elements a date parameter reads on a type; None when it is no date parameter there."""
    return DATE_PARAMS.get((resource_type, name)) or DATE_PARAMS.get(("*", name))


def _relative(reference: str) -> str:
    """"http://x/fhir/Patient/1" → "Patient/1": record.py's one definition of reference forms
    (imported here, not at the top, so that `fhir-vcf --help` does not load the FHIR models)."""
    from fhir_vcf.record import relative_reference

    return relative_reference(reference)


def _codings(value: Any) -> Iterable[tuple[str | None, str | None]]:
    """(system, code) pairs of a code, Coding, CodeableConcept, or a list of them."""
    if isinstance(value, str):
        yield None, value
    elif isinstance(value, list):
        for item in value:
            yield from _codings(item)
    elif isinstance(value, Mapping):
        if "code" in value and isinstance(value.get("code"), str):
            yield value.get("system"), value["code"]
        for coding in value.get("coding") or []:
            if isinstance(coding, Mapping):
                yield coding.get("system"), coding.get("code")


def _token_matches(element: Any, wanted: str) -> bool:
    if "|" in wanted:
        system, code = wanted.split("|", 1)
    else:
        system, code = None, wanted
    for have_system, have_code in _codings(element):
        if code and have_code != code:
            continue
        if system is None or (system == "" and not have_system) or system == have_system:
            return True
    return False


def _identifier_matches(identifiers: Any, wanted: str) -> bool:
    """`identifier=[system]|[value]` or `identifier=[value]` (FHIR R4 token search on Identifier)."""
    system, _, value = wanted.rpartition("|") if "|" in wanted else (None, "", wanted)
    items = identifiers if isinstance(identifiers, list) else [identifiers]
    for item in items:
        if not isinstance(item, Mapping) or (value and item.get("value") != value):
            continue
        if system is None or (system == "" and not item.get("system")) or system == item.get("system"):
            return True
    return False


class MemoryFhir:
    """Resources from Bundle entries, answering reads and prefetch-style searches.

    Resources without an id get one from their fullUrl (`urn:uuid:x` → `x`), and every reference
    to a fullUrl is rewritten to `Type/id`: what a FHIR server does when it stores a transaction,
    and what lets a client that fetched the resources resolve them.
    """

    def __init__(self, entries: Iterable[tuple[str | None, Mapping[str, Any]]] = ()) -> None:
        self._by_type: dict[str, dict[str, dict[str, Any]]] = {}
        self._aliases: dict[str, str] = {}
        pending: list[tuple[str | None, dict[str, Any]]] = []
        for full_url, resource in entries:
            pending.append((full_url, copy.deepcopy(dict(resource))))
        self._add_all(pending)

    @classmethod
    def from_bundles(cls, bundles: Iterable[Mapping[str, Any]]) -> MemoryFhir:
        entries: list[tuple[str | None, Mapping[str, Any]]] = []
        for bundle in bundles:
            if bundle.get("resourceType") != "Bundle":
                entries.append((None, bundle))
                continue
            for entry in bundle.get("entry") or []:
                if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping):
                    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
                    entries.append((full_url, entry["resource"]))
        return cls(entries)

    def _add_all(self, pending: list[tuple[str | None, dict[str, Any]]]) -> None:
        counter = 0
        for full_url, resource in pending:
            rtype = resource.get("resourceType")
            if not isinstance(rtype, str):
                continue
            rid = resource.get("id")
            if not isinstance(rid, str) or not rid:
                tail = (full_url or "").rsplit(":", 1)[-1].rsplit("/", 1)[-1]
                counter += 1
                rid = tail if tail and _ID.match(tail) else f"entry-{counter}"
                resource["id"] = rid
            ref = f"{rtype}/{rid}"
            if full_url:
                self._aliases.setdefault(full_url, ref)
            self._by_type.setdefault(rtype, {}).setdefault(rid, resource)
        for resources in self._by_type.values():
            for resource in resources.values():
                self._rewrite_references(resource)

    def _rewrite_references(self, value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("reference")
            if isinstance(ref, str) and ref in self._aliases:
                value["reference"] = self._aliases[ref]
            for item in value.values():
                self._rewrite_references(item)
        elif isinstance(value, list):
            for item in value:
                self._rewrite_references(item)

    # -- reading --------------------------------------------------------------------------------

    @property
    def types(self) -> list[str]:
        return sorted(self._by_type)

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        return list(self._by_type.get(resource_type, {}).values())

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return self._by_type.get(resource_type, {}).get(resource_id)

    def canonical(self, reference: str) -> str:
        """A reference as `Type/id` (fullUrls and absolute URLs resolved)."""
        return self._aliases.get(reference) or _relative(reference)

    def patients(self) -> list[str]:
        return sorted(self._by_type.get("Patient", {}))

    # -- searching ------------------------------------------------------------------------------

    def search(self, resource_type: str, params: Sequence[tuple[str, str]]) -> SearchResult:
        """Match, filter and sort; `_count` is recorded, not applied (callers page)."""
        result = SearchResult(resource_type, self.resources(resource_type))
        sort_keys: list[str] = []
        for raw_name, value in params:
            name, _, modifier = raw_name.partition(":")
            if name == "_count":
                result.count = _non_negative(raw_name, value)
                result.applied.append((raw_name, value))
            elif name == "_sort":
                sort_keys = [k.strip() for k in value.split(",") if k.strip()]
                result.applied.append((raw_name, value))
            elif name in SHAPING_PARAMS or name.startswith("_getpages"):
                continue
            elif name in {"patient", "subject"}:
                result.matches = [r for r in result.matches if self._refers(r, name, value)]
                result.applied.append((raw_name, value))
            elif name == "_id":
                ids = set(value.split(","))
                result.matches = [r for r in result.matches if r.get("id") in ids]
                result.applied.append((raw_name, value))
            elif name == "identifier" and not modifier:
                wanted_ids = [v for v in value.split(",") if v]
                result.matches = [r for r in result.matches
                                  if any(_identifier_matches(r.get("identifier"), w) for w in wanted_ids)]
                result.applied.append((raw_name, value))
            elif name in TOKEN_PARAMS and modifier in {"", "not"}:
                wanted = [v for v in value.split(",") if v]
                element = TOKEN_PARAMS[name]

                def keep(r: dict[str, Any], element: str = element, wanted: list[str] = wanted,
                         negate: bool = modifier == "not") -> bool:
                    hit = any(_token_matches(r.get(element), w) for w in wanted)
                    return hit != negate

                result.matches = [r for r in result.matches if keep(r)]
                result.applied.append((raw_name, value))
            elif not modifier and (date_param_paths(resource_type, name) or name == "date"):
                tests = [_date_test(v) for v in value.split(",")]  # a comma is OR (FHIR R4 search)
                paths = date_param_paths(resource_type, name)

                def keep_dated(r: dict[str, Any], tests: list[Callable[[Range], bool]] = tests,
                               paths: tuple[str, ...] | None = paths) -> bool:
                    ranges = ([element_range(_element(r, p)) for p in paths] if paths
                              else [_clinical_date_range(r)])
                    return any(test(found) for found in ranges if found is not None for test in tests)

                result.matches = [r for r in result.matches if keep_dated(r)]
                result.applied.append((raw_name, value))
            else:
                result.ignored.append(raw_name)
        for key in reversed(sort_keys):
            result.matches = _sorted(result.matches, key)
        return result

    def _refers(self, resource: Mapping[str, Any], name: str, value: str) -> bool:
        elements = ("subject",) if name == "subject" else ("patient", "subject")
        if resource.get("resourceType") == "Patient" and name == "patient":
            # Patient has no `patient` parameter in R4; accept it as `_id` (what EHR sandboxes do).
            return _matches_reference(f"Patient/{resource.get('id')}", value, default_type="Patient")
        for element in elements:
            pointer = resource.get(element)
            ref = pointer.get("reference") if isinstance(pointer, Mapping) else None
            if isinstance(ref, str):
                return _matches_reference(
                    self.canonical(ref), value, default_type="Patient" if name == "patient" else None
                )
        return False

    # -- the query strings of prefetch templates ---------------------------------------------

    def query(self, relative: str, *, ignored: list[str] | None = None) -> dict[str, Any] | None:
        """A resolved prefetch query → the resource (a read; None when absent) or a searchset Bundle.

        The Bundle holds the first `_count` matches with `total` set to all of them; there is no
        `next` link, because a prefetch has no server behind it to page from. Parameters the store
        does not support are appended to `ignored` when it is given.
        """
        resource_type, rid, params = parse_query(relative)
        if rid is not None:
            return self.read(resource_type, rid)
        result = self.search(resource_type, params)
        if ignored is not None:
            ignored.extend(result.ignored)
        return searchset(result, result.page())


def parse_query(relative: str) -> tuple[str, str | None, list[tuple[str, str]]]:
    """"Condition?patient=1&_count=5" → ("Condition", None, [...]); "Patient/1" → ("Patient", "1", [])."""
    parts = urlsplit(relative)
    path = parts.path.strip("/")
    segments = [unquote(s) for s in path.split("/") if s]
    if not segments or not _TYPE.match(segments[-1 if len(segments) == 1 else -2]):
        raise QueryError(f"not a FHIR read or search: {relative!r}", source="query")
    params = parse_qsl(parts.query, keep_blank_values=True)
    if len(segments) == 1:
        return segments[0], None, params
    return segments[-2], segments[-1], params


def searchset(result: SearchResult, page: list[dict[str, Any]], links: Sequence[Mapping[str, str]] = ()) -> dict[
    str, Any
]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(result.matches)}
    if links:
        bundle["link"] = [dict(link) for link in links]
    if page:
        bundle["entry"] = [
            {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in page
        ]
    return bundle


def _matches_reference(have: str, wanted: str, *, default_type: str | None) -> bool:
    wanted = _relative(wanted)
    if "/" not in wanted:
        have_type, _, have_id = have.partition("/")
        return have_id == wanted and (default_type is None or have_type == default_type)
    return have == wanted


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise QueryError(f"{name} must be a whole number of 0 or more, got {value!r}", source="query")
    return number


def _date_test(value: str, *, now: datetime | None = None) -> Callable[[Range], bool]:
    """The FHIR R4 meaning of one date search value (`ge2025-06-10`) as a test on a target range."""
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    raw = value[2:] if value[:2] in _DATE_PREFIXES else value
    searched = date_range(raw)
    if searched is None:
        raise QueryError(f"date: {value!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)",
                         source="query")
    low, high = searched
    assert low is not None and high is not None
    if prefix == "ap":
        gap = abs((now or datetime.now(UTC)) - low) * AP_FRACTION
        low, high = low - gap, high + gap

    def test(target: Range) -> bool:
        t_low, t_high = target
        below = t_low is None or t_low < low  # the target reaches below the search range
        above = t_high is None or t_high > high  # ... or above it
        contained = not below and not above
        overlaps = (t_low is None or t_low < high) and (t_high is None or t_high > low)
        return {
            "eq": contained,
            "ne": not contained,
            "gt": above,
            "lt": below,
            "ge": above or contained,
            "le": below or contained,
            "sa": t_low is not None and t_low >= high,
            "eb": t_high is not None and t_high <= low,
            "ap": overlaps,
        }[prefix]

    return test


def _sorted(resources: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """A stable sort on one key; resources without a value go last whatever the direction."""
    descending = key.startswith("-")
    name = key.lstrip("-")

    def value(resource: dict[str, Any]) -> Any:
        if name == "_id":
            return resource.get("id") or None
        if name == "_lastUpdated":
            return parse_instant((resource.get("meta") or {}).get("lastUpdated"))
        return clinical_date(resource)

    have = [r for r in resources if value(r) is not None]
    lack = [r for r in resources if value(r) is None]
    return sorted(have, key=value, reverse=descending) + lack


__all__ = [
    "DATE_PARAMS",
    "MemoryFhir",
    "QueryError",
    "SearchResult",
    "clinical_date",
    "date_range",
    "element_range",
    "parse_instant",
    "parse_query",
    "searchset",
]

"""Small readers every mapper needs: codings with short system names, clinical dates, current-ness."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from datetime import date
from typing import Any

from fhir_vcf import clinical_time
from fhir_vcf.clinical_time import When
from fhir_vcf.elements import Element, Elements
from fhir_vcf.errors import InputError
from fhir_vcf.facts import Coding, Evidence, Method
from fhir_vcf.mappers.codes.icd10cm import spelled
from fhir_vcf.mappers.codes.systems import system_alias
from fhir_vcf.record import attachment_text, attachments, field

# Condition.clinicalStatus values that mean "no longer current" (input profile, rule 3).
HISTORICAL_STATUSES = frozenset({"inactive", "resolved", "remission"})


_MEMOISED = (Element, Elements)  # a tuple: isinstance checks it faster than a union

# What the mappers derive from one element of the record (see `fhir_vcf.elements`), a date or a coding,
# is worked out once however many mappers ask, and kept in the element's `_memo` (a resource met again
# with the same content is given the memory of its copy before: `fhir_vcf.elements._SEEN`); models built
# elsewhere (tests, a draft order) have none and are simply read again. The readers below are called
# tens of thousands of times a population run, with no closure built per call (a closure and a second
# layer made `codings` and `texts` twice as slow); the most asked, `codings`, `texts` (a remembered
# answer), `_kept` and `clinical_when`, reach the memory inline, `texts_of` and `report_texts` through
# `_kept_list`, the others through one call (`memo_of`).


def memo_of(node: Any) -> dict[Any, Any] | None:
    """The memory of an element of the record; None for models built elsewhere."""
    if not isinstance(node, _MEMOISED):
        return None
    memo = node._memo
    if memo is None:
        memo = node._memo = {}
    return memo


def _kept(concept: Any, element: str, read: Callable[[Any, str], Iterator[Any]]) -> Iterator[Any]:
    """What `read` yields for an element of the record, kept in its memory (keyed by the reader and
    the element path); read again each time for models built elsewhere."""
    if not isinstance(concept, _MEMOISED):  # `memo_of`, inline (as in `clinical_when`)
        return read(concept, element)
    memo = concept._memo
    if memo is None:
        memo = concept._memo = {}
    key = (read, element)
    found = memo.get(key)
    if found is None:
        found = memo[key] = list(read(concept, element))
    return iter(found)


def reader(resource: Any) -> Callable[[str], Any]:
    """`field` of one resource as one callable, for a mapper reading several of its elements: of a
    resource of the record, its present elements' own `get` (no Python call per element read)."""
    return resource.__dict__.get if isinstance(resource, Element) else functools.partial(field, resource)


def codings(concept: Any, element: str = "code") -> Iterator[tuple[Coding, str]]:
    """Each coding of a CodeableConcept (or a list of them) as (Coding, element path)."""
    memo = concept._memo if isinstance(concept, _MEMOISED) else None  # a remembered one: no second call
    found = memo.get((_codings, element)) if memo is not None else None
    return iter(found) if found is not None else _kept(concept, element, _codings)


def _codings(concept: Any, element: str) -> Iterator[tuple[Coding, str]]:
    concepts = concept if isinstance(concept, list) else [concept]
    for i, cc in enumerate(concepts):
        if cc is None:
            continue
        prefix = f"{element}[{i}]" if isinstance(concept, list) else element
        for j, c in enumerate(getattr(cc, "coding", None) or []):
            if c.code:
                yield coding_of(c.system, c.code, c.display), f"{prefix}.coding[{j}]"


# The Codings made from (system, code, display) as written: every record repeats the same few hundred
# codes (a lab panel's LOINC, a visit's class), and a Coding is immutable, a pure function of the three.
# Bounded (the words come from the input): at `_CODINGS_LIMIT` the memory is emptied and refills.
_CODINGS: dict[tuple[Any, Any, Any], Coding] = {}
_CODINGS_LIMIT = 10_000


def coding_of(system: str | None, code: str, display: str | None) -> Coding:
    """The Coding of a FHIR coding: the system's short name, ICD-10-CM in one spelling for every mapper
    and rule ("m8008xa" → "M80.08XA", input profile), the display or ""."""
    key = (system, code, display)
    found = _CODINGS.get(key)
    if found is None:
        alias = system_alias(system)
        found = Coding(alias, spelled(code) if alias == "icd-10-cm" else code, display or "")
        if len(_CODINGS) >= _CODINGS_LIMIT:
            _CODINGS.clear()
        _CODINGS[key] = found
    return found


def texts(concept: Any, element: str = "code") -> Iterator[tuple[str, str]]:
    """The human text of a CodeableConcept (or list): `text`, then each coding's display."""
    memo = concept._memo if isinstance(concept, _MEMOISED) else None  # as in `codings`
    found = memo.get((_texts, element)) if memo is not None else None
    return iter(found) if found is not None else _kept(concept, element, _texts)


def _texts(concept: Any, element: str) -> Iterator[tuple[str, str]]:
    concepts = concept if isinstance(concept, list) else [concept]
    for i, cc in enumerate(concepts):
        if cc is None:
            continue
        prefix = f"{element}[{i}]" if isinstance(concept, list) else element
        if getattr(cc, "text", None):
            yield cc.text, f"{prefix}.text"
        for j, c in enumerate(getattr(cc, "coding", None) or []):
            if c.display:
                yield c.display, f"{prefix}.coding[{j}].display"


def notes(resource: Any) -> Iterator[tuple[str, str]]:
    for i, annotation in enumerate(field(resource, "note") or []):
        if annotation.text:
            yield annotation.text, f"note[{i}].text"


def evidence(ref: str, element: str, method: Method, found: str) -> Evidence:
    return Evidence(reference=ref, element=element, method=method, found=found)


def code_evidence(ref: str, element: str, coding: Coding, vocabulary: str) -> Evidence:
    label = f"{vocabulary} {coding.code}" + (f" ({coding.display})" if coding.display else "")
    return Evidence(ref, element, Method.CODE, label)


def when(resource: Any, value: Any, element: str) -> When | None:
    """A date element's value as clinical time (`fhir_vcf.clinical_time`); a value that is no FHIR
    date is an input error naming the resource and the element (input profile, rule 5)."""
    try:
        return clinical_time.parse(value)
    except ValueError as exc:
        raise InputError(str(exc), resource=_reference(resource), element=element) from None


def _reference(resource: Any) -> str:
    kind = resource.get_resource_type() if hasattr(resource, "get_resource_type") else type(resource).__name__
    return f"{kind}/{getattr(resource, 'id', None) or '?'}"


# Where each type keeps its clinical date, most specific first (input profile, rule 4).
_DATE_ELEMENTS = (
    "onsetDateTime",
    "onsetPeriod.start",
    "effectiveDateTime",
    "effectivePeriod.start",
    "effectiveInstant",
    "performedDateTime",
    "performedPeriod.start",
    "authoredOn",
    "started",
    "occurrenceDateTime",
    "period.start",
    "context.period.start",  # DocumentReference: the time of the service the document is about
    "recordedDate",
    "dateAsserted",
    "issued",
    "created",
    "date",  # DocumentReference: when the document was made (input profile, "report text")
)
_DATE_ELEMENTS_BY_TYPE: dict[type, tuple[tuple[str, tuple[str, ...], str], ...]] = {}


def _date_elements(model: type) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """The date elements a model class really has, as (attribute, the attributes below it, element),
    cached per class.

    Asking a pydantic model for an attribute it lacks is slow (it raises inside __getattr__), and
    this runs for every resource of every evaluation.
    """
    found = _DATE_ELEMENTS_BY_TYPE.get(model)
    if found is None:
        fields = getattr(model, "model_fields", {})
        found = tuple((e.split(".")[0], tuple(e.split(".")[1:]), e) for e in _DATE_ELEMENTS
                      if e.split(".")[0] in fields)
        _DATE_ELEMENTS_BY_TYPE[model] = found
    return found


def clinical_when(resource: Any) -> tuple[When | None, str]:
    """The clinical date of a resource, as an interval, and the element it came from (input profile,
    rule 4). A partial date ("2025-06") is the range it names.

    Never meta.lastUpdated: a record re-saved today is not a fracture seen today.
    """
    # `memo_of` inline: this is asked a hundred times or more an evaluation, most of them remembered.
    if not isinstance(resource, _MEMOISED):
        return _clinical_when(resource)
    memo = resource._memo
    if memo is None:
        memo = resource._memo = {}
    else:
        found = memo.get("clinical_when")
        if found is not None:
            return found
    found = memo["clinical_when"] = _clinical_when(resource)
    return found


def _clinical_when(resource: Any) -> tuple[When | None, str]:
    value, element = _clinical_value(resource)
    if value is None:
        return None, ""
    try:  # `when`, inline: every resource of every evaluation is dated here
        return clinical_time.parse(value), element
    except ValueError as exc:
        raise InputError(str(exc), resource=_reference(resource), element=element) from None


def _clinical_value(resource: Any) -> tuple[Any, str]:
    """The value of a resource's clinical date element as the record holds it, and the element; (None,
    "") when it has none."""
    elements = _DATE_ELEMENTS_BY_TYPE.get(type(resource)) or _date_elements(type(resource))
    for name, below, element in elements:
        value = getattr(resource, name)
        if below:  # `period.start`: a slice of a one-name path per resource is no longer made
            for part in below:
                value = getattr(value, part, None) if value is not None else None
        if value is not None:
            return value, element
    return None, ""


def clinical_day(resource: Any) -> date | None:
    """The one calendar day of a resource's clinical date, as written; None when undated or when the
    date names a month or a year (no day is invented)."""
    found = _day_or_when(resource)
    return found.day if isinstance(found, When) else found


def is_historical(condition: Any) -> bool:
    """A Condition whose clinicalStatus says it is over (inactive / resolved / remission)."""
    status = getattr(condition, "clinicalStatus", None)
    return any(c.code in HISTORICAL_STATUSES for c in (getattr(status, "coding", None) or []))


def after(resource: Any, as_of: date) -> bool:
    """Dated wholly after the as-of date: invisible to an evaluation "as of" that day. A month or a
    year that reaches the as-of date stays visible (nothing says it is from the future)."""
    found = _day_or_when(resource)
    if isinstance(found, When):
        return found.after_day(as_of)
    return found is not None and found > as_of


def _day_or_when(resource: Any) -> date | When | None:
    """A resource's clinical date as cheaply as it can be had: its When when one is remembered, else
    the day of a date or time the loader read (`clinical_time.written_day`), else its When. Either
    answer gives `after` and `clinical_day` the same result.

    The view asks `after` of every resource, and most are never dated again (an Encounter is read for
    its stay only when a pain score needs one): for those no When is built. The answer is kept in the
    memory of a resource of the record (`_DAY`), since the families ask the view's dated resources
    again (the imaging scan every report, care and the labels what they cite): ~5,000 instructions a
    resource asked again, ~60 asks of the benchmark's request."""
    memo = None
    if isinstance(resource, _MEMOISED):  # `memo_of` inline, as in `clinical_when`
        memo = resource._memo
        if memo is None:
            memo = resource._memo = {}
        else:
            day = memo.get(_DAY, _DAY)
            if day is not _DAY:
                return day
    found = memo.get("clinical_when") if memo is not None else None  # a remembered date: no second call
    if found is None:
        day = clinical_time.written_day(_clinical_value(resource)[0])
        if day is None:
            day = clinical_when(resource)[0]
    else:
        day = found[0]
    if memo is not None:
        memo[_DAY] = day
    return day


_DAY = "day_or_when"  # the key of what `_day_or_when` keeps (itself the mark of nothing kept: None is an answer)


def free_texts(record: Any, *types: str) -> Iterator[tuple[Any, str, str, str]]:
    """(resource, reference, element, text) for the narrative-bearing elements of the record.

    Where feeds put findings in words: report conclusions, condition and order text, notes,
    observation strings, series descriptions. Codings' displays are not included (they repeat codes).
    """
    for resource in record.of_type(*(types or FREE_TEXT_TYPES)):
        found = texts_of(resource)
        if found:  # most resources (a vital sign, a lab result) have none: no reference worked out
            ref = record.ref(resource)
            for element, text in found:
                yield resource, ref, element, text


def texts_of(resource: Any) -> list[tuple[str, str]]:
    """(element, text) of one resource's narrative-bearing elements (`_free_texts`), kept in its memory."""
    return _kept_list(resource, "free_texts", _free_texts)


def _kept_list(resource: Any, key: str, read: Callable[[Any], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """`read(resource)`, kept in the memory of a resource of the record (`memo_of` inline, as in
    `clinical_when`); a model built elsewhere is read again."""
    if not isinstance(resource, _MEMOISED):
        return read(resource)
    memo = resource._memo
    if memo is None:
        memo = resource._memo = {}
    found = memo.get(key)
    if found is None:
        found = memo[key] = read(resource)
    return found


# The types `free_texts` reads by default, in its order.
FREE_TEXT_TYPES = ("Condition", "DiagnosticReport", "DocumentReference", "Observation", "ImagingStudy", "Procedure",
                   "ServiceRequest", "AllergyIntolerance", "CarePlan")


# The elements `_free_texts` reads: a resource of the record holding none of them (most resources, a
# vital sign, a lab result, an Encounter) is passed over at once, known from its present elements alone
# (see `field`).
_FREE_TEXT_ELEMENTS = frozenset({"code", "note", "conclusion", "presentedForm", "content", "valueString",
                                 "description", "series", "reasonCode"})
_REPORT_ELEMENTS = frozenset({"conclusion", "presentedForm", "content"})  # what `report_texts` reads
_ATTACHED = frozenset({"presentedForm", "content"})  # where `attachments` finds them


def _free_texts(resource: Any) -> list[tuple[str, str]]:
    """(element, text) of one resource's narrative-bearing elements, in `free_texts` order.

    A list built in place, not a generator of generators: every resource of every evaluation is read
    here once. A resource of the record is read from its present elements alone. The commonest ones,
    a coded resource (a vital sign, a lab result) and a report with a conclusion, have no other element
    looked at: `texts_of` of a lab report with a conclusion costs about 17,000 instructions, not
    24,000 (the benchmark's request has 31). A model built elsewhere is asked for each element.
    """
    if not isinstance(resource, Element):
        return _texts_read(resource, functools.partial(field, resource), _FREE_TEXT_ELEMENTS)
    present = resource.__dict__
    names = _FREE_TEXT_ELEMENTS.intersection(present)
    if not names <= _CODE_OR_CONCLUSION:
        return _texts_read(resource, present.get, names)
    code = present.get("code")
    found = [("code.text", code.text)] if code is not None and getattr(code, "text", None) else []
    if "conclusion" in names:
        for value, element in report_texts(resource):  # a loop: a comprehension is a call of its own
            found.append((element, value))
    return found


_CODE_OR_CONCLUSION = frozenset({"code", "conclusion"})


def _texts_read(resource: Any, get: Callable[[str], Any], names: AbstractSet[str]) -> list[tuple[str, str]]:
    """(element, text) of the elements `get` reads, of those named (every one it may hold, or the
    present ones), in `free_texts` order."""
    found: list[tuple[str, str]] = []
    code = get("code")
    if code is not None and getattr(code, "text", None):
        found.append(("code.text", code.text))
    for i, annotation in enumerate(get("note") or ()):
        if annotation.text:
            found.append((f"note[{i}].text", annotation.text))
    if not _REPORT_ELEMENTS.isdisjoint(names):
        found += [(element, value) for value, element in report_texts(resource)]
    for name in ("valueString", "description"):
        value = get(name)
        if value:
            found.append((name, value))
    for i, series in enumerate(get("series") or ()):
        if series.description:
            found.append((f"series[{i}].description", series.description))
    for i, reason in enumerate(get("reasonCode") or ()):
        if reason.text:
            found.append((f"reasonCode[{i}].text", reason.text))
    return found


def report_texts(resource: Any) -> list[tuple[str, str]]:
    """(text, element) of a report: a DiagnosticReport's `conclusion` and plain-text `presentedForm`,
    a DocumentReference's plain-text `content[].attachment` (input profile, "report text": one reading
    for all three, dated by the resource's clinical date). Kept in the resource's memory: the free
    texts and the imaging scan both read it."""
    return _kept_list(resource, "report_texts", _report_texts)


def _report_texts(resource: Any) -> list[tuple[str, str]]:
    if isinstance(resource, Element) and _ATTACHED.isdisjoint(resource.__dict__):
        # No attachment element present (every lab panel): the conclusion alone, without `attachments`.
        conclusion = resource.__dict__.get("conclusion")
        return [(conclusion, "conclusion")] if conclusion else []
    found: list[tuple[str, str]] = []
    conclusion = field(resource, "conclusion")
    if conclusion:
        found.append((conclusion, "conclusion"))
    for attachment, element in attachments(resource):
        value = attachment_text(attachment)
        if value:
            found.append((value, element))
    return found

"""The mappers' fast readers (issue 11) give exactly what the slower readers they replace gave, on every
sample and test bundle and on models built elsewhere:

- `record.field` reads a resource of the record from its present elements (the model's element table otherwise);
- `common._free_texts` reads only the text-bearing elements present, into one list (its readers as first
  written, each element asked for), a resource with texts in `code` and `conclusion` at most the short way;
- `common.report_texts` lists attachments only of a resource with presentedForm or content, once per resource;
- `common.clinical_when` reaches its memory inline; `VisibleRecord` hides what `common.after` does;
  `common._day_or_when` keeps the day it read in a resource's memory;
- `_context.icd_prefixes` matches as the prefix-by-prefix test did;
- `fractures._fracture_text_levels` reuses the levels it found in the whole text, and keeps a short
  text's levels in a bounded memory; `fractures.context_text` keeps a short text's mentions so;
- `assertion.TextReading.read` remembers a short text's assertions by mention, a long text's not;
- `symptoms._RDQ_TERMS` passes exactly the texts `_RDQ_MENTION` finds a mention in;
- `symptoms._LazyStays` reads the stays when a score first needs them, at once when reading may fail;
- `common.coding_of` remembers the Coding of each (system, code, display) as written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import every_bundle
import fhir_builders as builders
import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from fhir_vcf import clinical_time
from fhir_vcf import record as record_module
from fhir_vcf.elements import Element
from fhir_vcf.errors import FhirVcfError, InputError
from fhir_vcf.facts import Coding, Evidence, Method
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import _context as ctx
from fhir_vcf.mappers import assertion, common, fractures, imaging, symptoms, text
from fhir_vcf.mappers.codes import icd10cm
from fhir_vcf.mappers.codes.icd10cm import spelled
from fhir_vcf.mappers.codes.systems import system_alias
from fhir_vcf.mappers.visible import VisibleRecord
from fhir_vcf.sources.files import bundle_files, load_file

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = bundle_files([ROOT / "samples", ROOT / "samples" / "ehr-exports", ROOT / "tests" / "data"])
AS_OF_DATES = (date(2025, 6, 30), date(2025, 6, 1), date(2024, 1, 1), date(2019, 12, 31))


def _resources(path: Path) -> Iterator[tuple[Any, Any]]:
    for record in load_file(path):
        for resources in record.resources.values():
            for resource in resources:
                yield record, resource


def _nodes(node: Any) -> Iterator[Any]:
    """Every element of a resource, itself included."""
    if isinstance(node, Element):
        yield node
        for value in node.__dict__.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


# --- the slow readers, as they were ---


def _slow_free_texts(resource: Any) -> list[tuple[str, str]]:
    """`common._free_texts` as first written: every element it reads asked for by `record.field`, the
    report's texts read afresh, whatever the resource holds."""
    found = []
    code = record_module.field(resource, "code")
    if getattr(code, "text", None):
        found.append(("code.text", code.text))
    for i, annotation in enumerate(record_module.field(resource, "note") or []):
        if annotation.text:
            found.append((f"note[{i}].text", annotation.text))
    found += [(element, value) for value, element in _slow_report_texts(resource)]
    for name in ("valueString", "description"):
        value = record_module.field(resource, name)
        if value:
            found.append((name, value))
    for i, series in enumerate(record_module.field(resource, "series") or []):
        if series.description:
            found.append((f"series[{i}].description", series.description))
    for i, reason in enumerate(record_module.field(resource, "reasonCode") or []):
        if reason.text:
            found.append((f"reasonCode[{i}].text", reason.text))
    return found


def _slow_report_texts(resource: Any) -> list[tuple[str, str]]:
    """`common.report_texts` as first written: the conclusion, then each readable attachment."""
    conclusion = record_module.field(resource, "conclusion")
    found = [(conclusion, "conclusion")] if conclusion else []
    for attachment, element in record_module.attachments(resource):
        value = record_module.attachment_text(attachment)
        if value:
            found.append((value, element))
    return found


def _slow_fracture_text_levels(value: str) -> list[str]:
    """`fractures._fracture_text_levels` before issue 11: the levels found afresh in each sentence."""
    if not text.find_levels(value):
        return []
    about = fractures._fracture_sentences(value)
    if not about:
        return text.find_levels(value)
    return sort_levels(level for sentence, healed in about if not healed for level in text.find_levels(sentence))


# --- the tests ---


def _field_by_table(node: Any, name: str) -> Any:
    """`record.field` as first written: the element, when the type's element table has it."""
    return getattr(node, name) if name in getattr(type(node), "model_fields", ()) else None


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_field_reads_what_the_models_field_reads(path: Path) -> None:
    for _, resource in _resources(path):
        for node in _nodes(resource):
            names = {*type(node).model_fields, *node.__dict__, "noSuchElement", "status", "doNotPerform", "note"}
            read = common.reader(node)
            for name in names:
                assert record_module.field(node, name) is _field_by_table(node, name), (node, name)
                assert read(name) is _field_by_table(node, name), (node, name)


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_free_texts_are_the_slow_readers(path: Path) -> None:
    for _, resource in _resources(path):
        assert common.report_texts(resource) == _slow_report_texts(resource), resource
        assert common.report_texts(resource) == _slow_report_texts(resource), resource  # remembered
        assert common._free_texts(resource) == _slow_free_texts(resource), resource
        assert common.texts_of(resource) == _slow_free_texts(resource), resource


def test_the_report_texts_take_each_branch() -> None:
    """The bundles hold reports whose attachments are read and reports with none."""
    read = passed = 0
    for path in BUNDLES:
        for _, resource in _resources(path):
            if resource.get_resource_type() in ("DiagnosticReport", "DocumentReference"):
                attached = any(e != "conclusion" for _, e in common.report_texts(resource))
                read += attached
                passed += resource.__dict__.keys().isdisjoint({"presentedForm", "content"})
    assert read and passed


def test_the_free_texts_take_each_branch() -> None:
    """The bundles hold resources read by `_free_texts`' short way (texts in `code` and `conclusion` at
    most: a code's text, a conclusion, neither) and by its long way (any other text-bearing element)."""
    short: set[str] = set()
    long = 0
    for path in BUNDLES:
        for _, resource in _resources(path):
            present = set(resource.__dict__) & common._FREE_TEXT_ELEMENTS
            if not present:
                continue
            if present <= common._CODE_OR_CONCLUSION:
                short.update(element for element, _ in common._free_texts(resource))
                short.add("none" if not common._free_texts(resource) else "some")
            else:
                long += 1
    assert short == {"code.text", "conclusion", "none", "some"} and long


def _slow_clinical_when(resource: Any) -> tuple[Any, str]:
    """`common._clinical_when` as first written: each date element of the profile's order asked for, by
    its dotted path, of the type's element table."""
    for element in common._DATE_ELEMENTS:
        first, *below = element.split(".")
        value = _field_by_table(resource, first)
        for name in below:
            value = getattr(value, name, None) if value is not None else None
        if value is not None:
            return common.when(resource, value, element), element
    return None, ""


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_clinical_when_and_the_view_are_the_slow_readers(path: Path) -> None:
    for record in load_file(path):
        for resources in record.resources.values():
            for resource in resources:
                expected = common._clinical_when(resource)
                assert expected == _slow_clinical_when(resource)
                assert common.clinical_when(resource) == expected
                assert common.clinical_when(resource) == expected  # remembered
        for as_of in AS_OF_DATES:
            view = VisibleRecord(record, as_of)
            hidden = 0
            for rtype, resources in record.resources.items():
                shown = [r for r in resources if not common.after(r, as_of)]
                assert view.of_type(rtype) == shown
                assert all(a is b for a, b in zip(view.of_type(rtype), shown, strict=True))
                hidden += len(resources) - len(shown)
            assert view.hidden() == hidden
            assert all(view.ref(r) == record.ref(r) for resources in record.resources.values() for r in resources)


@pytest.mark.parametrize("path", every_bundle.BUNDLES, ids=lambda p: p.name)
def test_the_view_of_an_undated_record_is_the_plain_one(path: Path) -> None:
    """`common.after` and `common.clinical_day` tell a loaded day or time by its calendar day without a
    `When`: a view built on a record none of whose dates was read yet shows and hides what the plain
    reading (`_clinical_when`, then `When.after_day`) does, as of each date, and each resource's day
    is the plain reading's; and every time of the record, remembered by its zone, is the `When` read
    afresh."""
    try:
        records = load_file(path)
    except FhirVcfError:
        return  # the bundles that do not load are other tests' business
    for record in records:
        for as_of in (*AS_OF_DATES, *every_bundle.AS_OF_DATES):
            for resources in record.resources.values():
                for resource in resources:
                    resource._memo = None  # as the loader gives it: no date read yet
            view = VisibleRecord(record, as_of)
            for rtype, resources in record.resources.items():
                plain = [r for r in resources if (found := common._clinical_when(r)[0]) is None
                         or not found.after_day(as_of)]
                assert all(a is b for a, b in zip(view.of_type(rtype), plain, strict=True))
        for resources in record.resources.values():
            for resource in resources:  # a time remembered by its zone (`clinical_time.parse`) as read afresh
                resource._memo = None
                found = common._clinical_when(resource)[0]
                assert common.clinical_day(resource) == (found.day if found is not None else None)
                value = common._clinical_value(resource)[0]
                if type(value) is datetime:
                    assert clinical_time.parse(value) == clinical_time._instant(value, value.isoformat())


@pytest.mark.parametrize("path", every_bundle.BUNDLES, ids=lambda p: p.name)
def test_a_kept_day_is_the_plain_one(path: Path) -> None:
    """`common._day_or_when` keeps its answer in a resource's memory: asked again, in either order
    with `clinical_when` and as of any date, `after` and `clinical_day` give what the plain reading
    (`_clinical_when`, read afresh each time) gives."""
    try:
        records = load_file(path)
    except FhirVcfError:
        return
    dates = (*AS_OF_DATES, *every_bundle.AS_OF_DATES)
    for record in records:
        for resources in record.resources.values():
            for resource in resources:
                found = common._clinical_when(resource)[0]
                day = found.day if found is not None else None
                for when_first in (False, True):
                    resource._memo = None  # as the loader gives it
                    if when_first:
                        common.clinical_when(resource)
                    for _ in range(2):  # read, then kept
                        for as_of in dates:
                            assert common.after(resource, as_of) is (found is not None and found.after_day(as_of))
                        assert common.clinical_day(resource) == day
                    assert common._DAY in resource._memo


@pytest.mark.parametrize("value", [datetime(2025, 6, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
                                   datetime(2025, 7, 1, 0, 30, tzinfo=timezone(timedelta(hours=9))),
                                   datetime(2025, 7, 1, 0, 30), date(2025, 6, 30), date(2025, 7, 1),
                                   "2025-06", "2025-07", "2025-07-01T00:30:00+09:00"])
def test_after_reads_a_loaded_day_as_written(value: Any) -> None:
    """A time is after the as-of date, and is on its day, by the day it was written on (30 June 23:30 in
    Chicago is 1 July in UTC and still visible); a month or a text is read by `clinical_when`, as before."""
    record = builders.record(builders.encounter("e", "IMP", start="2025-06-09T10:00:00Z"))
    (enc,) = record.of_type("Encounter")
    enc.period.__dict__["start"] = value
    enc._memo = None
    plain = common._clinical_when(enc)[0]
    assert common.after(enc, date(2025, 6, 30)) is plain.after_day(date(2025, 6, 30))
    # A day or a time leaves the answer it read kept (`common._DAY`), and no half-read date behind.
    assert set(enc._memo) <= {"clinical_when", common._DAY}
    kept = enc._memo[common._DAY]
    assert (kept.day if isinstance(kept, clinical_time.When) else kept) == plain.day
    enc._memo = None
    assert common.clinical_day(enc) == plain.day


def test_models_built_elsewhere_are_read_by_the_slow_readers() -> None:
    report = DiagnosticReport.model_validate({
        "resourceType": "DiagnosticReport", "id": "r", "status": "final", "code": {"text": "MRI thoracic spine"},
        "effectiveDateTime": "2025-06-02T10:00:00Z", "conclusion": "Acute T12 compression fracture.",
        "presentedForm": [{"contentType": "text/plain", "data": "Tm8gcmV0cm9wdWxzaW9uLg=="}],
    })
    assert not isinstance(report, Element)
    for name in ("code", "conclusion", "note", "valueString", "noSuchElement"):
        assert record_module.field(report, name) is _field_by_table(report, name)
        assert common.reader(report)(name) is _field_by_table(report, name)
    texts = common._free_texts(report)
    assert texts == _slow_free_texts(report)
    assert common.report_texts(report) == _slow_report_texts(report)
    assert [e for e, _ in texts] == ["code.text", "conclusion", "presentedForm[0]"]
    assert common.clinical_when(report) == common._clinical_when(report)
    assert common.clinical_when(report)[1] == "effectiveDateTime"


def _icd_codes() -> set[str]:
    codes = {p for value in vars(icd10cm).values() if isinstance(value, tuple)
             for p in value if isinstance(p, str)}
    for path in BUNDLES:
        for _, resource in _resources(path):
            for coding, _ in common.codings(record_module.field(resource, "code")):
                if coding.system == "icd-10-cm":
                    codes.add(coding.code)
    variants = {v for c in codes for v in (c, c.lower(), c.replace(".", ""), f" {c} ", c[:3], c + "XA")}
    return variants | {"", "D68.5", "D68.59", "d685", "M46.2", "M462", "Z99"}


def test_icd_prefixes_match_as_each_prefix_did() -> None:
    lists = [value for value in vars(icd10cm).values()
             if isinstance(value, tuple) and value and all(isinstance(p, str) for p in value)]
    assert len(lists) > 5
    codes = _icd_codes()
    for prefixes in [*lists, ("",), (), ("M80.0", "m80.8 ")]:
        keyed = ctx.icd_prefixes(prefixes)
        for code in codes:
            slow = any(ctx.icd_key(code).startswith(ctx.icd_key(p)) for p in prefixes)
            assert ctx.icd_key(code).startswith(keyed) is slow, (code, prefixes)


_LEVEL_TEXTS = [
    "Osteoporotic compression fracture T12",
    "Compression fx L1; old healed T8 fx",
    "T12 fracture. Prior L3-L5 fusion.",
    "Hx T8 fx 2018, healed. New L1 compression fracture.",
    "Stenosis at L4-5",
    "T11-L1 fractures",
    "No fracture at T12. L2 wedge deformity",
    "s/p T10 kyphoplasty; acute L1 burst fracture",
    "Fracture of T12 vertebra\nL1 height loss 30%",
    "L1 VCF 2.5 cm retropulsion",
]


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_fracture_text_levels_are_the_slow_readers(path: Path) -> None:
    values = list(_LEVEL_TEXTS)
    for _, resource in _resources(path):
        values += [v for v, _ in common.texts(record_module.field(resource, "code"))]
        values += [v for v, _ in common.notes(resource)]
        if resource.get_resource_type() == "DiagnosticReport":
            values += [v for v, _ in imaging._report_texts(resource)]
    for value in values:
        assert fractures._fracture_text_levels(value) == _slow_fracture_text_levels(value), value


def test_the_level_texts_take_each_branch() -> None:
    """The texts above reach every branch: no level, levels with no fracture sentence, one sentence that
    is the whole text, and several sentences."""
    assert _slow_fracture_text_levels("Osteoporosis") == []
    assert _slow_fracture_text_levels("Stenosis at L4-5") == ["L4", "L5"]
    whole = "Osteoporotic compression fracture T12"
    assert [s for s, _ in fractures._fracture_sentences(whole)] == [whole]
    assert len(fractures._fracture_sentences("T12 fracture. Prior L3-L5 fusion. L1 fracture.")) == 2
    assert assertion.reading(whole).sentences == [(0, len(whole))]


def test_short_fracture_texts_are_remembered_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    fractures._short_text_levels.cache_clear()
    short = "Compression fracture T12"
    first = fractures._fracture_text_levels(short)
    assert first == ["T12"] and fractures._short_text_levels.cache_info().currsize == 1
    first.append("L5")  # a caller's list is its own
    assert fractures._fracture_text_levels(short) == ["T12"]
    assert fractures._short_text_levels.cache_info().hits == 1  # answered from what is kept
    monkeypatch.setattr(fractures, "_read_text_levels", lambda value: ["C1"])
    assert fractures._fracture_text_levels(short) == ["T12"]  # not read again
    long = "Compression fracture T12. " + "Stable. " * 30
    assert len(long) > fractures._SHORT_TEXT and fractures._fracture_text_levels(long) == ["C1"]  # read each time
    assert fractures._short_text_levels.cache_info().currsize == 1  # long not kept
    assert fractures._short_text_levels.cache_info().maxsize == 10_000  # bounded
    fractures._short_text_levels.cache_clear()


def _slow_context_text(scan: fractures.FractureScan, ref: str, element: str, value: str) -> None:
    """`fractures.context_text` before issue 11's ninth round: each family's mentions read afresh."""
    present = fractures._ANY_CONTEXT_TERM.present(value)
    for key, signals, term_value in (
        ("osteoporosis", scan.osteoporosis, False), ("malignancy", scan.malignancy, True),
        ("myeloma", scan.myeloma, False), ("healed", scan.healed, False), ("kyphosis", scan.kyphosis, False),
    ):
        if key not in present:
            continue
        for m, said in assertion.scan(fractures._CONTEXT_TERMS[key], value):
            ev = Evidence(ref, element, Method.TEXT, said.said())
            normal = signals is scan.kyphosis and fractures._normal_curve(value, m.start(), m.end())
            if normal or said.evidence == "absent":
                signals.negated.append(ev)
            elif fractures._states(said):
                signals.affirmed.append(ev)
                if term_value:
                    signals.values.append(m.group(0).lower())


def _context_of(scan: fractures.FractureScan) -> list[tuple[list[Evidence], list[Evidence], list[str]]]:
    signals = (scan.osteoporosis, scan.malignancy, scan.myeloma, scan.healed, scan.kyphosis)
    return [(s.affirmed, s.negated, s.values) for s in signals]


_CONTEXT_TEXTS = [
    "Age-related osteoporosis with current pathological fracture, vertebra(e)",
    "No evidence of osteoporosis.", "Possible metastatic disease; multiple myeloma not excluded.",
    "Metastatic breast cancer. History of multiple myeloma.", "Normal thoracic kyphosis.",
    "Marked kyphosis. Old healed T8 fracture.", "Family history: mother had osteoporosis.",
    "Normal healed fracture at T8 (a normal curve is kyphosis' only).",
    "Osteoporosis. " + "Stable alignment. " * 20,  # long: read each time
]


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_context_text_is_the_slow_reader(path: Path) -> None:
    """`context_text` (a short text's mentions remembered) gives each family the evidence, negations and
    terms that reading every mention afresh gives, the first time and from memory."""
    values = list(_CONTEXT_TEXTS)
    for _, resource in _resources(path):
        values += [v for v, _ in common.texts(record_module.field(resource, "code"))]
        values += [v for v, _ in common.notes(resource)]
        values += [v for _, v in common.texts_of(resource)]
    for value in values:
        expected = fractures.FractureScan()
        _slow_context_text(expected, "Condition/c", "code.text", value)
        for _ in range(2):
            found = fractures.FractureScan()
            fractures.context_text(found, "Condition/c", "code.text", value)
            assert _context_of(found) == _context_of(expected), value


def test_context_texts_take_each_branch() -> None:
    """The texts above are affirmed, negated, normal curves, hedged and someone else's; short and long."""
    scan = fractures.FractureScan()
    for value in _CONTEXT_TEXTS:
        fractures.context_text(scan, "Condition/c", "code.text", value)
    assert scan.osteoporosis.affirmed and scan.osteoporosis.negated and scan.kyphosis.negated
    assert scan.kyphosis.affirmed and scan.healed.affirmed and "metastatic" in scan.malignancy.values
    assert len(_CONTEXT_TEXTS[-1]) > fractures._SHORT_TEXT


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_remembered_assertions_are_read_afresh(path: Path) -> None:
    for record in load_file(path):
        for _, _, _, body in common.free_texts(record):
            kept = assertion.reading(body)
            for m in re.finditer(r"\w+", body[:300]):
                first = kept.read(m.start(), m.end())
                assert first == assertion.TextReading(body)._read(m.start(), m.end()), (body, m)
                assert (kept.read(m.start(), m.end()) is first) == (len(body) <= assertion._SHORT_TEXT)


# --- symptoms: the stays, read when a score first needs them ---


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_the_rdq_gate_is_the_rdq_search(path: Path) -> None:
    bodies = ["RDQ 19", "Roland-Morris score 14/24", "roland morris", "RMDQ: 9", "xRDQ 3", "RDQs", "ſ", ""]
    for record in load_file(path):
        bodies += [body for _, _, _, body in common.free_texts(record)]
    for body in bodies:
        assert symptoms._RDQ_TERMS.may_match(body) == bool(symptoms._RDQ_MENTION.search(body)), body
        assert symptoms._RDQ_TERMS.may_match(body) == bool(symptoms._RDQ_MENTION.search(body)), body  # remembered


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_lazy_stays_are_the_stays(path: Path) -> None:
    for record in load_file(path):
        lazy = symptoms._LazyStays(record)
        assert lazy.get() == symptoms._stays(record)
        assert lazy.get() is lazy.get()


def _with_period_end(value: Any) -> Any:
    found = builders.record(builders.encounter("e", "IMP", start="2025-06-09T10:00:00Z", end="2025-06-10T10:00:00Z"))
    (enc,) = found.of_type("Encounter")
    enc.period.__dict__["end"] = value  # what no loader gives: a period the reading refuses
    return found


@pytest.mark.parametrize(("value", "error"), [
    ("2025-13", InputError),  # text: not a FHIR date
    (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), OverflowError),  # before year 1 in UTC
])
def test_a_period_the_reading_refuses_is_refused_at_once(value: Any, error: type[Exception]) -> None:
    """A record whose stays may not be read raises as `_stays` always did, with no score asking."""
    record = _with_period_end(value)
    with pytest.raises(error) as slow:
        symptoms._stays(record)
    with pytest.raises(error) as fast:
        symptoms.map_symptoms(record, as_of=date(2025, 6, 30), episode_start=None)
    assert str(fast.value) == str(slow.value)


def test_written_periods_asks_every_encounters_period() -> None:
    """Any Encounter's period start or end that may fail sends the record to the eager reading, the
    last Encounter's as the first's; an Encounter with no period has nothing to read."""
    encounters = [builders.encounter(f"e{i}", "AMB", start=f"2025-06-0{i}T10:00:00Z", end=f"2025-06-0{i}T11:00:00Z")
                  for i in range(1, 4)]
    plain = builders.record(*encounters, builders.encounter("none", "AMB"))
    assert not symptoms._written_periods(plain)
    for which, element in ((0, "start"), (2, "end"), (2, "start")):
        found = builders.record(*encounters)
        encounter = found.of_type("Encounter")[which]
        period = copy.copy(encounter.period)  # its own: a period read from the same words is shared
        period.__dict__[element] = "2025-13"  # what no loader gives: a period the reading refuses
        encounter.__dict__["period"] = period
        assert symptoms._written_periods(found)
        assert not symptoms._written_periods(builders.record(*encounters))


def test_which_period_values_may_fail() -> None:
    assert not symptoms._may_fail(None)
    assert not symptoms._may_fail(date(1, 1, 1))
    assert not symptoms._may_fail(datetime(2025, 6, 1, 10, tzinfo=UTC))
    assert symptoms._may_fail(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))
    assert symptoms._may_fail("2025-06")
    assert symptoms._may_fail(20250601)
    assert not symptoms._may_fail(None, datetime(2025, 6, 1, 10, tzinfo=UTC))  # a period: its start and end
    assert symptoms._may_fail(date(2025, 6, 1), "2025-06")
    assert symptoms._may_fail("2025-06", None)
    assert symptoms._LazyStays(_with_period_end(datetime(2025, 6, 10, tzinfo=UTC)))._stays is None  # read later
    assert symptoms._LazyStays(_with_period_end("2025-06"))._stays is not None  # read now


# --- codings: one Coding per (system, code, display) as written ---


def _slow_coding(c: Any) -> Coding:
    """`common._codings`' Coding before issue 11, made afresh."""
    system = system_alias(c.system)
    return Coding(system, spelled(c.code) if system == "icd-10-cm" else c.code, c.display or "")


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_remembered_codings_are_the_codings_made_afresh(path: Path) -> None:
    written = [node for _, resource in _resources(path) for node in _nodes(resource)
               if type(node).__name__ == "Coding" and getattr(node, "code", None)]
    written += [SimpleNamespace(system="http://hl7.org/fhir/sid/icd-10-cm", code="m8008xa", display=None),
                SimpleNamespace(system=None, code="X", display="")]
    for c in written:
        assert common.coding_of(c.system, c.code, c.display) == _slow_coding(c)
        assert common.coding_of(c.system, c.code, c.display) == _slow_coding(c)  # remembered


def test_the_codings_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "_CODINGS", {})
    monkeypatch.setattr(common, "_CODINGS_LIMIT", 3)
    for i in range(10):
        assert common.coding_of("http://loinc.org", f"{i}-1", None) == Coding("loinc", f"{i}-1", "")
        assert len(common._CODINGS) <= 3


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_resource_labels_get_answers_as_mapping_get(path: Path) -> None:
    """`ResourceLabels.get` skips Mapping.get's raised-and-caught KeyError: the same label for every
    reference the record shows, the default for one it does not, and nothing described twice."""
    from collections.abc import Mapping

    from fhir_vcf.mappers.describe import ResourceLabels

    try:
        records = load_file(path)
    except InputError:
        return
    for record in records:
        fast, slow = ResourceLabels(record), ResourceLabels(record)
        references = [*slow, "Observation/not-there", "", "urn:uuid:nothing"]
        for reference in references + references:
            assert fast.get(reference) == Mapping.get(slow, reference)
            assert fast.get(reference, "none") == Mapping.get(slow, reference, "none")
        assert fast._labels.keys() == slow._labels.keys()


@pytest.mark.parametrize("value", ["2025-13", "yesterday", "2025-02-30"])
def test_a_clinical_date_the_reading_refuses_is_the_same_error(value: str) -> None:
    """`common._clinical_when` reads the date inline: a value that is no FHIR date is the InputError
    `common.when` gives, naming the resource and the element, from the view as from the reader."""
    record = builders.record(builders.encounter("e", "IMP", start="2025-06-09T10:00:00Z"))
    (enc,) = record.of_type("Encounter")
    enc.period.__dict__["start"] = value  # what no loader gives: a date the reading refuses
    with pytest.raises(InputError) as slow:
        common.when(enc, value, "period.start")
    for read in (common._clinical_when, common.clinical_when, lambda r: VisibleRecord(record, date(2025, 6, 30))):
        with pytest.raises(InputError) as fast:
            read(enc)
        assert (str(fast.value), fast.value.resource, fast.value.element) == (
            str(slow.value), slow.value.resource, slow.value.element)


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.name)
def test_remembered_codings_and_texts_are_read_afresh(path: Path) -> None:
    """`common.codings` and `common.texts` answer a remembered concept without `_kept`: the same
    answer as reading it afresh, first time and again, for every element and list of the bundles."""
    for _, resource in _resources(path):
        for node in _nodes(resource):
            for concept in (node, *(v for v in node.__dict__.values() if isinstance(v, list))):
                for element in ("code", "category"):
                    for read, fresh in ((common.codings, common._codings), (common.texts, common._texts)):
                        expected = list(fresh(concept, element))
                        assert list(read(concept, element)) == expected
                        assert list(read(concept, element)) == expected  # remembered

"""Imaging: one pass over ImagingStudy, DiagnosticReport, Observation (and edema Conditions).

Every coded finding becomes a `Signal` here, and every text goes to `imaging_text`, which reads
its sentences into signals too; each signal carries the levels it names, its date, its modality
(from the study, the report's study link, LOINC code or words) and its evidence.
`imaging_facts.imaging_facts` then buckets the signals by level once: no per-level rescans of the
record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from fhir_vcf.facts import EpisodeEvent, Evidence, Method
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import common, sites, text
from fhir_vcf.mappers.codes import dicom, finding, snomed
from fhir_vcf.mappers.describe import label_of
from fhir_vcf.mappers.imaging_signals import ImagingScan, Signal, SignalSource
from fhir_vcf.mappers.imaging_text import analyze_text

_MODALITY_ORDER = ("MR", "NM", "PT", "CT", "DX", "CR", "RF")

_I = re.IGNORECASE
# Report kinds in words (code.text, category, displays) when no study link or LOINC code says.
_MODALITY_WORDS = tuple((modality, text.Caseless(re.compile(words, _I))) for modality, words in (
    ("MR", r"\b(?:mri|mr|magnetic\s+resonance|stir)\b"),
    ("NM", r"\b(?:bone\s+scan|scintigra\w*|spect(?:[-/]ct)?|nuclear\s+medicine|nm)\b"),
    ("PT", r"\b(?:pet(?:[-/]ct)?|positron)\b"),
    ("CT", r"\b(?:ct|computed\s+tomography|cat\s+scan)\b"),
    ("DX", r"\b(?:x-?ray|xr|radiograph\w*|plain\s+films?|dx|cr)\b"),
))
# The five families joined: a kind naming none of them (most reports: "CBC panel", "Laboratory") is
# searched once, not five times.
_ANY_MODALITY_WORD = text.Caseless(re.compile("|".join(f"(?:{w.pattern.pattern})" for _, w in _MODALITY_WORDS), _I))
_STIR = re.compile(r"\bstir\b", _I)  # a STIR series, noted on the study's line

BOOLEAN_FINDINGS = {
    finding.HEIGHT_LOSS_PROGRESSION: "progression",
    finding.RETROPULSION: "retropulsion",
    finding.CANAL_COMPROMISE: "retropulsion",
    finding.VERTEBRA_PLANA: "plana",
    finding.INTRAVERTEBRAL_CLEFT: "cleft",
}


def _modality_of_codings(codings: Iterable[Any]) -> list[str]:
    found = []
    for c in codings:
        if c is not None and c.code in dicom.MODALITIES:
            found.append(c.code)
    return found


def _primary(modalities: Iterable[str]) -> str | None:
    present = set(modalities)
    return next((m for m in _MODALITY_ORDER if m in present), None)


def _kind_modality(kind: Any) -> str | None:
    """The modality a report's kind (its `code`, a document's `type`) names: its LOINC code
    (`dicom.REPORT_LOINC_MODALITY`), else its words (`_words_modality`). Remembered on the concept
    (`common.memo_of`): a kind is shared by every copy of its content, so a record's lab panels,
    which repeat a few kinds on every visit, are read once."""
    memo = common.memo_of(kind)
    found = memo.get(_KIND_KEY) if memo is not None else None
    if found is None:
        found = ""
        for coding, _ in common.codings(kind, "code"):
            if coding.system == "loinc" and coding.code in dicom.REPORT_LOINC_MODALITY:
                found = dicom.REPORT_LOINC_MODALITY[coding.code]
                break
        else:
            found = _words_modality(kind)
        if memo is not None:
            memo[_KIND_KEY] = found
    return found or None


def _category_modality(categories: list[Any]) -> str | None:
    """The modality the first of a report's categories whose words name one names (`_words_modality`,
    remembered on each category as `_kind_modality` is)."""
    for category in categories:
        memo = common.memo_of(category)
        found = memo.get(_WORDS_KEY) if memo is not None else None
        if found is None:
            found = _words_modality(category)
            if memo is not None:
                memo[_WORDS_KEY] = found
        if found:
            return found
    return None


_KIND_KEY = "imaging.kind_modality"  # the keys of what `_kind_modality` and `_category_modality` remember
_WORDS_KEY = "imaging.words_modality"


def _words_modality(concept: Any) -> str:
    """The modality named by the first of a CodeableConcept's words that names one (its text, then its
    displays: `common.texts`); "" when none does."""
    for value, _ in common.texts(concept, "code"):
        if value:
            found = _search_modality(value)
            if found:
                return found
    return ""


def _search_modality(value: str) -> str:
    """The first of the five families (MR, NM, PT, CT, DX) the words name; "" when none does."""
    low = text.ascii_lower(value)  # one lower-casing for the five families
    if _ANY_MODALITY_WORD.found(value, low=low):
        for modality, words in _MODALITY_WORDS:
            if words.found(value, low=low):
                return modality
    return ""


def scan_imaging(record: Any) -> ImagingScan:
    """One pass over the imaging resources of a (date-filtered) record."""
    scan = ImagingScan()
    studies: dict[str, SignalSource] = {}
    reports: dict[str, SignalSource] = {}
    result_of: dict[str, SignalSource] = {}

    for study in record.of_type("ImagingStudy"):
        ref = record.ref(study)
        day = common.clinical_day(study)
        mods = _modality_of_codings(study.modality or [])
        series_levels: list[str] = []
        stir = False
        for i, series in enumerate(study.series or []):
            mod = series.modality.code if series.modality and series.modality.code in dicom.MODALITIES else None
            if mod:
                mods.append(mod)
            level = sites.level_of_coding(series.bodySite)
            desc_levels = text.find_levels(series.description)
            levels = tuple(sort_levels(([level] if level else []) + desc_levels))
            series_levels.extend(levels)
            if series.description and _STIR.search(series.description):
                stir = True
            if levels:
                method = Method.CODE if level else Method.TEXT
                found = f"{mod or 'series'} of {', '.join(levels)}"
                ev = Evidence(ref, f"series[{i}].bodySite" if level else f"series[{i}].description", method, found)
                scan.signals.append(
                    Signal("studied", True, levels, day, mod or _primary(mods), ev,
                           advanced=(mod or _primary(mods)) in dicom.ADVANCED)
                )
        primary = _primary(mods)
        if not series_levels and primary:
            ev = Evidence(ref, "modality", Method.CODE, f"{primary} study")
            scan.signals.append(Signal("studied", True, (), day, primary, ev, advanced=primary in dicom.ADVANCED))
        unique_levels = tuple(sort_levels(series_levels))
        source = SignalSource(ref, day, primary, unique_levels if len(unique_levels) == 1 else ())
        studies[ref] = source
        line = f"{'/'.join(dict.fromkeys(m for m in _MODALITY_ORDER if m in set(mods))) or 'imaging'} "
        line += f"{day.isoformat() if day else 'undated'} ({ref})"
        if unique_levels:
            line += ", " + ", ".join(unique_levels)
        if stir:
            line += ", STIR"
        scan.lines.append((day or date.min, line))
        if day is not None:
            scan.events.append(EpisodeEvent("imaging", day, ref, label_of(study, record), primary or ""))
        for value, element in _study_texts(study):
            analyze_text(scan, source, element, value)

    # Reports: DiagnosticReports, and DocumentReferences (radiology and clinic notes as attachments),
    # read alike (input profile, "report text"); a document's kind is its `type`.
    for report in record.of_type("DiagnosticReport", "DocumentReference"):
        ref = record.ref(report)
        day = common.clinical_day(report)
        get = common.reader(report)  # a record holds dozens of reports (every lab panel): one reader each
        kind = get("code") or get("type")
        study_links = get("imagingStudy") or []
        modality: str | None = None
        fallback: tuple[str, ...] = ()
        source_day = day
        if study_links:  # most reports (every lab panel) link no study: nothing to look up
            linked = [studies[r] for r in (_target_ref(record, x) for x in study_links) if r in studies]
            modality = _primary(s.modality for s in linked if s.modality)
            fallback = next((s.fallback_levels for s in linked if s.fallback_levels), ())
            source_day = day or next((s.day for s in linked if s.day), None)
        if modality is None:
            modality = _kind_modality(kind)
        if modality is None:  # the category's words only when the kind's name no modality
            modality = _category_modality(report.category or [])
        source = SignalSource(ref, source_day, modality, fallback, report=True)
        reports[ref] = source
        for result in get("result") or []:
            target = _target_ref(record, result)
            if target:
                result_of[target] = source
        report_texts = _report_texts(report)
        for value, element in report_texts:
            analyze_text(scan, source, element, value)
            scan.texts.append((ref, element, value))
        if modality or study_links:
            summary = next((v for v, e in report_texts if e == "conclusion"), "")
            line = f"{modality or 'imaging'} report {source.day.isoformat() if source.day else 'undated'} ({ref})"
            if summary:
                line += ": " + (summary if len(summary) <= 80 else summary[:79] + "…")
            scan.lines.append((source.day or date.min, line))
            if source.day is not None:
                scan.events.append(EpisodeEvent("imaging", source.day, ref, label_of(report, record), modality or ""))

    for obs in record.of_type("Observation"):
        _observation(scan, record, obs, studies, reports, result_of)

    for cond in record.of_type("Condition"):
        if any(c.system == "snomed" and c.code in snomed.EDEMA for c, _ in common.codings(cond.code, "code")):
            ref = record.ref(cond)
            levels, _, _ = sites.body_site_levels(ref, getattr(cond, "bodySite", None))
            if levels and not common.is_historical(cond):
                ev = Evidence(ref, "code", Method.CODE, f"SNOMED CT 79654002 (edema) at {', '.join(levels)}")
                scan.signals.append(
                    Signal("acuity", True, tuple(levels), common.clinical_day(cond), None, ev,
                           advanced=True, acuity_value="marrow-edema")
                )
    return scan


def _target_ref(record: Any, reference: Any) -> str | None:
    target = record.resolve(reference)
    return record.ref(target) if target is not None else None


def _study_texts(study: Any) -> Iterable[tuple[str, str]]:
    if study.description:
        yield study.description, "description"
    for i, series in enumerate(study.series or []):
        if series.description:
            yield series.description, f"series[{i}].description"
    yield from common.notes(study)


def _report_texts(report: Any) -> list[tuple[str, str]]:
    """The report's text (conclusion, presentedForm, a document's attachments: `common.report_texts`),
    then its coded conclusions' words."""
    found = list(common.report_texts(report))
    conclusion_codes = common.field(report, "conclusionCode")
    if conclusion_codes:
        found.extend(common.texts(conclusion_codes, "conclusionCode"))
    return found


def _observation(
    scan: ImagingScan,
    record: Any,
    obs: Any,
    studies: dict[str, SignalSource],
    reports: dict[str, SignalSource],
    result_of: dict[str, SignalSource],
) -> None:
    ref = record.ref(obs)
    codes = list(common.codings(obs.code, "code"))
    finding_code: str | None = None  # the first imaging finding code
    edema_code = False
    for c, _ in codes:  # one plain loop for both questions (most Observations are labs: neither)
        if c.system == "finding":
            if finding_code is None and c.code in finding.IMAGING_FINDINGS:
                finding_code = c.code
        elif c.system == "snomed" and c.code in snomed.EDEMA:
            edema_code = True
    link: SignalSource | None = result_of.get(ref)
    derived, part_of = obs.derivedFrom, obs.partOf
    if derived or part_of:
        for reference in [*(derived or []), *(part_of or [])]:
            target = _target_ref(record, reference)
            if target in studies:
                link = studies[target]
                break
            if target in reports:
                link = reports[target]
                break
    if finding_code is None and not edema_code and link is None and not _imaging_category(obs):
        return
    levels, _, _ = sites.body_site_levels(ref, obs.bodySite)
    if not levels and link is not None:
        levels = list(link.fallback_levels)
    day = common.clinical_day(obs) or (link.day if link else None)
    modality = link.modality if link else None
    source = SignalSource(ref, day, modality, tuple(levels))
    lv = tuple(levels)
    at = f" at {', '.join(lv)}" if lv else ""
    if finding_code is not None or edema_code:
        code = finding_code or "marrow-edema"
        element = next(p for c, p in codes if (c.system == "finding" and c.code == code) or c.code in snomed.EDEMA)
        if code == finding.HEIGHT_LOSS_PERCENT:
            value = _number(obs)
            unit = getattr(obs.valueQuantity, "code", None) or getattr(obs.valueQuantity, "unit", None)
            if unit not in (None, "%", "percent"):
                return  # a height in mm is not a percentage: never converted by guess
            if value is not None and 0 <= value <= 100:
                ev = Evidence(ref, "valueQuantity", Method.CODE, f"height loss {value:g} %{at}")
                scan.signals.append(Signal("height", value, lv, day, modality, ev))
        else:
            flag = obs.valueBoolean
            if flag is None and edema_code and not finding_code:
                flag = True  # an edema Observation without a value asserts the edema
            if flag is None:
                return
            label = f"finding {code} = {str(flag).lower()}{at}"
            ev = Evidence(ref, element, Method.CODE, label)
            if code in (finding.MARROW_EDEMA, finding.INCREASED_UPTAKE):
                if edema_code and not lv:
                    return  # SNOMED edema counts only with a vertebra body site
                value_name = "marrow-edema" if code == finding.MARROW_EDEMA else "increased-uptake"
                scan.signals.append(
                    Signal("acuity", bool(flag), lv, day, modality or ("MR" if value_name == "marrow-edema" else "NM"),
                           ev, advanced=True, acuity_value=value_name if flag else None)
                )
            elif code in BOOLEAN_FINDINGS:
                scan.signals.append(Signal(BOOLEAN_FINDINGS[code], bool(flag), lv, day, modality, ev))
    value_string = getattr(obs, "valueString", None)
    if value_string:
        analyze_text(scan, source, "valueString", value_string)
        scan.texts.append((ref, "valueString", value_string))
    for value, element in common.notes(obs):
        analyze_text(scan, source, element, value)
        scan.texts.append((ref, element, value))


def _imaging_category(obs: Any) -> bool:
    """Whether an Observation's category says imaging."""
    return any(c.code == "imaging" for c, _ in common.codings(obs.category or [], "category"))


def _number(obs: Any) -> float | None:
    quantity = getattr(obs, "valueQuantity", None)
    if quantity is not None and quantity.value is not None:
        return float(quantity.value)
    for attr in ("valueInteger", "valueDecimal"):
        value = getattr(obs, attr, None)
        if value is not None:
            return float(value)
    return None

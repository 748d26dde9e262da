"""Imaging: acuity (marrow edema / uptake), height loss, progression and the other morphology facts.

One pass over ImagingStudy, DiagnosticReport, Observation (and edema Conditions) turns every coded
finding and every sentence of report text into `Signal`s, each with the levels it names, its date,
its modality and its evidence. `imaging_facts` then buckets the signals by level once: no per-level
rescans of the record.

Acuity follows the clinical rules (I3): marrow edema on MRI or increased uptake on a bone scan /
SPECT / PET shows an acute or subacute fracture; a radiograph or CT shows the fracture but not its
age; an MRI without edema ("healed", "sclerotic", "chronic") says it is old.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fhir_vcf.facts import Evidence, Fact, Method, Status
from fhir_vcf.levels import sort_levels
from fhir_vcf.mappers import common, sites, text
from fhir_vcf.mappers.codes import dicom, finding, snomed
from fhir_vcf.mappers.fractures import SeenEvent

# Genant semiquantitative grades (clinical rules, "Genant"): words map to the lower bound of their
# band, moved just inside it where the band is open below, so that no number beyond what the text
# supports is invented (facts.py: mild -> 20, moderate -> 26, severe -> 41).
GENANT = {
    "mild": (20.0, "Genant mild (20–25 %)"),
    "moderate": (26.0, "Genant moderate (25–40 %)"),
    "severe": (41.0, "Genant severe (> 40 %)"),
}
_GENANT_GRADE = {"1": "mild", "2": "moderate", "3": "severe"}

_MODALITY_ORDER = ("MR", "NM", "PT", "CT", "DX", "CR", "RF")
_MAX_TEXT = 20_000  # characters of a presentedForm read; reports are short, attachments may not be

_I = re.IGNORECASE
# Report kinds in words (code.text, category, displays) when no study link or LOINC code says.
_MODALITY_WORDS = (
    ("MR", re.compile(r"\b(?:mri|mr|magnetic\s+resonance|stir)\b", _I)),
    ("NM", re.compile(r"\b(?:bone\s+scan|scintigra\w*|spect(?:[-/]ct)?|nuclear\s+medicine|nm)\b", _I)),
    ("PT", re.compile(r"\b(?:pet(?:[-/]ct)?|positron)\b", _I)),
    ("CT", re.compile(r"\b(?:ct|computed\s+tomography|cat\s+scan)\b", _I)),
    ("DX", re.compile(r"\b(?:x-?ray|xr|radiograph\w*|plain\s+films?|dx|cr)\b", _I)),
)

# Acuity cues (input profile, "acuity finding"). Edema and STIR/T2 hyperintensity imply MRI; uptake
# and avidity imply a bone scan / SPECT / PET; "acute", "chronic" need a known advanced modality.
# "BME" is the radiologists' abbreviation of bone marrow edema ("fx w/ BME").
_EDEMA = re.compile(r"\bo?edema(?:tous)?\b|\bBME\b", _I)
_SOFT_TISSUE = re.compile(
    r"(?:soft[-\s]tissue|paraspinal|paravertebral|prevertebral|subcutaneous|muscle|muscular|pulmonary|"
    r"interstitial|cord|facet|ligament\w*|disc)\s+(?:\w+\s+){0,2}$",
    _I,
)
_FLUID_SIGNAL = re.compile(
    r"\b(?:stir|t2)(?:[-\s]weighted)?(?:\s*:)?\s+(?:\w+\s+){0,2}?hyperintens\w*"
    r"|\bhyperintens\w*\s+(?:\w+\s+){0,4}?(?:on|in)\s+(?:the\s+)?(?:stir|t2|fluid[-\s]sensitive)\b"
    r"|\bstir\s+(?:signal\s+)?(?:abnormality|increase|bright)"
    # "STIR-bright", "bright on STIR", "bright on T2/STIR"
    r"|\bstir-bright\b|\bbright\s+on\s+(?:the\s+)?(?:t2\s*/\s*)?(?:stir|t2|fluid[-\s]sensitive)\b"
    # "increased T2/STIR signal", "increased STIR signal", "increased fluid signal"
    r"|\bincreased\s+(?:(?:t2|stir|fluid|fluid[-\s]sensitive)(?:\s*/\s*|\s+))+signal\b",
    _I,
)
_UPTAKE = re.compile(
    r"\bincreased\s+(?:\w+\s+){0,2}?(?:uptake|activity|tracer\s+accumulation)|\buptake\s+is\s+increased"
    r"|\b(?:(?:radio)?tracer|fdg)[-\s]avid\w*|\bavid\w*\b"
    # "intense tracer uptake", "marked uptake", "focal activity", "no abnormal uptake" (negated: no uptake)
    r"|\b(?:intense(?:ly)?|marked(?:ly)?|focal(?:ly)?|abnormal(?:ly)?)\s+"
    r"(?:(?:increased|radiotracer|tracer|radionuclide|osseous|bony)\s+){0,2}(?:uptake|activity|tracer\s+accumulation)",
    _I,
)
_ACUITY_CONTEXT = re.compile(r"marrow|\bbone|osseous|vertebr|fractur|compress|collaps|endplate|\bbody\b|spin", _I)
_ACUTE = re.compile(r"\b(?:sub)?acute\b", _I)
_CHRONIC = re.compile(r"\b(?:chronic|healed|sclerotic|remote)\b|(?<![-\w])old\b", _I)
_FRACTURE_CONTEXT = re.compile(r"fractur|compress|collaps|deformit|wedg|height|vertebr|\bbody\b|endplate|plana", _I)
_SEEN = re.compile(
    r"\b(?:fractur\w*|compression\s+deformit\w*|collapse[sd]?|wedg\w*\s+(?:deformit\w*|compression|fracture)"
    r"|height\s+loss|loss\s+of\s+(?:\w+\s+){0,2}?height|vertebra\s+plana)",
    _I,
)
_GENANT_WORDS = re.compile(
    r"\b(?P<grade>mild|moderate|severe)(?:ly)?\s+(?:(?!pain)\w+\s+){0,3}?"
    r"(?:compression|wedg\w*|height\s+loss|loss\s+of\s+(?:\w+\s+)?height|collapse|deformit\w*|fractur\w*)"
    r"|\bgenant\s+(?:grade\s+)?(?P<number>[123])\b",
    _I,
)
_PROGRESSION = re.compile(
    r"\bfurther\s+(?:\w+\s+){0,2}?(?:collapse|compression|height\s+loss|loss\s+of\s+(?:\w+\s+)?height)"
    r"|\bprogressi\w*\s+(?:\w+\s+){0,3}?(?:height\s+loss|loss\s+of\s+(?:\w+\s+)?height|collapse|compression|deformit\w*)"
    r"|\binterval\s+(?:progression|increase|worsening|collapse|further)"
    r"|\b(?:height\s+loss|collapse|compression|deformity)\s+(?:\w+\s+){0,3}?(?:has\s+|have\s+)?"
    r"(?:progressed|increased|worsened)"
    # "increased T12 compression", "worsening L1 compression deformity" (not cord / canal / root compression)
    r"|\b(?:increased|increasing|worsening|worsened)\s+(?:(?!cord\b|canal\b|nerve\b|thecal\b|root\b|pain\b)\w+\s+)"
    r"{0,2}?(?:height\s+loss|collapse|compression|deformit\w*)",
    _I,
)
# One report comparing two height-loss percentages: "increased from 25% to 40%", "now 40% (previously
# 25%)", "40%, increased from 25% on the prior study". Groups: a = the earlier value, b = the later one.
_PCT_A = r"(?P<a>\d{1,3}(?:\.\d+)?)\s*(?:%|percent)"
_PCT_B = r"(?P<b>\d{1,3}(?:\.\d+)?)\s*(?:%|percent)"
_PERCENT_CHANGE = (
    re.compile(rf"\bfrom\s+{_PCT_A}\s*(?:to|now)\s+{_PCT_B}", _I),
    re.compile(rf"{_PCT_B}[^.;\n]{{0,40}}?\b(?:previously|prior(?:ly)?|was|from|compared\s+(?:with|to))\s+"
               rf"{_PCT_A}", _I),
    re.compile(rf"\b(?:previously|prior(?:ly)?|was)\s+{_PCT_A}[^.;\n]{{0,40}}?\b(?:now|currently)\s+{_PCT_B}", _I),
)
_STABLE = re.compile(
    r"\b(?:stable|unchanged)\s+(?!burst)(?:\w+\s+){0,3}?(?:compression|collapse|fractur\w*|height|deformit\w*)"
    r"|\b(?:compression|collapse|fractur\w*|height|deformit\w*)\s+(?:\w+\s+){0,4}?(?:is|are|remains?)\s+"
    r"(?:stable|unchanged)"
    # Telegraphic report style, the state right after its subject: "height unchanged", "fracture stable".
    r"|\b(?:compression|collapse|fractur\w*|height|deformit\w*)\s+(?:stable|unchanged)\b"
    r"|\bno\s+(?:significant\s+)?interval\s+change",
    _I,
)
_HEIGHT_WORDS = re.compile(r"height|collapse|compress|wedg", _I)
_PLANA = re.compile(r"\bvertebra\s+plana\b", _I)
_CLEFT = re.compile(
    r"\bintravertebral\s+(?:vacuum\s+)?cleft|\bvacuum\s+cleft|\bk[üu]mmell|\bintravertebral\s+(?:gas|vacuum)", _I
)
_RETRO = re.compile(
    r"\bretropuls\w*(?:\s+(?:bone\s+|osseous\s+)?fragment)?|\bcanal\s+compromise|\bcompromise\s+of\s+the\s+(?:spinal\s+)?canal"
    r"|\bposterior\s+(?:cortical\s+)?wall\s+(?:involvement|fracture|disruption|breach|buckling|bowing|displacement)"
    r"|\b(?:involvement|disruption|breach|fracture)\s+of\s+the\s+posterior\s+(?:cortical\s+)?wall"
    r"|\bposterior\s+(?:cortical\s+)?wall\s+(?:is\s+)?involved",
    _I,
)
_RETRO_INTACT = re.compile(
    r"\bposterior\s+(?:cortical\s+)?wall\s+(?:is\s+|remains\s+)?intact|\bintact\s+posterior\s+(?:cortical\s+)?wall", _I
)
# Every word any imaging fact could come from: a text (or sentence) without one is skipped whole.
_ANY_CUE = re.compile(
    r"o?edema|\bBME\b|hyperintens|stir|uptake|avid|increased|activity|acute|chronic|healed|sclero|remote|\bold\b|fractur|compress|collaps"
    r"|wedg|height|plana|cleft|vacuum|k[üu]mmell|retropuls|canal|posterior\s+(?:cortical\s+)?wall|progress"
    r"|further|interval|stable|unchanged|mild|moderate|severe|genant|%|percent",
    _I,
)
# A disc space ("L4-5", "L5-S1", "T12/L1"): canal narrowing there is degenerative, not the fracture.
_DISC_LEVEL = re.compile(r"\b(?:th|[ctls])[\s\-]?\d{1,2}\s*[-/–]\s*(?:(?:th|[ctls])[\s\-]?)?\d{1,2}\b|\bdis[ck]", _I)
# Sentences end at ".", ";" or a line break; a decimal point ("2.5 cm") does not end one.
_SENTENCE = re.compile(r"[^.;\n]+(?:\.(?=\d)[^.;\n]*)*")
_OTHER_LEVELS = re.compile(
    r"\b(?:other|remaining|additional|adjacent)\s+(?:\w+\s+){0,2}?"
    r"(?:levels?|vertebra\w*|vertebral\s+bod\w+|fractures?|compression\s+fractures?)"
    r"|\belsewhere\b|\brest\s+of\s+the\s+(?:spine|vertebra\w*|levels)",
    _I,
)
_LEADING_LEVEL = re.compile(r"^\s*(?:and\s+)?(?:th|[ctls])[\s\-]?\d", _I)
_TRAILING_LEVEL = re.compile(r"(?:th|[ctls])[\s\-]?\d{1,2}\s*$", _I)

BOOLEAN_FINDINGS = {
    finding.HEIGHT_LOSS_PROGRESSION: "progression",
    finding.RETROPULSION: "retropulsion",
    finding.CANAL_COMPROMISE: "retropulsion",
    finding.VERTEBRA_PLANA: "plana",
    finding.INTRAVERTEBRAL_CLEFT: "cleft",
}


@dataclass(frozen=True)
class Signal:
    """One imaging statement.

    kind: "acuity" (value True = edema/uptake, False = none/old), "seen" (the fracture is shown),
      "studied" (a study covers the level), "height" (value = percent), "progression", "plana",
      "cleft", "retropulsion" (value bool).
    acuity_value: "marrow-edema" | "increased-uptake" for positive acuity.
    advanced: the statement comes from (or by its words implies) MRI / bone scan / SPECT / PET.
    """

    kind: str
    value: Any
    levels: tuple[str, ...]
    day: date | None
    modality: str | None
    evidence: Evidence
    advanced: bool = False
    acuity_value: str | None = None
    note: str = ""
    from_text: bool = False
    report_text: bool = False  # read from a report's conclusion / presented form (a radiologist's reading)


@dataclass
class _Source:
    """Where a statement came from: the resource, its date and modality, and a level to fall back on."""

    ref: str
    day: date | None
    modality: str | None
    fallback_levels: tuple[str, ...] = ()
    report: bool = False  # a DiagnosticReport: its words are the reading of the images


@dataclass
class ImagingScan:
    signals: list[Signal] = field(default_factory=list)
    lines: list[tuple[date, str]] = field(default_factory=list)
    texts: list[tuple[str, str, str]] = field(default_factory=list)  # (ref, element, text) for context terms

    def seen_events(self) -> list[SeenEvent]:
        """Imaging that shows a fracture, dated, for the onset check."""
        out = []
        for s in self.signals:
            if s.day is None or s.kind not in {"seen", "acuity", "height", "plana", "cleft"}:
                continue
            if s.modality is None:
                continue  # not known to be imaging (a clinic note's "fracture" is not a radiograph)
            if s.kind in {"plana", "cleft", "acuity", "height"} and not s.value:
                continue  # "no edema", "0 % height loss": no fracture shown
            label = f"{s.modality or 'imaging'} {s.day.isoformat()} ({s.evidence.reference})"
            out.append(SeenEvent(s.day, s.levels, label, s.evidence))
        return out

    def fracture_levels(self) -> tuple[list[str], list[Evidence]]:
        """Levels at which imaging shows a fracture (for a fracture Condition that names none)."""
        shown = [s for s in self.signals
                 if s.levels and (s.kind in {"seen", "height"} or (s.kind == "acuity" and s.value))]
        acute = {lv for s in self.signals if s.kind == "acuity" and s.value for lv in s.levels}
        old = {lv for s in self.signals if s.kind == "acuity" and not s.value and s.note == "age word"
               for lv in s.levels}
        # "Acute L1 fracture ... old healed T8 fracture": the current fracture Condition is not the old
        # one. A level imaging calls only old/healed/chronic is dropped, unless no other level is shown.
        current = {lv for s in shown for lv in s.levels if lv in acute or lv not in old}
        if current:
            shown = [s for s in shown if set(s.levels) & current]
        levels = [lv for s in shown for lv in s.levels if not current or lv in current]
        return sort_levels(levels), [s.evidence for s in shown]


def _modality_of_codings(codings: Iterable[Any]) -> list[str]:
    found = []
    for c in codings:
        if c is not None and c.code in dicom.MODALITIES:
            found.append(c.code)
    return found


def _primary(modalities: Iterable[str]) -> str | None:
    present = set(modalities)
    return next((m for m in _MODALITY_ORDER if m in present), None)


def _modality_from_words(*values: str | None) -> str | None:
    for value in values:
        if not value:
            continue
        for modality, pattern in _MODALITY_WORDS:
            if pattern.search(value):
                return modality
    return None


def _attachment_text(attachment: Any) -> str | None:
    """Plain-text report content (the R4B model has already decoded the base64 `data`)."""
    content_type = (getattr(attachment, "contentType", None) or "").lower()
    data = getattr(attachment, "data", None)
    if not data or not content_type.startswith("text/plain"):
        return None
    if isinstance(data, str):
        try:
            data = base64.b64decode(data)
        except (binascii.Error, ValueError):
            return None
    return data[:_MAX_TEXT].decode("utf-8", errors="replace")


def scan_imaging(record: Any) -> ImagingScan:
    """One pass over the imaging resources of a (date-filtered) record."""
    scan = ImagingScan()
    studies: dict[str, _Source] = {}
    reports: dict[str, _Source] = {}
    result_of: dict[str, _Source] = {}

    for study in record.of_type("ImagingStudy"):
        ref = record.ref(study)
        day = common.as_date(study.started) or common.clinical_date(study)[0]
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
            if series.description and re.search(r"\bstir\b", series.description, _I):
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
        source = _Source(ref, day, primary, unique_levels if len(unique_levels) == 1 else ())
        studies[ref] = source
        line = f"{'/'.join(dict.fromkeys(m for m in _MODALITY_ORDER if m in set(mods))) or 'imaging'} "
        line += f"{day.isoformat() if day else 'undated'} ({ref})"
        if unique_levels:
            line += ", " + ", ".join(unique_levels)
        if stir:
            line += ", STIR"
        scan.lines.append((day or date.min, line))
        for value, element in _study_texts(study):
            _analyze_text(scan, source, element, value)

    for report in record.of_type("DiagnosticReport"):
        ref = record.ref(report)
        day = common.clinical_date(report)[0]
        linked = [studies[r] for r in (_target_ref(record, x) for x in report.imagingStudy or []) if r in studies]
        modality = _primary(s.modality for s in linked if s.modality)
        if modality is None:
            for coding, _ in common.codings(report.code, "code"):
                if coding.system == "loinc" and coding.code in dicom.REPORT_LOINC_MODALITY:
                    modality = dicom.REPORT_LOINC_MODALITY[coding.code]
                    break
        if modality is None:
            words = [v for v, _ in common.texts(report.code, "code")]
            words += [v for v, _ in common.texts(report.category or [], "category")]
            modality = _modality_from_words(*words)
        fallback = next((s.fallback_levels for s in linked if s.fallback_levels), ())
        source = _Source(ref, day or next((s.day for s in linked if s.day), None), modality, fallback, report=True)
        reports[ref] = source
        for result in report.result or []:
            target = _target_ref(record, result)
            if target:
                result_of[target] = source
        report_texts = list(_report_texts(report))
        for value, element in report_texts:
            _analyze_text(scan, source, element, value)
            scan.texts.append((ref, element, value))
        if modality or report.imagingStudy:
            summary = next((v for v, e in report_texts if e == "conclusion"), "")
            line = f"{modality or 'imaging'} report {source.day.isoformat() if source.day else 'undated'} ({ref})"
            if summary:
                line += ": " + (summary if len(summary) <= 80 else summary[:79] + "…")
            scan.lines.append((source.day or date.min, line))

    for obs in record.of_type("Observation"):
        _observation(scan, record, obs, studies, reports, result_of)

    for cond in record.of_type("Condition"):
        if any(c.system == "snomed" and c.code in snomed.EDEMA for c, _ in common.codings(cond.code, "code")):
            ref = record.ref(cond)
            levels, _, _ = sites.body_site_levels(ref, getattr(cond, "bodySite", None))
            if levels and not common.is_historical(cond):
                ev = Evidence(ref, "code", Method.CODE, f"SNOMED CT 79654002 (edema) at {', '.join(levels)}")
                scan.signals.append(
                    Signal("acuity", True, tuple(levels), common.clinical_date(cond)[0], None, ev,
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


def _report_texts(report: Any) -> Iterable[tuple[str, str]]:
    if report.conclusion:
        yield report.conclusion, "conclusion"
    for value, element in common.texts(report.conclusionCode or [], "conclusionCode"):
        yield value, element
    for i, attachment in enumerate(report.presentedForm or []):
        value = _attachment_text(attachment)
        if value:
            yield value, f"presentedForm[{i}]"


def _observation(
    scan: ImagingScan,
    record: Any,
    obs: Any,
    studies: dict[str, _Source],
    reports: dict[str, _Source],
    result_of: dict[str, _Source],
) -> None:
    ref = record.ref(obs)
    codes = list(common.codings(obs.code, "code"))
    finding_code = next(
        (c.code for c, _ in codes if c.system == "finding" and c.code in finding.IMAGING_FINDINGS), None
    )
    edema_code = any(c.system == "snomed" and c.code in snomed.EDEMA for c, _ in codes)
    link: _Source | None = result_of.get(ref)
    for reference in [*(obs.derivedFrom or []), *(obs.partOf or [])]:
        target = _target_ref(record, reference)
        if target in studies:
            link = studies[target]
            break
        if target in reports:
            link = reports[target]
            break
    categories = {c.code for c, _ in common.codings(obs.category or [], "category")}
    imaging = finding_code is not None or edema_code or link is not None or "imaging" in categories
    if not imaging:
        return
    levels, _, _ = sites.body_site_levels(ref, obs.bodySite)
    if not levels and link is not None:
        levels = list(link.fallback_levels)
    day = common.clinical_date(obs)[0] or (link.day if link else None)
    modality = link.modality if link else None
    source = _Source(ref, day, modality, tuple(levels))
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
        _analyze_text(scan, source, "valueString", value_string)
        scan.texts.append((ref, "valueString", value_string))
    for value, element in common.notes(obs):
        _analyze_text(scan, source, element, value)
        scan.texts.append((ref, element, value))


def _number(obs: Any) -> float | None:
    quantity = getattr(obs, "valueQuantity", None)
    if quantity is not None and quantity.value is not None:
        return float(quantity.value)
    for attr in ("valueInteger", "valueDecimal"):
        value = getattr(obs, attr, None)
        if value is not None:
            return float(value)
    return None


def _segments(sentence: str, has_levels: bool = True) -> list[tuple[int, str, list[str]]]:
    """Comma-separated parts of a sentence with the levels each names; a level list ("T12, L1 and L2")
    stays in one part."""
    if not has_levels:
        return [(0, sentence, [])]
    parts: list[tuple[int, str]] = []
    offset = 0
    for piece in _comma_pieces(sentence):
        if parts and _LEADING_LEVEL.match(piece) and _TRAILING_LEVEL.search(parts[-1][1]):
            start, prev = parts[-1]
            parts[-1] = (start, prev + "," + piece)
        else:
            parts.append((offset, piece))
        offset += len(piece) + 1
    return [(start, piece, text.find_levels(piece)) for start, piece in parts]


def _comma_pieces(sentence: str) -> list[str]:
    """The sentence split at commas outside parentheses: in "T12 (acute, edema) and L1 (chronic,
    sclerotic)" each parenthesis stays with the level it follows."""
    if "(" not in sentence:
        return sentence.split(",")
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(sentence):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            pieces.append(sentence[start:i])
            start = i + 1
    pieces.append(sentence[start:])
    return pieces


def _analyze_text(scan: ImagingScan, source: _Source, element: str, value: str) -> None:
    """Every imaging statement in a text, each attributed to the levels of its part of the sentence."""
    if not _ANY_CUE.search(value):
        return  # nothing an imaging fact could come from: skip the sentence work
    whole_levels = text.find_levels(value)
    text_default = tuple(whole_levels) if len(whole_levels) == 1 else source.fallback_levels
    advanced_source = source.modality in dicom.ADVANCED
    for sm in _SENTENCE.finditer(value):
        sentence = sm.group(0)
        if not _ANY_CUE.search(sentence):
            continue
        sentence_levels = text.find_levels(sentence) if whole_levels else []
        if not sentence_levels and _OTHER_LEVELS.search(sentence):
            continue  # "other levels without edema": about no level in question, never the default one
        carried: list[str] = []
        for start, segment, seg_levels in _segments(sentence, bool(sentence_levels)):
            if seg_levels:
                carried = seg_levels
            if not _ANY_CUE.search(segment):
                continue
            levels = tuple(carried or (sentence_levels if len(sentence_levels) == 1 else ()) or text_default)
            groups = text.level_mentions(segment) if len(seg_levels) > 1 else []
            _segment_signals(scan, source, element, sentence, start, segment, levels, bool(seg_levels),
                             advanced_source, groups if len(groups) > 1 else [])
        if "%" in sentence or "percent" in sentence.lower():
            _percent_change(scan, source, element, sentence,
                            tuple(sentence_levels if len(sentence_levels) == 1 else text_default))


def _percent_change(scan: ImagingScan, source: _Source, element: str, sentence: str, levels: tuple[str, ...]) -> None:
    """Progression stated as two height-loss percentages in one sentence (later larger: progression)."""
    if not _HEIGHT_WORDS.search(sentence):
        return
    for pattern in _PERCENT_CHANGE:
        for m in pattern.finditer(sentence):
            earlier, later = float(m["a"]), float(m["b"])
            snippet = text.snippet(sentence, m.start(), m.end())
            ev = Evidence(source.ref, element, Method.TEXT, f"'{snippet}'")
            scan.signals.append(Signal("progression", later > earlier, levels, source.day, source.modality, ev,
                                       note=f"height loss {earlier:g} % -> {later:g} %", from_text=True,
                                       report_text=source.report))


def _segment_signals(
    scan: ImagingScan,
    source: _Source,
    element: str,
    sentence: str,
    offset: int,
    segment: str,
    levels: tuple[str, ...],
    names_level: bool,
    advanced_source: bool,
    groups: list[tuple[int, int, list[str]]] | None = None,
) -> None:
    """The signals of one part of a sentence. With several separate level mentions in the part
    ("T12 with 35% height loss and L1 with 20%"), each statement belongs to the nearest mention
    before it (else the first after it)."""
    def ev(m: re.Match[str]) -> Evidence:
        snippet = text.snippet(sentence, offset + m.start(), offset + m.end())
        return Evidence(source.ref, element, Method.TEXT, f"'{snippet}'")

    def negated(m: re.Match[str]) -> bool:
        return text.is_negated(sentence, offset + m.start(), offset + m.end())

    def hedged(m: re.Match[str]) -> bool:
        return text.is_hedged(sentence, offset + m.start(), offset + m.end())

    def levels_at(pos: int) -> tuple[str, ...]:
        if not groups:
            return levels
        before = [g for g in groups if g[1] <= pos]
        chosen = before[-1] if before else groups[0]
        return tuple(chosen[2])

    def add(kind: str, value: Any, m: re.Match[str], at: tuple[str, ...] | None = None, **kw: Any) -> None:
        scan.signals.append(
            Signal(kind, value, at or levels_at(m.start()), source.day, source.modality, ev(m), from_text=True,
                   report_text=source.report, **kw)
        )

    low = segment.lower()

    def has(*words: str) -> bool:
        # Cheap substring gates before the (case-insensitive, slower) patterns run.
        return any(w in low for w in words)

    fracture_context = bool(_FRACTURE_CONTEXT.search(segment))
    # Edema / uptake words count when the words around them are about bone or a level, or when the
    # report is an MRI / bone scan: "pedal edema" in a clinic note or an "FDG-avid node" is not acuity.
    if has("edema", "bme", "hyperintens", "stir", "uptake", "avid", "increased", "activity") and (
        advanced_source or names_level or _ACUITY_CONTEXT.search(segment) or _ACUITY_CONTEXT.search(sentence)
    ):
        for pattern, value_name in ((_EDEMA, "marrow-edema"), (_FLUID_SIGNAL, "marrow-edema"),
                                    (_UPTAKE, "increased-uptake")):
            for m in pattern.finditer(segment):
                if pattern is _EDEMA and _SOFT_TISSUE.search(segment[max(0, m.start() - 50) : m.start()]):
                    continue
                if hedged(m):
                    continue
                is_neg = negated(m)
                # Edema words in a CT or radiograph report ("suggestion of marrow edema on dual-energy
                # maps") are not the MRI / bone scan acuity of clinical rules I3.
                add("acuity", not is_neg, m, advanced=source.modality not in dicom.ANATOMIC,
                    acuity_value=None if is_neg else value_name)
    if fracture_context:
        positive_value = "increased-uptake" if source.modality in {"NM", "PT"} else "marrow-edema"
        if "acute" in low:
            for m in _ACUTE.finditer(segment):
                if hedged(m):
                    continue
                is_neg = negated(m)
                add("acuity", not is_neg, m, advanced=advanced_source,
                    acuity_value=None if is_neg else positive_value, note="age word")
        if has("chronic", "healed", "sclerotic", "remote", "old"):
            for m in _CHRONIC.finditer(segment):
                if not negated(m) and not hedged(m):
                    add("acuity", False, m, advanced=advanced_source, note="age word")
        for m in _SEEN.finditer(segment):
            if not negated(m):
                add("seen", True, m, advanced=advanced_source)
                break
    if has("%", "percent", "per cent"):
        # "T12 30%, L1 20% height loss": a part naming a level takes its height words from the sentence.
        found = []
        for pct_value in text.find_height_loss_percent(segment, context=sentence if names_level else None):
            m = re.search(re.escape(f"{pct_value:g}"), segment) or re.search(r"\d", segment)
            if m:
                found.append((pct_value, m))
        shared = [(v, m) for v, m in found if len(levels_at(m.start())) > 1]
        if len({v for v, _ in shared}) > 1:
            # Several percentages for one list of levels: paired in order only with "respectively",
            # otherwise no percentage can be tied to a level (never a number the text does not give it).
            group = levels_at(shared[0][1].start())
            if "respectively" in low and len(shared) == len(group) and all(
                    levels_at(m.start()) == group for _, m in shared):
                for (v, m), level in zip(shared, group, strict=True):
                    add("height", v, m, at=(level,))
            found = [(v, m) for v, m in found if len(levels_at(m.start())) <= 1]
        for pct_value, m in found:
            add("height", pct_value, m)
    if has("mild", "moderate", "severe", "genant"):
        for m in _GENANT_WORDS.finditer(segment):
            if negated(m):
                continue
            grade = (m["grade"] or _GENANT_GRADE.get(m["number"] or "", "")).lower()
            if grade in GENANT:
                number, note = GENANT[grade]
                add("height", number, m, note=note)
    if has("further", "progress", "interval", "increas", "worsen"):
        for m in _PROGRESSION.finditer(segment):
            if not hedged(m):
                add("progression", not negated(m), m)
    if has("stable", "unchanged", "interval"):
        for m in _STABLE.finditer(segment):
            if not negated(m):
                add("progression", False, m)
    for pattern, kind, words in (
        (_PLANA, "plana", ("plana",)),
        (_CLEFT, "cleft", ("cleft", "vacuum", "mmell", "intravertebral")),
        (_RETRO, "retropulsion", ("retropuls", "canal", "posterior")),
    ):
        if has(*words):
            for m in pattern.finditer(segment):
                if hedged(m):
                    continue
                if "canal" in m.group(0).lower() and not (
                    fracture_context or "retropuls" in low or (names_level and not _DISC_LEVEL.search(segment))
                ):
                    continue  # "disc bulge at L4-5 with canal compromise": degenerative, not the fracture
                add(kind, not negated(m), m)
    if "intact" in low:
        for m in _RETRO_INTACT.finditer(segment):
            if not negated(m):
                add("retropulsion", False, m)


# --- facts -------------------------------------------------------------------------------------


def _assigned(signal: Signal, single_level: str | None) -> tuple[str, ...]:
    if signal.levels:
        return signal.levels
    return (single_level,) if single_level else ()


# A study this long before a level's onset was read before the fracture existed (the onset tolerance of
# fractures.ONSET_TOLERANCE): its "no edema" cannot speak for the fracture's acuity.
_BEFORE_ONSET = timedelta(days=14)


def imaging_facts(
    scan: ImagingScan, keys: list[str], single_level: str | None, onsets: dict[str, date] | None = None
) -> dict[str, Any]:
    """acuity, acuity_unassigned, height_loss, progression, vertebra_plana, intravertebral_cleft,
    retropulsion (before codes are added) and imaging lines, from the scan's signals bucketed once.

    `onsets`: the agreed onset of each level; acuity at a level ignores studies dated more than two
    weeks before it (a prior spine MRI from years ago shows no edema of a fracture it predates)."""
    buckets: dict[str, list[Signal]] = {level: [] for level in keys}
    unassigned: list[Signal] = []
    by_kind: dict[str, list[Signal]] = {}
    for s in scan.signals:
        by_kind.setdefault(s.kind, []).append(s)
        levels = _assigned(s, single_level)
        if not levels and s.kind == "acuity" and s.advanced:
            unassigned.append(s)
        for level in levels:
            if level in buckets:
                buckets[level].append(s)

    unassigned_refs = frozenset(s.evidence.reference for s in unassigned)
    acuity = {
        level: _acuity(level, _since_onset(signals, (onsets or {}).get(level)), unassigned_refs)
        for level, signals in buckets.items()
    }
    height = {level: _height(level, signals) for level, signals in buckets.items()}
    progression = _progression(by_kind.get("progression", []), buckets)
    lines = tuple(line for _, line in sorted(scan.lines, key=lambda x: x[0]))
    return {
        "acuity": acuity,
        "acuity_unassigned": tuple(_unassigned_fact(s) for s in unassigned),
        "height_loss": height,
        "progression": progression,
        "vertebra_plana": _flag(by_kind.get("plana", []), "vertebra plana"),
        "intravertebral_cleft": _flag(by_kind.get("cleft", []), "an intravertebral cleft"),
        "retropulsion_signals": by_kind.get("retropulsion", []),
        "imaging": lines,
    }


def _since_onset(signals: list[Signal], onset: date | None) -> list[Signal]:
    """The signals that can speak for a fracture's acuity: not from a study read before it began."""
    if onset is None:
        return signals
    if onset - date.min < _BEFORE_ONSET:  # a placeholder onset at the calendar's first day: nothing is before it
        return signals
    cutoff = onset - _BEFORE_ONSET
    return [s for s in signals
            if s.kind not in {"acuity", "seen", "studied"} or s.day is None or s.day >= cutoff]


def _unassigned_fact(s: Signal) -> Fact[str]:
    note = "names no level and the record has more than one level in question"
    if s.value:
        return Fact.present(s.acuity_value or "marrow-edema", s.evidence, note=note)
    return Fact.absent(s.evidence, value="no-edema", note=note)


def _describe(s: Signal) -> str:
    return f"{s.modality or 'imaging'} {s.day.isoformat() if s.day else 'undated'} ({s.evidence.reference})"


def _acuity(level: str, signals: list[Signal], unassigned_refs: frozenset[str] = frozenset()) -> Fact[str]:
    acuity = [s for s in signals if s.kind == "acuity"]
    positive = [s for s in acuity if s.value and s.advanced]
    negative = [s for s in acuity if not s.value and s.advanced]
    if positive and negative and _same_resource_age_words_only(positive, negative):
        negative = []
    if positive and negative:
        pos = "; ".join(dict.fromkeys(_describe(s) for s in positive))
        neg = "; ".join(dict.fromkeys(_describe(s) for s in negative))
        return Fact.conflict(
            f"advanced imaging disagrees at {level}: acute signs in {pos}; no edema / old in {neg}",
            *(s.evidence for s in positive + negative),
        )
    if positive:
        value = "marrow-edema" if any(s.acuity_value == "marrow-edema" for s in positive) else "increased-uptake"
        return Fact.present(value, *(s.evidence for s in positive))
    if negative:
        return Fact.absent(*(s.evidence for s in negative), value="no-edema")
    # A report whose edema statement names no level cannot be read as "no edema here".
    advanced_seen = [
        s for s in signals
        if s.kind == "seen" and s.advanced and s.report_text and s.evidence.reference not in unassigned_refs
    ]
    if advanced_seen:
        return Fact.absent(
            *(s.evidence for s in advanced_seen),
            value="no-edema",
            note=f"advanced imaging report describes the fracture at {level} and mentions no edema or uptake",
        )
    advanced_studied = [s for s in signals if s.kind == "studied" and s.advanced]
    anatomic = [
        s for s in signals
        if s.kind in {"seen", "studied"} and not s.advanced and s.modality in dicom.ANATOMIC
    ]
    old_words = [s for s in acuity if not s.advanced]
    if advanced_studied:
        return Fact.unknown(
            f"advanced imaging of {level} without a report or finding: "
            + "; ".join(dict.fromkeys(_describe(s) for s in advanced_studied)),
            *(s.evidence for s in advanced_studied),
        )
    if anatomic:
        note = f"only radiograph/CT shows {level}: fracture seen, acuity not shown"
        if old_words:
            note += "; described as " + ", ".join(dict.fromkeys(s.evidence.found for s in old_words))
        return Fact(status=Status.UNKNOWN, value="radiograph-only",
                    evidence=tuple(s.evidence for s in anatomic + old_words), note=note)
    return Fact.unknown(f"no imaging of {level}")


def _same_resource_age_words_only(positive: list[Signal], negative: list[Signal]) -> bool:
    """A report that shows edema at a level and also calls something there "old" or "sclerotic" has
    stated the edema explicitly; its own age words do not contradict it. Disagreement between
    resources, or an explicit "no edema" beside "edema", stays a conflict."""
    refs = {s.evidence.reference for s in positive}
    explicit = any(s.note != "age word" for s in positive)
    return explicit and all(s.note == "age word" and s.evidence.reference in refs for s in negative)


def _height(level: str, signals: list[Signal]) -> Fact[float]:
    heights = [s for s in signals if s.kind == "height"]
    if not heights:
        return Fact.unknown(f"no height loss reported at {level}")
    best = max(heights, key=lambda s: s.value)
    others = [s for s in heights if s is not best]
    return Fact.present(float(best.value), best.evidence, *(s.evidence for s in others), note=best.note)


def _progression(signals: list[Signal], buckets: dict[str, list[Signal]]) -> Fact[bool]:
    positive = [s for s in signals if s.value]
    evidence: list[Evidence] = [s.evidence for s in positive]
    notes: list[str] = []
    for level, level_signals in buckets.items():
        measured = sorted(
            (s for s in level_signals if s.kind == "height" and s.day is not None and not s.note),
            key=lambda s: s.day,
        )
        for i, earlier in enumerate(measured):
            later = next((s for s in measured[i + 1:] if s.day > earlier.day and s.value > earlier.value), None)
            if later is not None:
                evidence += [earlier.evidence, later.evidence]
                notes.append(
                    f"height loss at {level} rose from {earlier.value:g} % ({earlier.day}) "
                    f"to {later.value:g} % ({later.day})"
                )
                break
    if evidence:
        return Fact.present(True, *evidence, note="; ".join(notes))
    negative = [s for s in signals if not s.value]
    if negative:
        return Fact.absent(*(s.evidence for s in negative), value=False, note="imaging describes no progression")
    return Fact.unknown("no progression finding and no serial height measurement")


def _flag(signals: list[Signal], what: str) -> Fact[bool]:
    positive = [s for s in signals if s.value]
    if positive:
        return Fact.present(True, *(s.evidence for s in positive))
    if signals:
        return Fact.absent(*(s.evidence for s in signals), value=False)
    return Fact.absent(value=False, note=f"record read: no sign of {what}")


def retropulsion_fact(signals: list[Signal], codes: list[Evidence]) -> Fact[bool]:
    """X11: retropulsion or canal compromise. A code (unstable burst) or an affirmed statement is
    PRESENT; affirmed in one resource and denied in another is a CONFLICT; only denials are ABSENT."""
    positive = [s for s in signals if s.value]
    negative = [s for s in signals if not s.value]
    if positive or codes:
        pos_refs = {s.evidence.reference for s in positive} | {e.reference for e in codes}
        other = [s for s in negative if s.evidence.reference not in pos_refs]
        evidence = [*codes, *(s.evidence for s in positive)]
        if other:
            return Fact.conflict(
                "retropulsion/canal compromise affirmed in "
                + ", ".join(sorted(pos_refs))
                + " and denied in "
                + ", ".join(dict.fromkeys(s.evidence.reference for s in other)),
                *evidence,
                *(s.evidence for s in other),
                value=True,
            )
        return Fact.present(True, *evidence)
    if negative:
        return Fact.absent(*(s.evidence for s in negative), value=False)
    return Fact.absent(value=False, note="record read: no sign of retropulsion or canal compromise")

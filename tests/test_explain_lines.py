"""explain.evidence_lines reads each detail of a line once (its words, element and method in one pass)
and strips dates only from the words it prints. The lines are held, field for field, to the function as
it was before (`_lines_as_before`, the twelfth round's), on every criterion of every bundle of samples/
and tests/data/ under every policy and both as-of dates, and on hostile text in every string. A change
meant to alter the lines changes the copy with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from every_bundle import evaluations_by_bundle, hostile

from fhir_vcf.outputs.explain import (
    FOUND_MAX,
    FOUND_PER_LINE,
    EvidenceLine,
    _pain_encounters,
    _strip_date,
    evidence_lines,
    pain_settings,
)


def _lines_as_before(criterion: Mapping[str, Any], evaluation: Mapping[str, Any],
                     settings: Mapping[str, str] | None = None) -> list[EvidenceLine]:
    details = [d for d in criterion.get("evidenceDetail") or () if isinstance(d, Mapping)]
    if not details:
        return [EvidenceLine(str(ref), str(ref)) for ref in criterion.get("evidence") or ()]
    settings = pain_settings(evaluation) if settings is None else settings
    reason = str(criterion.get("reason") or "")
    by_ref: dict[str, list[Mapping[str, Any]]] = {}
    for item in details:
        by_ref.setdefault(str(item.get("reference", "")), []).append(item)
    shown_scores = {ref for ref in by_ref if ref in settings}
    setting_only = _pain_encounters(evaluation) if shown_scores else set()
    lines = []
    for ref, items in by_ref.items():
        if ref in setting_only and all(i.get("element") == "class" for i in items):
            continue
        first = items[0]
        resource, day = str(first.get("resource") or ""), str(first.get("date") or "")
        found = list(dict.fromkeys(f for f in (_strip_date(str(i.get("found") or ""), day) for i in items)
                                   if f and not (f.startswith("'") and f in reason)))
        if len(found) > FOUND_PER_LINE:
            found = [*found[:FOUND_PER_LINE], f"and {len(found) - FOUND_PER_LINE} more"]
        found = [f if len(f) <= FOUND_MAX else f[: FOUND_MAX - 1].rstrip() + "…" for f in found]
        if ref in settings:
            text = "; ".join(dict.fromkeys(str(i.get("found") or "") for i in items if i.get("found"))) or resource
            text += f", {settings[ref]}"
        else:
            head = ", ".join(p for p in (resource, day) if p) or ref
            text = f"{head}: {' · '.join(found)}" if found else head
        elements = list(dict.fromkeys(str(i.get("element") or "") for i in items if i.get("element")))
        methods = list(dict.fromkeys(str(i.get("method") or "") for i in items if i.get("method")))
        lines.append(EvidenceLine(text, ref, " · ".join(elements), ", ".join(methods)))
    return lines


@pytest.fixture(scope="module")
def every_evaluation() -> list[dict]:
    return [e for evaluations in evaluations_by_bundle().values() for e in evaluations]


def test_lines_read_as_before_for_every_bundle(every_evaluation):
    assert len(every_evaluation) > 500
    cited = 0
    for evaluation in every_evaluation:
        settings = pain_settings(evaluation)
        for criterion in evaluation.get("criteria") or ():
            lines = evidence_lines(criterion, evaluation, settings)
            assert lines == _lines_as_before(criterion, evaluation, settings)
            assert evidence_lines(criterion, evaluation) == lines
            cited += len(lines)
    assert cited > 5000


def test_hostile_text_reads_as_before(every_evaluation):
    for evaluation in every_evaluation[::6]:
        marked = hostile(evaluation)
        for criterion in marked.get("criteria") or ():
            assert evidence_lines(criterion, marked) == _lines_as_before(criterion, marked)


def test_odd_details_read_as_before():
    evaluation = {"timeline": {"painScores": [{"reference": "Observation/p", "setting": "ambulatory",
                                               "encounter": "Encounter/e"}]}}
    details = [{"reference": "Observation/p", "found": "NRS 7 on 2025-06-01", "element": "value"},
               {"reference": "Observation/p", "found": "NRS 7, recorded again", "element": "value", "method": "code"},
               {"reference": "Encounter/e", "element": "class"},
               {"reference": "DiagnosticReport/r", "date": "2025-06-01", "found": "edema, 2025-06-01"},
               {"reference": "DiagnosticReport/r", "found": "2025-06-01", "element": 0, "method": ""},
               {"reference": "DiagnosticReport/r", "found": "'quoted'", "element": "conclusion", "method": "text"},
               {"reference": "DiagnosticReport/r", "found": "x" * 200},
               {"reference": "DiagnosticReport/r", "found": "y"},
               {"found": 7, "element": ["code"]}, "not a detail"]
    for reason in ("", "the report says 'quoted'"):
        criterion = {"evidenceDetail": details, "reason": reason}
        assert evidence_lines(criterion, evaluation) == _lines_as_before(criterion, evaluation)

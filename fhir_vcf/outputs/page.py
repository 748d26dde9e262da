"""The explanation page: evaluations as one self-contained, printable, accessible HTML document.

Rendered with a Jinja2 `Environment` over the package's own templates (`outputs/templates/`), with
the stylesheet (`outputs/static/page.css`) inlined and the timeline drawn as inline SVG: the page
has no script, no font, no image and no stylesheet to fetch, so it works offline, from a file the
CLI wrote as well as from the service, and under a Content-Security-Policy of `default-src 'none'`
plus the stylesheet's hash (`STYLE_CSP`). Autoescaping is on for every template: record text (a
report conclusion, a patient name) can never become markup.

Reads only the public evaluation dict (docs/design.md, "The evaluation object"): the CLI and the
service show the same page for the same evaluation, and a stored evaluation renders the same later.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from fhir_vcf.outputs import explain
from fhir_vcf.outputs.page_blocks import criteria_rows, episode_rows
from fhir_vcf.outputs.timeline import render_timeline_svg, timeline_items
from fhir_vcf.version import __version__

ROUTE_WORDS = {
    "osteoporotic": "osteoporotic (LCD criteria apply)",
    "malignant": "malignant (A56572: age window, continuum of care and NRS thresholds set aside)",
    "review": "needs coding review",
    "traumatic": "traumatic fracture: outside the policy",
    "none": "no vertebral fracture documented",
}


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The page's CSS, read once from the package (it ships as package data)."""
    return resources.files("fhir_vcf.outputs").joinpath("static/page.css").read_text(encoding="utf-8")


def style_csp_source() -> str:
    """The CSP source that allows exactly the inlined stylesheet: `'sha256-...'`."""
    digest = hashlib.sha256(stylesheet().encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy() -> str:
    """Nothing may load or run but the page's own inline stylesheet (and its same-document SVG)."""
    return (f"default-src 'none'; style-src {style_csp_source()}; img-src data:; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class _PlainValuesEnvironment(Environment):
    """Jinja's environment, reading `a.b` of a dict as its item first.

    The templates draw plain dicts (`section`: the evaluation's own values), and Jinja reads `a.b`
    as the attribute first and the item only after the attribute's AttributeError: about 500 such
    failed look-ups a page, a fifth of rendering it (`benchmarks/bench_page.py`). A dict's methods
    stay reachable (`words.get(...)`) unless it holds a key of that name, which no view here does.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


@lru_cache(maxsize=1)
def environment() -> Environment:
    return _PlainValuesEnvironment(
        loader=PackageLoader("fhir_vcf.outputs", "templates"),
        autoescape=select_autoescape(("html",), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _anchor(evaluation: Mapping[str, Any], index: int) -> str:
    patient = str(evaluation.get("patient") or f"patient-{index}")
    return f"p{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", patient.rsplit("/", 1)[-1])[:40]


def section(evaluation: Mapping[str, Any], index: int = 1) -> dict[str, Any]:
    """The view of one evaluation the template draws (plain values; the template escapes them)."""
    decision = str(evaluation.get("decision", ""))
    patient = evaluation.get("patientDetail") if isinstance(evaluation.get("patientDetail"), Mapping) else {}
    reference = str(evaluation.get("patient") or "")
    ids = [*(patient.get("identifiers") or ()), reference]
    criteria = [c for c in evaluation.get("criteria") or () if explain.is_mapping(c)]
    request = evaluation.get("request") if isinstance(evaluation.get("request"), Mapping) else None
    order = ""
    if request:
        order = (f"{request.get('technique', 'augmentation')} {', '.join(request.get('levels') or ())} "
                 f"({request.get('status', '')}, {request.get('reference', '')})").replace(" ()", "")
    anchor = _anchor(evaluation, index)
    items = timeline_items(evaluation)
    technique = str(evaluation.get("technique") or "none")
    drivers = [{"id": c.get("id", ""), "title": c.get("title", ""), "status_words": explain.status_words(c),
                "reason": c.get("reason", "")} for c in explain.drivers(evaluation, limit=4)]
    return {
        "anchor": anchor,
        "decision": decision,
        "decision_words": explain.DECISION_WORDS.get(decision, decision),
        "decision_icon": {"eligible": "ok", "not-eligible": "no", "needs-review": "warn"}.get(decision, "unknown"),
        "decision_reason": evaluation.get("decisionReason", ""),
        "summary": explain.summary_sentence(evaluation),
        "patient": {"birthDate": patient.get("birthDate", ""), "gender": patient.get("gender", "")},
        "patient_title": patient.get("name") or reference or "Unnamed patient",
        "patient_ids": " · ".join(i for i in ids if i),
        "levels": ", ".join(evaluation.get("levels") or ()) or "none documented",
        "as_of": evaluation.get("asOf", ""),
        "technique": explain.TECHNIQUE_WORDS.get(technique, technique),
        "technique_reason": evaluation.get("techniqueReason", "") if technique != "none" else "",
        "policy_title": evaluation.get("policyTitle") or evaluation.get("policy", ""),
        "policy_url": explain.policy_url(evaluation),
        "order": order,
        "route": ROUTE_WORDS.get(str(evaluation.get("route", "")), ""),
        "drivers": drivers,
        "timeline": render_timeline_svg(evaluation, id_prefix=f"{anchor}-tl", items=items),
        "episode_rows": episode_rows(items),
        "criteria": criteria_rows(criteria, evaluation, anchor),
        "missing": [m for m in evaluation.get("missing") or () if m],
        "flags": [f for f in evaluation.get("flags") or () if f],
        "skipped": explain.skipped_text(evaluation),
        "activities": explain.careplan_activities(evaluation),
        "sources": [{"id": s.get("id", ""), "citation": s.get("citation", ""), "url": s.get("url", "")}
                    for s in evaluation.get("policySources") or () if explain.is_mapping(s)],
    }


@dataclass(frozen=True)
class PageNote:
    """What the page says about itself: where it came from and how long it is kept."""

    meta_line: str = ""  # under the title, e.g. "Evaluation 3f2…, kept until 2025-07-07"
    footer_note: str = ""  # e.g. "Written by fhir-vcf evaluate from samples/x.json."


def render_page(evaluations: Sequence[Mapping[str, Any]], note: PageNote | None = None) -> str:
    """One HTML document: a section per evaluation (the CLI's several patients), each printable alone."""
    note = note or PageNote()
    sections = [section(ev, i) for i, ev in enumerate(evaluations, start=1)]
    if len(sections) == 1:
        title = f"{sections[0]['decision_words']}: {sections[0]['patient_title']} (fhir-vcf explanation)"
    else:
        title = f"fhir-vcf explanations: {len(sections)} patients"
    return environment().get_template("explanation.html").render(
        title=title,
        css=Markup(stylesheet()),
        sections=sections,
        meta_line=note.meta_line or f"fhir-vcf {__version__}",
        footer_note=note.footer_note,
    )


def render_not_found() -> str:
    """The page an unknown, expired or tampered link gets: plain, the same every time, no data."""
    return environment().get_template("not_found.html").render(title="Not found", css=Markup(stylesheet()))


__all__ = ["PageNote", "content_security_policy", "render_not_found", "render_page", "section", "style_csp_source",
           "stylesheet"]

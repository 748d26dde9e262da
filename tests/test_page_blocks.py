"""The explanation page's ready-HTML blocks (fhir_vcf.outputs.page_blocks) write, byte for byte, what the
template wrote before them: every bundle of samples/ and tests/data/ under every policy and both as-of
dates, the same evaluations with hostile text in every string, and whole pages of several patients.
The template's loops kept here are the tenth round's page: a change meant to alter the page changes
them with it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

import pytest
from every_bundle import evaluations_by_bundle, hostile
from jinja2 import Template
from markupsafe import Markup

from fhir_vcf.outputs import explain, page_blocks
from fhir_vcf.outputs.page import PageNote, environment, render_page, section, stylesheet
from fhir_vcf.outputs.timeline import render_timeline_svg, timeline_items
from fhir_vcf.version import __version__

# The template's loops as they were (explanation.html), which the blocks replace.
CRITERIA_LOOP = (
    '      {% for group, rows in s.groups %}\n'
    '      <tbody>\n'
    '        <tr><th scope="rowgroup" colspan="4">{{ group }}</th></tr>\n'
    '        {% for c in rows %}\n'
    '        <tr id="{{ s.anchor }}-{{ c.id }}" data-criterion="{{ c.id }}" data-status="{{ c.status }}">\n'
    '          <th scope="row"><span class="cid">{{ c.id }}</span>{{ c.title }}'
    '{% if c.kind_note %}<span class="kind-note">{{ c.kind_note }}</span>{% endif %}\n'
    '            <span class="source">{% if c.source_url %}'
    '<a href="{{ c.source_url }}">{{ c.source }}</a>{% else %}{{ c.source }}{% endif %}</span>'
    '</th>\n'
    '          <td class="status-cell">'
    '<span class="status st-{{ c.icon }}">{{ icon(c.icon) }} {{ c.status_words }}</span></td>\n'
    '          {% if c.evidence %}\n'
    '          <td class="reason">{{ c.reason }}</td>\n'
    '          <td class="evidence">\n'
    '            <ul class="evidence">{% for e in c.evidence[:2] %}<li'
    '{% if loop.index > 1 %} class="screen-only"{% endif %}>{{ e.text }}'
    '<span class="ref">{{ e.reference }}<span class="elements">'
    '{% if e.detail %} · {{ e.detail }}{% endif %}{% if e.method %} ({{ e.method }})'
    '{% endif %}</span></span></li>{% endfor %}</ul>\n'
    '            {% if c.evidence|length > 2 %}\n'
    '            <details class="more"><summary>{{ c.evidence|length - 2 }} more</summary>\n'
    '              <ul class="evidence">{% for e in c.evidence[2:] %}<li>{{ e.text }}'
    '<span class="ref">{{ e.reference }}<span class="elements">'
    '{% if e.detail %} · {{ e.detail }}{% endif %}{% if e.method %} ({{ e.method }})'
    '{% endif %}</span></span></li>{% endfor %}</ul>\n'
    '            </details>\n'
    '            {% endif %}\n'
    '            {% if c.evidence|length > 1 %}\n'
    '            <p class="print-only muted">+ {{ c.evidence|length - 1 }} more: '
    '{{ c.evidence[1:3]|map(attribute="reference")|join(", ") }}{% if c.evidence|length > 3 %}, …{% endif %}</p>\n'
    '            {% endif %}\n'
    '          </td>\n'
    '          {% else %}\n'
    '          <td class="reason" colspan="2">{{ c.reason }} '
    '<span class="muted">(no resource cited)</span></td>\n'
    '          {% endif %}\n'
    '        </tr>\n'
    '        {% endfor %}\n'
    '      </tbody>\n'
    '      {% endfor %}\n'
)
EPISODE_LOOP = ('{% for day, what, ref in s.timeline_items %}<tr><td>{{ day }}</td><td>{{ what }}</td>'
                '<td class="ref">{{ ref }}</td></tr>{% endfor %}')


def _row_view(criterion: Mapping[str, Any], evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """What the template was given for a criterion (`page._criterion_row` before the blocks)."""
    status = str(criterion.get("status", ""))
    kind_note = ""
    kind = str(criterion.get("exclusionKind") or "")
    if criterion.get("kind") == "exclusion" and kind and kind not in str(criterion.get("source", "")).lower():
        kind_note = f"{kind} exclusion"
    return {
        "id": criterion.get("id", ""), "title": criterion.get("title", ""), "kind_note": kind_note, "status": status,
        "status_words": explain.status_words(criterion), "icon": explain.STATUS_ICONS.get(status, "unknown"),
        "reason": criterion.get("reason", ""), "evidence": explain.evidence_lines(criterion, evaluation),
        "source": criterion.get("source", ""), "source_url": criterion.get("sourceUrl", ""),
    }


@lru_cache(maxsize=1)
def _template() -> Template:
    """explanation.html with the blocks put back as the loops they replace."""
    source = resources.files("fhir_vcf.outputs").joinpath("templates/explanation.html").read_text(encoding="utf-8")
    assert source.count("      {{- s.criteria }}\n") == 1 and source.count("{{ s.episode_rows }}") == 1
    return environment().from_string(
        source.replace("      {{- s.criteria }}\n", CRITERIA_LOOP).replace("{{ s.episode_rows }}", EPISODE_LOOP))


def _template_page(evaluations: list[Mapping[str, Any]], note: PageNote | None = None) -> str:
    """`render_page` through the template's own loops."""
    sections = []
    for index, evaluation in enumerate(evaluations, start=1):
        criteria = [c for c in evaluation.get("criteria") or () if isinstance(c, Mapping)]
        view = {k: v for k, v in section(evaluation, index).items() if k not in ("criteria", "episode_rows")}
        view["groups"] = [(name, [_row_view(c, evaluation) for c in rows]) for name, rows in explain.grouped(criteria)]
        view["timeline_items"] = timeline_items(evaluation)
        sections.append(view)
    note = note or PageNote()
    title = (f"{sections[0]['decision_words']}: {sections[0]['patient_title']} (fhir-vcf explanation)"
             if len(sections) == 1 else f"fhir-vcf explanations: {len(sections)} patients")
    return _template().render(title=title, css=Markup(stylesheet()), sections=sections,
                              meta_line=note.meta_line or f"fhir-vcf {__version__}", footer_note=note.footer_note)


@pytest.fixture(scope="module")
def every_evaluation() -> dict[str, list[dict]]:
    return evaluations_by_bundle()


def test_the_blocks_write_what_the_template_wrote_for_every_bundle(every_evaluation):
    assert len(every_evaluation) > 100
    for name, evaluations in every_evaluation.items():
        for evaluation in evaluations:
            assert render_page([evaluation]) == _template_page([evaluation]), name


def test_the_blocks_escape_hostile_text_as_the_template_did(every_evaluation):
    for name, evaluations in every_evaluation.items():
        evaluation = hostile(evaluations[0])
        html = render_page([evaluation])
        assert html == _template_page([evaluation]), name
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;q&#39;" in html


def test_a_page_of_several_patients_is_the_templates(every_evaluation):
    note = PageNote(meta_line="Evaluation <3f2> & 'kept'", footer_note='Written "by" <b>fhir-vcf</b>')
    for name, evaluations in every_evaluation.items():
        assert render_page(evaluations, note) == _template_page(evaluations, note), name


def test_odd_evaluations_read_as_the_template_read_them():
    odd = [{}, {"criteria": [{}, {"kind": "other", "evidence": ["Condition/1", "<x>"]}, "not a criterion",
                             {"id": "N", "sourceUrl": None, "source": None}, {"id": "Z", "sourceUrl": 0, "title": 0}]},
           {"criteria": [{"id": 3, "title": None, "kind": "exclusion", "exclusionKind": "relative", "source": "S",
                          "status": "conflict", "review": True, "reason": 0,
                          "evidenceDetail": [{"reference": "<r>", "found": "'q' & more"}] * 2}]}]
    for evaluation in odd:
        assert render_page([evaluation]) == _template_page([evaluation])


def test_the_criterion_heads_memo_is_bounded():
    assert page_blocks._criterion_head.cache_info().maxsize == page_blocks._HEAD_MEMO_SIZE
    criteria = [{"id": f"C{i}", "title": f"<t{i}>", "status": "met", "source": "S"} for i in range(600)]
    html = page_blocks.criteria_rows(criteria, {}, "p1-x")
    assert html.count("<tr id=") == 600 and "&lt;t599&gt;" in html
    assert page_blocks._criterion_head.cache_info().currsize <= page_blocks._HEAD_MEMO_SIZE


def test_a_hostile_copy_does_not_reuse_the_plain_heads(every_evaluation):
    """The heads memo is keyed on every word it writes: a criterion renamed reads renamed."""
    evaluation = next(iter(every_evaluation.values()))[0]
    render_page([evaluation])
    renamed = copy.deepcopy(evaluation)
    renamed["criteria"][0]["title"] = "<i>renamed</i>"
    assert "&lt;i&gt;renamed&lt;/i&gt;" in render_page([renamed])


def test_what_the_page_reads_once_reads_as_read_each_time(every_evaluation):
    """The page reads the pain scores' settings once for every criterion, and the timeline's items
    once for the list and the picture's words: the same lines and the same picture."""
    for name, evaluations in every_evaluation.items():
        for evaluation in evaluations:
            settings = explain.pain_settings(evaluation)
            for criterion in evaluation["criteria"]:
                assert (explain.evidence_lines(criterion, evaluation, settings)
                        == explain.evidence_lines(criterion, evaluation)), name
            assert (render_timeline_svg(evaluation, id_prefix="x", items=timeline_items(evaluation))
                    == render_timeline_svg(evaluation, id_prefix="x")), name

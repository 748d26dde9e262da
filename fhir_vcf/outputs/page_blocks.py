"""The explanation page's repetitive parts as ready HTML: the criteria table's rows and the episode list.

A page draws about twenty criteria and thirty dated events. Through the template each value drawn
was one Jinja output (a lookup, an escape, a generator step; ~530 a page), the larger part of
rendering a page (`benchmarks/bench_page.py`). Here they are written in one pass, the record's values
(a reason, a quoted conclusion, a reference) each through `markupsafe.escape` as the template's
autoescape would, so record text can never become markup. The words a criterion wears whatever the
record (its title, source, status and icon: the policy's own) are written once per policy and
reused (`_criterion_head`). tests/test_page_blocks.py holds each block to the template it replaced,
byte for byte, on every bundle and on hostile text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape

from fhir_vcf.outputs import explain

_HEAD_MEMO_SIZE = 512  # criterion heads: a policy's criteria times their statuses, for every policy


def _icon(name: Any) -> str:
    """The status symbol of the page's sprite (base.html), as the template's `icon` macro draws it."""
    return f'<svg class="icon" aria-hidden="true" focusable="false"><use href="#i-{escape(name)}"/></svg>'


@lru_cache(maxsize=_HEAD_MEMO_SIZE)
def _criterion_head(cid: str, status: str, words: str, title: str, kind_note: str, source: str, source_url: str) -> str:
    """A criterion's row from after the patient's anchor to its reason: its id, name, source and status,
    the policy's words, the same for every patient. (The title's line ends in the spaces where the
    template trimmed its newline: the page as it always was.)"""
    icon_name = explain.STATUS_ICONS.get(status, "unknown")
    note = f'<span class="kind-note">{escape(kind_note)}</span>' if kind_note else ""
    cited = f'<a href="{escape(source_url)}">{escape(source)}</a>' if source_url else escape(source)
    return (f'{escape(cid)}" data-criterion="{escape(cid)}" data-status="{escape(status)}">'
            f'\n          <th scope="row"><span class="cid">{escape(cid)}</span>{escape(title)}{note}'
            f'            <span class="source">{cited}</span></th>'
            f'\n          <td class="status-cell"><span class="status st-{escape(icon_name)}">{_icon(icon_name)} '
            f'{escape(words)}</span></td>')


def _evidence_item(line: explain.EvidenceLine, css: str) -> str:
    detail = f" · {escape(line.detail)}" if line.detail else ""
    method = f" ({escape(line.method)})" if line.method else ""
    return (f'<li{css}>{escape(line.text)}<span class="ref">{escape(line.reference)}'
            f'<span class="elements">{detail}{method}</span></span></li>')


def _evidence_cell(lines: Sequence[explain.EvidenceLine]) -> str:
    """The first two lines shown, the rest folded away; in print, the others' references counted."""
    shown = "".join(_evidence_item(line, ' class="screen-only"' if n else "") for n, line in enumerate(lines[:2]))
    out = [f'\n          <td class="evidence">\n            <ul class="evidence">{shown}</ul>']
    if len(lines) > 2:
        more = "".join(_evidence_item(line, "") for line in lines[2:])
        out.append(f'\n            <details class="more"><summary>{len(lines) - 2} more</summary>'
                   f'\n              <ul class="evidence">{more}</ul>\n            </details>')
    if len(lines) > 1:
        refs = ", ".join(escape(line.reference) for line in lines[1:3])
        out.append(f'\n            <p class="print-only muted">+ {len(lines) - 1} more: {refs}'
                   f'{", …" if len(lines) > 3 else ""}</p>')
    out.append("\n          </td>")
    return "".join(out)


def _criterion_row(criterion: Mapping[str, Any], evaluation: Mapping[str, Any], anchor: str,
                   settings: Mapping[str, str]) -> str:
    status = str(criterion.get("status", ""))
    source = str(criterion.get("source", ""))
    kind = str(criterion.get("exclusionKind") or "")
    kind_note = ""
    if criterion.get("kind") == "exclusion" and kind and kind not in source.lower():
        kind_note = f"{kind} exclusion"  # said once: most sources already read "exclusion 1 (absolute)"
    head = _criterion_head(str(criterion.get("id", "")), status, explain.status_words(criterion),
                           str(criterion.get("title", "")), kind_note, source, str(criterion.get("sourceUrl") or ""))
    reason = escape(criterion.get("reason", ""))
    lines = explain.evidence_lines(criterion, evaluation, settings)
    if lines:
        body = f'\n          <td class="reason">{reason}</td>{_evidence_cell(lines)}'
    else:
        body = (f'\n          <td class="reason" colspan="2">{reason} '
                '<span class="muted">(no resource cited)</span></td>')
    return f'\n        <tr id="{anchor}-{head}{body}\n        </tr>'


def criteria_rows(criteria: Sequence[Mapping[str, Any]], evaluation: Mapping[str, Any], anchor: str) -> Markup:
    """The criteria table's bodies: one `<tbody>` per kind (explain.grouped), a row per criterion.

    Every line starts with its newline, so the template places the block right after the table's head
    and a table without criteria reads as it did."""
    anchor = escape(anchor)
    settings = explain.pain_settings(evaluation)
    out = []
    for group, rows in explain.grouped(criteria):
        out.append(f'\n      <tbody>\n        <tr><th scope="rowgroup" colspan="4">{escape(group)}</th></tr>')
        out.extend(_criterion_row(c, evaluation, anchor, settings) for c in rows)
        out.append("\n      </tbody>")
    return Markup("".join(out))


def episode_rows(items: Sequence[tuple[Any, Any, Any]]) -> Markup:
    """The episode as a list (timeline.timeline_items): a row per dated event, oldest first."""
    return Markup("".join(f'<tr><td>{escape(day)}</td><td>{escape(what)}</td><td class="ref">{escape(ref)}</td></tr>'
                          for day, what, ref in items))


__all__ = ["criteria_rows", "episode_rows"]

"""The governance view: the committee's numbers (`fhir_vcf.governance.summary`) as inline-SVG charts
and the tables behind them, on the same stylesheet and under the same rules as the explanation page
(no script, nothing fetched, autoescaped). Every chart has a table with the same numbers, for screen
readers and for anyone who wants the figures rather than the bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from fhir_vcf.outputs.explain import DECISION_WORDS
from fhir_vcf.outputs.page import environment, stylesheet

# Segment colours: each keeps 3:1 against white (WCAG 1.4.11, graphics); tests/test_page.py checks them.
SEGMENTS = (("accepted", "Accepted", "#1e6b34"), ("overridden", "Overridden", "#a4161a"),
            ("noFeedback", "No feedback", "#6b6b6b"))
TEXT = "#1a1a1a"


def _stacked_bars(rows: Sequence[tuple[str, Mapping[str, Any]]], *, title: str, chart_id: str,
                  horizontal: bool) -> Markup:
    """Bars of `shown` split into accepted / overridden / no feedback, one per row, with its label."""
    peak = max([int(r.get("shown", 0)) for _, r in rows] + [1])
    parts: list[str] = []
    if horizontal:
        width, left, bar, gap = 560, 170, 20, 10
        height = 46 + len(rows) * (bar + gap)
        for i, (label, r) in enumerate(rows):
            y = 24 + i * (bar + gap)
            x = left
            short = label if len(label) <= 26 else label[:25] + "…"  # the whole label is in the table
            parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" fill="{TEXT}">{escape(short)}'
                         f'<title>{escape(label)}</title></text>')
            for key, words, color in SEGMENTS:
                w = round((width - left - 60) * int(r.get(key, 0)) / peak, 1)
                if w > 0:
                    parts.append(f'<rect x="{x}" y="{y}" width="{w}" height="{bar}" fill="{color}">'
                                 f'<title>{escape(label)}: {int(r.get(key, 0))} {words.lower()}</title></rect>')
                x += w
            parts.append(f'<text x="{x + 6}" y="{y + 14}" fill="{TEXT}">{int(r.get("shown", 0))}</text>')
    else:
        width, bottom, left = 960, 200, 36
        height = bottom + 40
        slot = (width - left - 10) / max(len(rows), 1)
        bar = max(6.0, min(40.0, slot * 0.7))
        for tick in (range(peak + 1) if peak <= 5 else sorted({0, peak // 2, peak})):
            y = round(bottom - (bottom - 20) * tick / peak, 1)
            parts.append(f'<line x1="{left}" y1="{y}" x2="{width - 10}" y2="{y}" stroke="#b3b3b3" stroke-width="0.5"/>')
            parts.append(f'<text x="{left - 4}" y="{y + 4}" text-anchor="end" fill="{TEXT}">{tick}</text>')
        for i, (label, r) in enumerate(rows):
            x = round(left + i * slot + (slot - bar) / 2, 1)
            y = float(bottom)
            for key, words, color in SEGMENTS:
                h = round((bottom - 20) * int(r.get(key, 0)) / peak, 1)
                if h > 0:
                    y -= h
                    parts.append(f'<rect x="{x}" y="{round(y, 1)}" width="{round(bar, 1)}" height="{h}" fill="{color}">'
                                 f'<title>week of {escape(label)}: {int(r.get(key, 0))} {words.lower()}</title></rect>')
            if len(rows) <= 16 or i % 2 == 0:
                parts.append(f'<text x="{round(x + bar / 2, 1)}" y="{bottom + 14}" text-anchor="middle" '
                             f'fill="{TEXT}">{escape(label[5:])}</text>')
        parts.append(f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="{TEXT}"/>')
    legend_y = height - 6
    x = 10
    for _key, words, color in SEGMENTS:
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{legend_y}" fill="{TEXT}">{words}</text>')
        x += 110
    return Markup(f'<svg viewBox="0 0 {width} {height + 6}" role="img" aria-labelledby="{chart_id}" '
                  f'xmlns="http://www.w3.org/2000/svg"><title id="{chart_id}">{escape(title)}</title>'
                  + "".join(parts) + "</svg>")


def _reason_bars(reasons: Sequence[Mapping[str, Any]], chart_id: str) -> Markup:
    rows = [(str(r.get("display") or r.get("code")), {"shown": r.get("count", 0), "overridden": r.get("count", 0)})
            for r in reasons[:10]]
    return _stacked_bars(rows, title="Override reasons", chart_id=chart_id, horizontal=True) if rows else Markup("")


def render_governance(summary: Mapping[str, Any]) -> str:
    """The governance page for one summary (see fhir_vcf.governance for what each number means)."""
    by_decision = [(DECISION_WORDS.get(d["decision"], d["decision"]), d) for d in summary.get("byDecision") or ()]
    by_week = [(w["week"], w) for w in summary.get("byWeek") or ()]
    return environment().get_template("governance.html").render(
        title="fhir-vcf governance: cards and what clinicians did with them",
        css=Markup(stylesheet()),
        summary=summary,
        decisions=by_decision,
        weeks=by_week,
        week_chart=_stacked_bars(by_week, title="Cards per week and their outcome", chart_id="chart-weeks",
                                 horizontal=False),
        decision_chart=_stacked_bars(by_decision, title="Cards per decision and their outcome",
                                     chart_id="chart-decisions", horizontal=True),
        reason_chart=_reason_bars(summary.get("overrideReasons") or (), "chart-reasons"),
        decision_words=DECISION_WORDS,
    )


def render_login(*, failed: bool = False) -> str:
    return environment().get_template("login.html").render(title="fhir-vcf governance: sign in",
                                                           css=Markup(stylesheet()), failed=failed)


def render_message(heading: str, text: str) -> str:
    return environment().get_template("message.html").render(title=heading, css=Markup(stylesheet()),
                                                             heading=heading, text=text)


__all__ = ["render_governance", "render_login", "render_message"]

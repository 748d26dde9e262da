"""The summary of a population run: counts gathered from the table's rows, and a one-page HTML
report with inline SVG charts (decisions, top missing documentation, top exclusions, care gaps).

The page stands alone: no script, no web font, no CDN, so that it opens offline, prints cleanly and
can be mailed. Every chart is an `<svg role="img">` with a title, labels and counts written on the
bars (colour is never the only cue), followed by the same numbers as a table for screen readers
and for copying.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_vcf.outputs.table import SEPARATOR

DECISIONS = ("eligible", "needs-review", "insufficient-data", "not-eligible")
DECISION_COLOURS = {"eligible": "#1a7f37", "needs-review": "#9a6700", "insufficient-data": "#0b5cad",
                    "not-eligible": "#b42318"}
BAR_COLOUR = "#4b5563"
TOP = 10


@dataclass
class Summary:
    """Counts over the rows of one run; `merge` adds another partition's counts."""

    rows: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    techniques: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)
    exclusions: Counter[str] = field(default_factory=Counter)
    care_gaps: Counter[str] = field(default_factory=Counter)
    with_gap: int = 0
    gap_population: int = 0  # rows on a route where the continuum of care applies

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        self.decisions[row.get("decision") or "error"] += 1
        self.routes[row.get("route") or "none"] += 1
        self.techniques[row.get("technique") or "none"] += 1
        self.missing.update(_items(row.get("missing")))
        self.exclusions.update(_items(row.get("exclusions")))
        if row.get("route") in ("osteoporotic", "review"):
            self.gap_population += 1
            gaps = _items(row.get("care_gaps"))
            self.care_gaps.update(gaps)
            self.with_gap += bool(gaps)

    def add_all(self, rows: Iterable[Mapping[str, Any]]) -> Summary:
        for r in rows:
            self.add(r)
        return self

    def merge(self, other: Summary) -> Summary:
        self.rows += other.rows
        for name in ("decisions", "routes", "techniques", "missing", "exclusions", "care_gaps"):
            getattr(self, name).update(getattr(other, name))
        self.with_gap += other.with_gap
        self.gap_population += other.gap_population
        return self

    def to_dict(self) -> dict[str, Any]:
        def ordered(c: Counter[str]) -> dict[str, int]:
            return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

        return {"rows": self.rows, "decisions": ordered(self.decisions), "routes": ordered(self.routes),
                "techniques": ordered(self.techniques), "missing": ordered(self.missing),
                "exclusions": ordered(self.exclusions), "careGaps": ordered(self.care_gaps),
                "careGapPatients": self.with_gap, "careGapPopulation": self.gap_population}


def _items(cell: Any) -> list[str]:
    return [p for p in str(cell).split(SEPARATOR) if p] if cell else []


def _top(counter: Counter[str], n: int = TOP) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def bar_chart(title: str, bars: Sequence[tuple[str, int, str]], *, total: int, chart_id: str) -> str:
    """A horizontal bar chart: one labelled bar per (label, count, colour), count and share at its end."""
    if not bars:
        return f'<p class="empty">{html.escape(title)}: none.</p>'
    # The label sits above its bar, so that long labels (missing documentation) are read whole.
    bar_w, row_h, width_all = 560, 46, 720
    height = row_h * len(bars) + 4
    top = max(count for _, count, _ in bars) or 1
    parts = [f'<svg role="img" aria-labelledby="{chart_id}-t" viewBox="0 0 {width_all} {height}" '
             f'width="{width_all}" class="chart">',
             f'<title id="{chart_id}-t">{html.escape(title)}</title>']
    for i, (label, count, colour) in enumerate(bars):
        y = 2 + i * row_h
        width = max(2, round(bar_w * count / top)) if count else 0
        short = label if len(label) <= 105 else label[:103] + "…"
        parts.append(f'<text x="0" y="{y + 14}" class="lbl"><title>{html.escape(label)}</title>'
                     f"{html.escape(short)}</text>")
        parts.append(f'<rect x="0" y="{y + 20}" width="{width}" height="18" rx="2" fill="{colour}"/>')
        parts.append(f'<text x="{width + 8}" y="{y + 34}" class="val">{count:,} ({_pct(count, total)})</text>')
    parts.append("</svg>")
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{count:,}</td><td>{_pct(count, total)}</td></tr>"
                   for label, count, _ in bars)
    table = (f'<details><summary>The numbers</summary><table><thead><tr><th scope="col">{html.escape(title)}'
             '</th><th scope="col">count</th><th scope="col">share</th></tr></thead>'
             f"<tbody>{rows}</tbody></table></details>")
    return "".join(parts) + table


STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1f2328;
       margin: 0 auto; max-width: 60rem; padding: 1.5rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem; }
.meta { color: #57606a; margin: 0 0 1rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .75rem; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: .6rem .8rem; }
.card b { display: block; font-size: 1.4rem; }
.chart { max-width: 100%; height: auto; }
.chart .lbl, .chart .val { font-size: 13px; fill: #1f2328; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid #d0d7de; }
td:nth-child(n+2) { text-align: right; font-variant-numeric: tabular-nums; }
details summary { cursor: pointer; color: #0b5cad; }
.lead { font-size: 1.05rem; }
.empty, .note { color: #57606a; }
@media print { body { max-width: none; padding: 0; font-size: 11pt; } details { display: block; }
  details > summary { display: none; } h2 { break-after: avoid; } svg { break-inside: avoid; } }
"""


def render_html(summary: Summary, meta: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    """The report page. `meta`: mode, policy title, as-of, source, counts of the run;
    `titles`: criterion id → title, to name the exclusions."""
    audit = meta.get("mode") == "audit"
    unit = "procedures" if audit else "patients"
    total = summary.rows
    heading = "Vertebral augmentation audit" if audit else "Vertebral fracture population screen"
    when = ("each procedure judged as of the day it was performed" if audit
            else f"as of {meta.get('asOf', '')}")
    cards = [(f"{unit} judged", f"{total:,}")]
    if not audit:
        cards.append(("patients screened", f"{meta.get('patients', 0):,}"))
    cards += [("eligible", f"{summary.decisions.get('eligible', 0):,}"),
              ("malformed lines", f"{meta.get('badLines', 0):,}"),
              ("could not be evaluated", f"{meta.get('errors', 0):,}")]
    decisions = [(d, summary.decisions.get(d, 0), DECISION_COLOURS[d]) for d in DECISIONS]
    decisions += [(d, n, BAR_COLOUR) for d, n in sorted(summary.decisions.items()) if d not in DECISIONS]
    exclusions = [(f"{x} {titles.get(x, '')}".strip(), n, BAR_COLOUR) for x, n in _top(summary.exclusions)]
    missing = [(m, n, BAR_COLOUR) for m, n in _top(summary.missing)]
    gaps = [(g, n, "#9a6700") for g, n in _top(summary.care_gaps)]
    lead = (f"{total:,} {unit} with a vertebral fracture or an augmentation request were judged"
            if not audit else f"{total:,} completed vertebral augmentations were judged")
    body = [
        f"<h1>{html.escape(heading)}</h1>",
        f'<p class="meta">{html.escape(str(meta.get("policyTitle", "")))} · {html.escape(when)} · '
        f'source {html.escape(str(meta.get("source", "")))} · engine {html.escape(str(meta.get("engine", "")))}</p>',
        '<div class="cards">' + "".join(f'<div class="card"><b>{v}</b>{html.escape(k)}</div>' for k, v in cards)
        + "</div>",
        f'<p class="lead">{html.escape(lead)}'
        + ("" if audit else f"; {meta.get('withoutFracture', 0):,} patients had no vertebral fracture on record "
           "and are counted, not listed") + ".</p>",
        "<h2>Decisions</h2>",
        bar_chart(f"Decisions ({unit})", decisions, total=total, chart_id="decisions"),
        "<h2>Top missing documentation</h2>",
        '<p class="note">What the records lack for a decision (one patient may lack several items).</p>',
        bar_chart("Missing documentation", missing, total=total, chart_id="missing"),
        "<h2>Top exclusions</h2>",
        bar_chart("Exclusions present", exclusions, total=total, chart_id="exclusions"),
        "<h2>Care gaps</h2>",
        f'<p class="note">Among {summary.gap_population:,} {unit} on the osteoporotic (or review) route, '
        f"{summary.with_gap:,} ({_pct(summary.with_gap, summary.gap_population)}) lack part of the continuum of "
        "care (LCD L34106 inclusion 1e: bone-density evaluation and an osteoporosis treatment or education "
        "program). What is missing:</p>",
        bar_chart("Continuum-of-care items missing", gaps, total=summary.gap_population, chart_id="gaps"),
        "<h2>Routes and techniques</h2>",
        _pairs("Coding route", summary.routes) + _pairs("Technique", summary.techniques),
        f'<p class="note">Generated by fhir-vcf {html.escape(str(meta.get("version", "")))}. '
        "Each row of table.parquet / table.csv and each line of evaluations.jsonl explains its decision "
        "criterion by criterion.</p>",
    ]
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(heading)}</title><style>{STYLE}</style></head><body><main>"
            + "\n".join(body) + "</main></body></html>\n")


def _pairs(title: str, counter: Counter[str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in _top(counter, 20))
    return f'<table><thead><tr><th scope="col">{html.escape(title)}</th><th scope="col">count</th></tr></thead>' \
           f"<tbody>{rows}</tbody></table>"

"""The summary of a population run: counts gathered from the table's rows, and a one-page HTML
report with inline SVG charts (decisions, top missing documentation, top exclusions, care gaps).

The page is drawn like the explanation page (`outputs/page.py`: its template, its inlined stylesheet,
its palette) and stands alone: no script, no web font, nothing fetched, so that it opens offline,
prints cleanly and can be mailed. Every chart is an `<svg role="img">` with a title, labels and counts
written on the bars (colour is never the only cue), followed by the same numbers as a table for
screen readers and for copying.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from fhir_vcf.outputs.page import environment, stylesheet
from fhir_vcf.outputs.table import SEPARATOR

DECISIONS = ("eligible", "needs-review", "insufficient-data", "not-eligible")
# The explanation page's palette (outputs/static/page.css, contrast-checked by tests/test_page.py).
DECISION_COLOURS = {"eligible": "#1e6b34", "needs-review": "#8a4b00", "insufficient-data": "#3f4595",
                    "not-eligible": "#a4161a"}
TEXT_COLOUR, BAR_COLOUR, GAP_COLOUR = "#1a1a1a", "#4d4d4d", "#8a4b00"
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


def bar_chart(title: str, bars: Sequence[tuple[str, int, str]], *, total: int, chart_id: str) -> Markup:
    """A horizontal bar chart: one bar per (label, count, colour), the label above it (long labels,
    such as missing documentation, are read whole), the count and share at its end."""
    bar_w, row_h, width_all = 560, 46, 720
    height = row_h * len(bars) + 4
    top = max((count for _, count, _ in bars), default=0) or 1
    parts = [f'<svg viewBox="0 0 {width_all} {height}" role="img" aria-labelledby="{chart_id}" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="{chart_id}">{escape(title)}</title>']
    for i, (label, count, colour) in enumerate(bars):
        y = 2 + i * row_h
        width = max(2, round(bar_w * count / top)) if count else 0
        short = label if len(label) <= 105 else label[:103] + "…"  # the whole label is in the table
        parts.append(f'<text x="0" y="{y + 14}" fill="{TEXT_COLOUR}">{escape(short)}<title>{escape(label)}</title>'
                     "</text>")
        parts.append(f'<rect x="0" y="{y + 20}" width="{width}" height="18" rx="2" fill="{colour}"/>')
        parts.append(f'<text x="{width + 8}" y="{y + 34}" fill="{TEXT_COLOUR}">{count:,} ({_pct(count, total)})</text>')
    return Markup("".join(parts) + "</svg>")


def _section(sid: str, heading: str, label: str, bars: list[tuple[str, int, str]], total: int,
             note: str = "") -> dict[str, Any]:
    return {"id": sid, "heading": heading, "label": label, "note": note,
            "chart": bar_chart(heading, bars, total=total, chart_id=f"c-{sid}") if bars else "",
            "rows": [(lbl, f"{n:,}", _pct(n, total)) for lbl, n, _ in bars]}


def render_html(summary: Summary, meta: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    """The report page. `meta`: mode, policy title, as-of, source, counts of the run;
    `titles`: criterion id → title, to name the exclusions."""
    audit = meta.get("mode") == "audit"
    unit = "procedures" if audit else "patients"
    total = summary.rows
    heading = "Vertebral augmentation audit" if audit else "Vertebral fracture population screen"
    when = ("each procedure judged as of the day it was performed" if audit
            else f"as of {meta.get('asOf', '')}")
    counts = [(f"{unit} judged", f"{total:,}")]
    if not audit:
        counts.append(("patients screened", f"{meta.get('patients', 0):,}"))
    counts += [("eligible", f"{summary.decisions.get('eligible', 0):,}"),
               ("malformed lines", f"{meta.get('badLines', 0):,}"),
               ("could not be evaluated", f"{meta.get('errors', 0):,}")]
    decisions = [(d, summary.decisions.get(d, 0), DECISION_COLOURS[d]) for d in DECISIONS]
    decisions += [(d, n, BAR_COLOUR) for d, n in sorted(summary.decisions.items()) if d not in DECISIONS]
    lead = (f"{total:,} completed vertebral augmentations were judged, each on the record as it stood on "
            "its day, with the procedure as the request." if audit else
            f"{total:,} patients with a vertebral fracture or an augmentation request were judged; "
            f"{meta.get('withoutFracture', 0):,} patients had no vertebral fracture on record and are counted, "
            "not listed.")
    sections = [
        _section("decisions", f"Decisions ({unit})", "Decision", decisions, total),
        _section("missing", "Top missing documentation", "Missing item",
                 [(m, n, BAR_COLOUR) for m, n in _top(summary.missing)], total,
                 "What the records lack for a decision (one patient may lack several items)."),
        _section("exclusions", "Top exclusions", "Exclusion",
                 [(f"{x} {titles.get(x, '')}".strip(), n, BAR_COLOUR) for x, n in _top(summary.exclusions)], total),
        _section("gaps", "Care gaps", "Continuum-of-care item missing",
                 [(g, n, GAP_COLOUR) for g, n in _top(summary.care_gaps)], summary.gap_population,
                 f"Among {summary.gap_population:,} {unit} on the osteoporotic (or review) route, "
                 f"{summary.with_gap:,} ({_pct(summary.with_gap, summary.gap_population)}) lack part of the "
                 "continuum of care (LCD L34106 inclusion 1e: bone-density evaluation and an osteoporosis "
                 "treatment or education program). What is missing:"),
    ]
    pairs = [("Coding route", [(k, f"{v:,}") for k, v in _top(summary.routes, 20)]),
             ("Technique", [(k, f"{v:,}") for k, v in _top(summary.techniques, 20)])]
    subtitle = (f"{meta.get('policyTitle', '')} · {when} · source {meta.get('source', '')} · "
                f"engine {meta.get('engine', '')}")
    return environment().get_template("population.html").render(
        title=heading, css=Markup(stylesheet()), heading=heading, subtitle=subtitle, counts=counts, lead=lead,
        sections=sections, pairs=pairs, version=meta.get("version", ""))

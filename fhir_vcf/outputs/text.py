"""A plain-text view of one evaluation object, for `fhir-vcf evaluate --format text`.

Reads only the public evaluation dict (docs/design.md, "The evaluation object"), so it shows exactly
what an API client would get, laid out for a person at a terminal: the decision first, then every
criterion with its reason and evidence, then what is missing and the flags. No colours, no trailing
spaces, so the output can be pasted into a ticket or diffed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

# The reason column wraps at this width; the other columns are sized to their content, and the
# evidence column lists one reference per line (a reference is never split).
_REASON_WIDTH = 60
_HEADERS = ("id", "criterion", "status", "reason", "evidence")


def _cell_lines(cell: str | Sequence[str], width: int | None) -> list[str]:
    """A cell's lines: a list gives one line per item; a string wraps at `width` (None: no wrap)."""
    if not isinstance(cell, str):
        return [str(item) for item in cell] or [""]
    if not cell or width is None:
        return [cell]
    return textwrap.wrap(cell, width=width, break_long_words=False, break_on_hyphens=False) or [""]


def _table(rows: Sequence[Sequence[str | Sequence[str]]], wrap: Sequence[int | None]) -> list[str]:
    """Rows of cells → aligned lines; a multi-line cell continues on the following lines of its row."""
    split = [[_cell_lines(cell, wrap[i]) for i, cell in enumerate(row)] for row in rows]
    widths = [max(len(line) for row in split for line in row[i]) for i in range(len(wrap))]
    out: list[str] = []
    for n, row in enumerate(split):
        height = max(len(cell) for cell in row)
        for k in range(height):
            parts = [(cell[k] if k < len(cell) else "").ljust(widths[i]) for i, cell in enumerate(row)]
            out.append(" | ".join(parts).rstrip())
        if n == 0:
            out.append("-+-".join("-" * w for w in widths))
    return out


def render_text(evaluation: dict[str, Any]) -> str:
    """The evaluation as a readable block: header, criteria table, missing, flags (ends with a newline)."""
    levels = evaluation.get("levels") or []
    lines = [
        f"patient:   {evaluation.get('patient', '?')}",
        f"decision:  {evaluation.get('decision', '?')}",
        f"technique: {evaluation.get('technique') or 'none'}",
        f"levels:    {', '.join(levels) if levels else '-'}",
        f"as of:     {evaluation.get('asOf', '?')}    policy: {evaluation.get('policy', '?')}",
        "",
    ]
    rows: list[tuple[str, str, str, str, str | list[str]]] = [_HEADERS]
    for criterion in evaluation.get("criteria") or []:
        rows.append(
            (
                str(criterion.get("id", "")),
                str(criterion.get("title", "")),
                str(criterion.get("status", "")),
                str(criterion.get("reason", "")),
                [str(e) for e in criterion.get("evidence") or []],
            )
        )
    lines.extend(_table(rows, (None, None, None, _REASON_WIDTH, None)))
    for title, items in (("missing", evaluation.get("missing")), ("flags", evaluation.get("flags"))):
        lines.append("")
        if items:
            lines.append(f"{title}:")
            lines.extend(f"  - {item}" for item in items)
        else:
            lines.append(f"{title}: none")
    return "\n".join(line.rstrip() for line in lines) + "\n"

"""A plain-text view of one evaluation object, for `fhir-vcf evaluate --format text`.

Reads only the public evaluation dict (docs/design.md, "The evaluation object"), so it shows exactly
what an API client would get, laid out for a person at a terminal or in a ticket: who and what was
decided and why, then one block per criterion (status, reason, evidence as readable lines with the
FHIR reference, and the published source), then what is missing and the flags. Every line fits in
`WIDTH` columns (long words such as URLs are the only exception: they are never split), there are
no colours and no trailing spaces, so the output can be pasted or diffed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from fhir_vcf.outputs import explain

WIDTH = 100  # columns: the whole view fits a terminal or a ticket without horizontal scrolling
_LABEL = 11  # "technique: " - the header labels' column
_INDENT = "    "  # a criterion's detail lines
_FIELD = 10  # "evidence: " - a criterion's field labels


def _wrap(text: str, first: str, rest: str, width: int = WIDTH) -> list[str]:
    """`text` wrapped to `width`, the first line after `first`, the others after `rest`."""
    return textwrap.wrap(" ".join(str(text).split()), width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _header(label: str, value: str) -> list[str]:
    return _wrap(value, f"{label + ':':<{_LABEL}}", " " * _LABEL)


def _field(label: str, values: Iterable[str]) -> list[str]:
    """A criterion's labelled field; several values each start a line of their own."""
    lines: list[str] = []
    for i, value in enumerate(values):
        head = f"{_INDENT}{(label + ':') if i == 0 else '':<{_FIELD}}"
        lines.extend(_wrap(value, head, " " * len(head)))
    return lines


def _patient_line(evaluation: Mapping[str, Any]) -> str:
    detail = evaluation.get("patientDetail") if isinstance(evaluation.get("patientDetail"), Mapping) else {}
    parts = [detail.get("name", "")]
    if detail.get("birthDate"):
        parts.append(f"born {detail['birthDate']}")
    parts.extend(detail.get("identifiers") or ())
    parts.append(str(evaluation.get("patient", "?")))
    return " · ".join(p for p in parts if p)


def render_text(evaluation: dict[str, Any]) -> str:
    """The evaluation as a readable block: header, every criterion, missing, flags (ends with a newline)."""
    levels = evaluation.get("levels") or []
    technique = str(evaluation.get("technique") or "none")
    reason = str(evaluation.get("techniqueReason") or "")
    if reason and technique != "none":
        technique = reason if reason.startswith(technique) else f"{technique} ({reason})"
    policy = str(evaluation.get("policy", "?"))
    if evaluation.get("policyTitle"):
        policy += f" ({evaluation['policyTitle']})"
    url = explain.policy_url(evaluation)
    lines = [
        *_header("patient", _patient_line(evaluation)),
        *_header("decision", str(evaluation.get("decision", "?"))),
        *_header("why", str(evaluation.get("decisionReason") or "-")),
        *_header("technique", technique),
        *_header("levels", ", ".join(levels) if levels else "-"),
        *_header("as of", str(evaluation.get("asOf", "?"))),
        *_header("policy", policy),
    ]
    if url:
        lines.append(" " * _LABEL + url)
    for group, criteria in explain.grouped([c for c in evaluation.get("criteria") or () if isinstance(c, Mapping)]):
        lines += ["", f"{group.lower()}:"]
        for criterion in criteria:
            lines.extend(_criterion(criterion, evaluation, url))
    for title, items in (("missing", evaluation.get("missing")), ("flags", evaluation.get("flags"))):
        lines.append("")
        if items:
            lines.append(f"{title}:")
            for item in items:
                lines.extend(_wrap(str(item), "  - ", "    "))
        else:
            lines.append(f"{title}: none")
    skipped = explain.skipped_text(evaluation)
    if skipped:
        lines += ["", *_wrap(skipped, "not read: ", " " * len("not read: "))]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _criterion(criterion: Mapping[str, Any], evaluation: Mapping[str, Any], policy_url: str) -> list[str]:
    cid = str(criterion.get("id", ""))
    title = str(criterion.get("title", ""))
    if criterion.get("kind") == "exclusion" and criterion.get("exclusionKind"):
        title += f" ({criterion['exclusionKind']})"
    status = str(criterion.get("status", ""))
    head = f"{cid:<4}{title}"
    gap = WIDTH - len(head) - len(status)
    lines = [f"{head}{' ' * max(2, gap)}{status}"] if gap >= 2 else [head, f"{_INDENT}{status}"]
    lines.extend(_field("reason", [str(criterion.get("reason", ""))]))
    evidence = [f"{line.text} [{line.reference}]" if line.text != line.reference else line.reference
                for line in explain.evidence_lines(criterion, evaluation)]
    if evidence:
        lines.extend(_field("evidence", evidence))
    source = str(criterion.get("source", ""))
    if criterion.get("sourceUrl") and criterion["sourceUrl"] != policy_url:  # the policy's URL is in the header
        source += f" <{criterion['sourceUrl']}>"
    lines.extend(_field("source", [source]))
    return lines

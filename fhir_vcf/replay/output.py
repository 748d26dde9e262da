"""What `fhir-vcf replay` reports: the `Row` of each call, and the ways rows are written (the
table, JUnit XML, the progress line on stderr; `Row.to_json` is the `--format json` line).

Only the standard library: replay's output needs neither the app nor the FHIR models.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

PROGRESS_THRESHOLD = 20  # bundles; above this, progress is shown even when stderr is not a terminal
NO_CARD = "no card"  # what an expectation's `silentOn` expects of a hook: an answer without cards


@dataclass
class Row:
    """One bundle + patient + hook: what the service decided and what is wrong with the answer.

    Beside passing or failing, a case may not have run: `skipped` says why it was not sent (an
    order hook for a patient without a draft augmentation order), `error` why no answer could be
    judged (the service answered an error status or no JSON, or the input file is unusable). JUnit
    reports the two as <skipped> and <error>, not as failures of the service's answer.
    """

    file: str
    patient: str
    hook: str
    decision: str | None = None
    expected: str | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None
    cards: int = 0

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def passed(self) -> bool:
        if self.expected == NO_CARD:
            return self.valid and self.cards == 0
        return self.valid and (self.expected is None or self.decision == self.expected)

    def to_json(self) -> dict[str, Any]:
        problems = list(self.problems)
        if self.valid and not self.passed:
            problems.append(f"decision {self.decision!r}, expected {self.expected!r}" if self.expected != NO_CARD
                            else f"{self.cards} card(s) with decision {self.decision!r}, expected no card")
        return {
            "file": self.file,
            "patient": self.patient,
            "hook": self.hook,
            "decision": self.decision,
            "expected": self.expected,
            "valid": self.valid,
            "problems": problems,
        }


class Progress:
    """`replay: 12/140 name.json` on stderr: rewritten in place on a terminal, one line per file
    otherwise; shown only on a terminal or for more than PROGRESS_THRESHOLD bundles."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.enabled = self.tty or total > PROGRESS_THRESHOLD
        self._dirty = False

    def show(self, index: int, name: str) -> None:
        if not self.enabled:
            return
        text = f"replay: {index}/{self.total} {name}"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty and self._dirty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._dirty = False


COLUMNS = ("file", "patient", "hook", "decision", "expected", "valid", "problems")


def render_table(rows: Sequence[Row]) -> str:
    cells = []
    for row in rows:
        data = row.to_json()
        cells.append([
            data["file"],
            data["patient"],
            data["hook"],
            data["decision"] or "-",
            data["expected"] or "-",
            "yes" if data["valid"] else "NO",
            "; ".join(data["problems"]) or "-",
        ])
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def summary(rows: Sequence[Row], bad: int, skipped: int) -> str:
    passed = sum(1 for r in rows if r.passed)
    text = f"{passed} passed, {len(rows) - passed} failed"
    if skipped:
        text += f", {skipped} skipped (no draft augmentation order for an order hook)"
    if bad:
        text += f", {bad} unusable input file{'s' if bad != 1 else ''}"
    return text


def junit_xml(rows: Sequence[Row], *, skipped: Sequence[Row] = (), unusable: Sequence[Row] = (),
              name: str = "fhir-vcf replay") -> bytes:
    """JUnit XML: one testcase per case (classname = file, name = patient + hook), each as what it
    was: passed; <failure> (an answer that breaks the card rules or the expectation); <error> (no
    answer to judge: an error status, no JSON, an unusable input file); <skipped> (not sent)."""
    cases = [*rows, *skipped, *unusable]
    errors = sum(1 for r in cases if r.error)
    failures = sum(1 for r in rows if not r.error and not r.passed)
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(len(skipped)),
        time=f"{sum(r.seconds for r in cases):.3f}",
    )
    for row in cases:
        case = ET.SubElement(
            suite, "testcase", classname=row.file, name=f"{row.patient} {row.hook}".strip(), time=f"{row.seconds:.3f}"
        )
        data = row.to_json()
        if row.skipped:
            ET.SubElement(case, "skipped", message=short(row.skipped, 300))
        elif row.error:
            error = ET.SubElement(case, "error", message=short(row.error, 300))
            error.text = "\n".join(data["problems"]) or row.error
        elif not row.passed:
            failure = ET.SubElement(case, "failure", message=short("; ".join(data["problems"]), 300))
            failure.text = "\n".join(data["problems"])
        ET.SubElement(case, "system-out").text = json.dumps(data)
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def short(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters: a service's message or body can be long."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

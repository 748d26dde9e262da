"""A population's evaluations as one table: a row per patient (per procedure in an audit), written as
Parquet (pyarrow) and CSV.

The row flattens the evaluation object (docs/design.md) into what a quality or compliance team
filters and counts: the decision, the levels, the technique, each criterion's status in its own
column, the missing documentation, the exclusions found and the care gaps (the continuum-of-care
items, I5, that the record lacks). Nothing is judged here: every value is read from the evaluation.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Lists inside a cell: "; " never appears inside a missing item or a level label.
SEPARATOR = "; "
CARE_GAP_CRITERION = "I5"  # continuum of care (LCD L34106, inclusion 1e): bone-density work-up and treatment
LEADING = ("patient", "procedure", "performed", "as_of", "policy", "decision", "route", "levels", "level_count",
           "technique")
TRAILING = ("exclusions", "missing", "care_gaps", "flags", "decision_reason", "other_criteria")


def columns(criterion_ids: Sequence[str]) -> list[str]:
    """The table's columns for a policy whose criteria are `criterion_ids` (in the policy's order)."""
    return [*LEADING, *criterion_ids, *TRAILING]


def schema(criterion_ids: Sequence[str]) -> pa.Schema:
    ints = {"level_count"}
    return pa.schema([(name, pa.int32() if name in ints else pa.string()) for name in columns(criterion_ids)])


def row(evaluation: Mapping[str, Any], criterion_ids: Sequence[str]) -> dict[str, Any]:
    """One table row from one evaluation object (an audit's carries `procedure` and `performed`)."""
    statuses = {c["id"]: c["status"] for c in evaluation.get("criteria", ())}
    known = set(criterion_ids)
    criteria = {c["id"]: c for c in evaluation.get("criteria", ())}
    gap = criteria.get(CARE_GAP_CRITERION, {})
    out: dict[str, Any] = {
        "patient": evaluation.get("patient"),
        "procedure": evaluation.get("procedure"),
        "performed": evaluation.get("performed"),
        "as_of": evaluation.get("asOf"),
        "policy": evaluation.get("policy"),
        "decision": evaluation.get("decision"),
        "route": evaluation.get("route"),
        "levels": " ".join(evaluation.get("levels", ())),
        "level_count": len(evaluation.get("levels", ())),
        "technique": evaluation.get("technique"),
    }
    for cid in criterion_ids:
        out[cid] = statuses.get(cid)
    out["exclusions"] = SEPARATOR.join(c["id"] for c in evaluation.get("criteria", ())
                                       if c.get("kind") == "exclusion" and c.get("status") == "present")
    out["missing"] = SEPARATOR.join(evaluation.get("missing", ()))
    out["care_gaps"] = SEPARATOR.join(gap.get("missing", ())) if gap.get("status") not in ("met", None) else ""
    out["flags"] = SEPARATOR.join(evaluation.get("flags", ()))
    out["decision_reason"] = evaluation.get("decisionReason")
    out["other_criteria"] = SEPARATOR.join(f"{cid}={s}" for cid, s in statuses.items() if cid not in known)
    return out


class TableWriter:
    """Rows streamed to Parquet and CSV at once, in row groups, never the whole table in memory."""

    def __init__(self, parquet_path: str | Path | None, csv_path: str | Path | None,
                 criterion_ids: Sequence[str], *, group_rows: int = 10_000) -> None:
        self.schema = schema(criterion_ids)
        self.names = self.schema.names
        self.group_rows = group_rows
        self._pending: list[Mapping[str, Any]] = []
        self._parquet = pq.ParquetWriter(str(parquet_path), self.schema) if parquet_path else None
        self._csv_file = open(csv_path, "w", encoding="utf-8", newline="") if csv_path else None  # noqa: SIM115
        self._csv = csv.DictWriter(self._csv_file, fieldnames=self.names) if self._csv_file else None
        if self._csv:
            self._csv.writeheader()
        self.rows = 0

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for r in rows:
            self._pending.append(r)
            if self._csv:
                self._csv.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in self.names})
            self.rows += 1
            if len(self._pending) >= self.group_rows:
                self._flush()

    def _flush(self) -> None:
        if self._parquet and self._pending:
            self._parquet.write_table(pa.Table.from_pylist(self._pending, schema=self.schema))
        self._pending = []

    def close(self) -> None:
        self._flush()
        if self._parquet:
            self._parquet.close()
        if self._csv_file:
            self._csv_file.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_parquet(path: str | Path, rows: Sequence[Mapping[str, Any]], criterion_ids: Sequence[str]) -> None:
    """One Parquet file of rows (a partition of a partitioned dataset)."""
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema(criterion_ids)), str(path))

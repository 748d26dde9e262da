"""`screen` and `audit`: a Bulk source in, the population's outputs out.

    source (folder of NDJSON, or a FHIR server's $export) → chunks → engine (partition by patient,
    judge one patient at a time) → sorted result files → merged outputs:

    OUT/evaluations.jsonl   one evaluation object per patient (per procedure in an audit), by patient
    OUT/table.parquet       the table (fhir_vcf.outputs.table), and the same as OUT/table.csv
    OUT/summary.html        the report with its charts; OUT/summary.json the same counts as data
    OUT/problems.jsonl      each malformed line (file, line, problem); OUT/errors.jsonl patients not judged
    OUT/parts/              the partitioned Parquet written by the Dask workers (dask engine only)
    OUT/export/             the downloaded NDJSON when the source is a FHIR server

The outputs other than run.json (timings, engine) are the same bytes whatever the engine and the
number of workers: every partition is sorted, and the merge orders by (patient, procedure).
"""

from __future__ import annotations

import heapq
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from fhir_vcf.errors import InputError
from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.outputs.summary import Summary, render_html
from fhir_vcf.outputs.table import TableWriter
from fhir_vcf.population.engines import DaskEngine, LocalEngine, Stats
from fhir_vcf.population.patients import Job
from fhir_vcf.record import PatientRecord
from fhir_vcf.rules.policy import Policy
from fhir_vcf.sources.bulk_ndjson import is_unused, ndjson_files, plan_chunks
from fhir_vcf.version import __version__

MODES = ("screen", "audit")
SHOWN_PROBLEMS = 10  # malformed lines printed on stderr; all of them are in problems.jsonl


@dataclass
class RunReport:
    out: Path
    rows: int
    patients: int
    skipped: int
    bad_lines: int
    errors: int
    seconds: float
    summary: Summary


def criteria_of(policy: Policy, as_of: date) -> tuple[list[str], dict[str, str]]:
    """The criterion ids (in the policy's order) and titles, from the evaluation of an empty record:
    the table's columns come from what the evaluation reports, not from a list kept here."""
    probe = evaluate_record(PatientRecord(patient="Patient/probe"), as_of=as_of, policy=policy)
    return [c["id"] for c in probe["criteria"]], {c["id"]: c["title"] for c in probe["criteria"]}


def source_files(folder: Path) -> tuple[list[Path], int]:
    """(NDJSON files to read, number skipped because their name says the type is never read)."""
    files = ndjson_files(folder)
    used = [f for f in files if not is_unused(f)]
    if not files:
        raise InputError("no Bulk Data NDJSON files (*.ndjson) in the folder", source=str(folder))
    return used, len(files) - len(used)


def run(mode: str, folder: str | Path, out: str | Path, *, as_of: date, policy: Policy, engine: Any,
        all_patients: bool = False, source_label: str | None = None, err: TextIO | None = None) -> RunReport:
    """Judge every patient (screen) or every completed augmentation (audit) of a Bulk folder."""
    err = err or sys.stderr
    if mode not in MODES:
        raise ValueError(mode)
    started = time.perf_counter()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, skipped_files = source_files(Path(folder))
    ids, titles = criteria_of(policy, as_of)
    job = Job(mode=mode, as_of=as_of, policy=policy, criterion_ids=tuple(ids), all_patients=all_patients)
    work = out_dir / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if isinstance(engine, DaskEngine):
        shutil.rmtree(out_dir / "parts", ignore_errors=True)
        engine.tables = out_dir / "parts"
    try:
        chunks = plan_chunks(files)
        result_files, stats = engine.run(chunks, job, work)
        summary = _merge(result_files, out_dir, ids)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write_problems(out_dir, stats)
    seconds = time.perf_counter() - started
    meta = {"mode": mode, "asOf": as_of.isoformat() if mode == "screen" else None, "policy": policy.id,
            "policyTitle": policy.title, "source": source_label or str(folder), "patients": stats.patients,
            "withoutFracture": stats.skipped, "lines": stats.lines, "unusedLines": stats.unused,
            "skippedFiles": skipped_files, "badLines": len(stats.bad_lines), "errors": len(stats.errors),
            "version": __version__}
    (out_dir / "summary.json").write_text(json.dumps({**meta, **summary.to_dict()}, indent=1) + "\n",
                                          encoding="utf-8")
    (out_dir / "summary.html").write_text(render_html(summary, {**meta, "engine": engine.name}, titles),
                                          encoding="utf-8")
    (out_dir / "run.json").write_text(json.dumps({"engine": engine.name, "workers": engine.workers,
                                                  "seconds": round(seconds, 3), "chunks": len(chunks),
                                                  "patients": stats.patients}, indent=1) + "\n", encoding="utf-8")
    for problem in sorted(stats.bad_lines, key=lambda b: (b.file, b.line))[:SHOWN_PROBLEMS]:
        print(f"fhir-vcf: {problem}", file=err)
    if len(stats.bad_lines) > SHOWN_PROBLEMS:
        print(f"fhir-vcf: ... {len(stats.bad_lines) - SHOWN_PROBLEMS} more malformed lines in problems.jsonl",
              file=err)
    return RunReport(out_dir, summary.rows, stats.patients, stats.skipped, len(stats.bad_lines), len(stats.errors),
                     seconds, summary)


def _lines(path: Path) -> Iterator[tuple[tuple[str, str], str, str]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            patient, procedure, row, evaluation = line.rstrip("\n").split("\t", 3)
            yield (patient, procedure), row, evaluation


def _merge(files: list[Path], out_dir: Path, ids: list[str]) -> Summary:
    """k-way merge of the sorted partition files into the outputs: one line per partition in memory."""
    summary = Summary()
    with open(out_dir / "evaluations.jsonl", "w", encoding="utf-8", newline="\n") as evaluations, \
            TableWriter(out_dir / "table.parquet", out_dir / "table.csv", ids) as table:
        for _, row_text, evaluation in heapq.merge(*(_lines(f) for f in files), key=lambda item: item[0]):
            row = json.loads(row_text)
            evaluations.write(evaluation + "\n")
            table.write([row])
            summary.add(row)
    return summary


def _write_problems(out_dir: Path, stats: Stats) -> None:
    with open(out_dir / "problems.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for b in sorted(stats.bad_lines, key=lambda b: (b.file, b.line, b.problem)):
            fh.write(json.dumps({"file": b.file, "line": b.line, "problem": b.problem}) + "\n")
    with open(out_dir / "errors.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for e in sorted(stats.errors, key=lambda e: (e.get("patient", ""), e.get("procedure", ""))):
            fh.write(json.dumps(e) + "\n")


def make_engine(name: str, *, workers: int | None = None, scheduler: str | None = None, progress: bool = True,
                err: TextIO = sys.stderr) -> LocalEngine | DaskEngine:
    if name == "dask":
        return DaskEngine(scheduler, workers, progress=progress, err=err)
    return LocalEngine(workers, progress=progress, err=err)

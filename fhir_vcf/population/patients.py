"""One patient's NDJSON lines in, that patient's results out: the unit of work of every engine.

A patient's lines arrive in any order from any engine; they are sorted by (file, line) first, so
that the record, and with it the answer, is the same whatever engine and however many workers
(the record keeps bundle order within a type, and ties are broken by it). Lines that are not valid
FHIR are dropped one by one and reported with file:line; the rest of the patient is still judged.

`screen` judges each patient as of one date; `audit` judges each completed vertebral augmentation
as of the day it was performed, with that procedure as the request. Both call
`fhir_vcf.evaluation` only.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Any

from fhir_vcf.errors import FhirVcfError, InputError
from fhir_vcf.evaluation import evaluate_record, performed_augmentations
from fhir_vcf.outputs.table import row as table_row
from fhir_vcf.record import load_resources
from fhir_vcf.rules.policy import Policy
from fhir_vcf.sources.bulk_ndjson import BadLine, parse_line, references_in, resource_key

# A line of a patient: (file name, line number, raw JSON).
Line = tuple[str, int, bytes]


@dataclass(frozen=True)
class Job:
    """What a run asks of every patient; pickled to worker processes and Dask workers."""

    mode: str  # "screen" | "audit"
    as_of: date
    policy: Policy
    criterion_ids: tuple[str, ...]
    all_patients: bool = False


@dataclass
class Result:
    """One output line: its sort key, the evaluation as JSON text, and its table row."""

    key: tuple[str, str]
    evaluation: str
    row: dict[str, Any]


@dataclass
class PatientOutcome:
    results: list[Result] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    skipped: int = 0  # screened and found without a vertebral fracture or request (counted, not listed)


_BY_PLACE = itemgetter(0, 1)  # a line's (file, line number)


def _entries(lines: Sequence[Line], shared: Mapping[str, bytes], out: PatientOutcome) -> tuple[list, dict]:
    """(entries for load_resources, label → (file, line)); bad lines reported and dropped."""
    entries: list[tuple[None, dict[str, Any], str]] = []
    where: dict[str, tuple[str, int]] = {}  # its keys: every label read here
    for file, number, raw in sorted(lines, key=_BY_PLACE):
        try:
            resource = parse_line(raw)
        except InputError as exc:
            out.bad_lines.append(BadLine(file, number, exc.message))
            continue
        label = resource_key(resource) or f"{resource['resourceType']} at {file}:{number}"
        entries.append((None, resource, label))
        where[label] = (file, number)
    if shared:
        wanted = {ref for _, resource, _ in entries for ref in references_in(resource)} - where.keys()
        for ref in sorted(wanted & shared.keys()):
            file, number, raw = _split_shared(shared[ref])
            try:
                entries.append((None, parse_line(raw), ref))
                where[ref] = (file, number)
            except InputError as exc:  # already reported when the shared file was read
                del exc
    return entries, where


def _split_shared(value: bytes) -> Line:
    file, number, raw = value.split(b"\t", 2)
    return file.decode(), int(number), raw


def _load(patient: str, entries: list, where: dict[str, tuple[str, int]], out: PatientOutcome) -> Any:
    """The patient's record, dropping (and reporting) each resource that is not valid FHIR."""
    while True:
        try:
            records = load_resources(entries, source=where_of(entries, where))
        except InputError as exc:
            spot = where.get(exc.resource or "")
            if spot is None:
                raise
            out.bad_lines.append(BadLine(spot[0], spot[1], str(InputError(exc.message, resource=exc.resource,
                                                                              element=exc.element))))
            entries = [e for e in entries if e[2] != exc.resource]
            continue
        return next((r for r in records if r.patient == patient), records[0] if records else None)


def where_of(entries: list, where: Mapping[str, tuple[str, int]]) -> str:
    files = sorted({where[e[2]][0] for e in entries if e[2] in where})
    return ", ".join(files) if len(files) <= 3 else f"{len(files)} files"


def evaluate_patient(patient: str, lines: Sequence[Line], shared: Mapping[str, bytes], job: Job) -> PatientOutcome:
    """The results of one patient for the job; never raises for bad input."""
    out = PatientOutcome()
    entries, where = _entries(lines, shared, out)
    if job.mode == "audit" and not any(e[1]["resourceType"] == "Procedure" for e in entries):
        return out  # no Procedure at all: nothing an audit could judge, so nothing to load
    try:
        record = _load(patient, entries, where, out)
    except FhirVcfError as exc:
        out.errors.append({"patient": patient, "problem": str(exc)})
        return out
    if record is None:
        return out
    try:
        if job.mode == "audit":
            _audit(record, job, out)
        else:
            _screen(record, job, out)
    except FhirVcfError as exc:
        out.errors.append({"patient": patient, "problem": str(exc)})
    except Exception as exc:  # a bug, not bad input: one patient is reported, the run goes on
        out.errors.append({"patient": patient, "problem": f"internal error: {type(exc).__name__}"})
    return out


def _screen(record: Any, job: Job, out: PatientOutcome) -> None:
    evaluation = evaluate_record(record, as_of=job.as_of, policy=job.policy)
    if not job.all_patients and evaluation.get("route") == "none" and "request" not in evaluation:
        out.skipped += 1
        return
    out.results.append(_result((record.patient, ""), evaluation, job))


def _audit(record: Any, job: Job, out: PatientOutcome) -> None:
    for reference, performed in performed_augmentations(record):
        if performed is None:
            out.errors.append({"patient": record.patient, "procedure": reference,
                               "problem": "no performed date (performedDateTime / performedPeriod): cannot be "
                                          "judged as of its day"})
            continue
        evaluation = evaluate_record(record, as_of=performed, policy=job.policy, request=reference)
        evaluation = {"procedure": reference, "performed": performed.isoformat(), **evaluation}
        out.results.append(_result((record.patient, reference), evaluation, job))


def _result(key: tuple[str, str], evaluation: dict[str, Any], job: Job) -> Result:
    return Result(key, json.dumps(evaluation, separators=(",", ":")), table_row(evaluation, job.criterion_ids))


# The cyclic collector in a process that judges patients in bulk (the engines' workers; the CLI's own
# process when it runs one). Each patient allocates tens of thousands of containers (parsed JSON, the
# record, its facts) and frees almost all of them by reference counting; with CPython's default first
# threshold (700) that set off dozens of young collections a patient, and every full collection walked
# everything the process had imported and built (~100k objects). Measured on 200 realistic patients
# of 100 resources, CPU, interleaved: see docs/performance.md. The same setting as the serving workers
# (`fhir_vcf.server.GC_THRESHOLDS`), which cannot be imported from here (transports sit to the right).
# Memory stays bounded: cyclic garbage is still collected, at the next young collection (every 10,000
# net container allocations, a fraction of one patient) or, if it has survived into an older
# generation, at most 10 and 100 young collections later; what is frozen is what the process held
# before its first patient (modules, tables, policy), which it keeps to the end anyway.
BULK_GC_THRESHOLDS = (10_000, 10, 10)
_collector_settled = False


def settle_collector() -> None:
    """Once per process: collect, freeze what the process holds so far (`gc.freeze`), and raise the
    collector's thresholds (`BULK_GC_THRESHOLDS`). For processes that exist to judge patients in bulk
    only; the library itself only pauses the collector while it reads and judges one record
    (`fhir_vcf.collector`), and gives the caller's setting back."""
    global _collector_settled
    if _collector_settled:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*BULK_GC_THRESHOLDS)
    _collector_settled = True


def evaluate_group(groups: Iterable[tuple[str, Sequence[Line]]], shared: Mapping[str, bytes],
                   job: Job) -> PatientOutcome:
    """Every patient of a partition, in patient order, folded into one outcome (results sorted by key).
    Called only in processes that judge in bulk, so it settles the collector first (`settle_collector`)."""
    settle_collector()
    total = PatientOutcome()
    for patient, lines in sorted(groups, key=lambda g: g[0]):
        one = evaluate_patient(patient, lines, shared, job)
        total.results.extend(one.results)
        total.bad_lines.extend(one.bad_lines)
        total.errors.extend(one.errors)
        total.skipped += one.skipped
    total.results.sort(key=lambda r: r.key)
    return total

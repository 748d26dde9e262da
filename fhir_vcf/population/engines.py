"""Where the patients are judged: `local` (processes on this machine) or `dask` (a Dask distributed
cluster). Both end in the same place: result files sorted by patient, one per partition, under the
run's work folder, merged by `run.py` into the outputs, so the outputs are the same bytes whatever
the engine and however many workers.

local  read the chunks in parallel, append each patient's lines to an on-disk bucket
       (`partition.scatter`), then judge one bucket per process, one patient at a time.
dask   the same read as a Dask bag, a task shuffle by patient (`Bag.groupby`), judgement per
       partition, and each partition written by its worker as Parquet (the partitioned table) and as
       a result file. Without a scheduler address, a LocalCluster of this machine's cores.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from fhir_vcf.errors import ConfigError
from fhir_vcf.outputs.table import write_parquet
from fhir_vcf.population.partition import (
    DEFAULT_BUCKET_BYTES,
    ChunkItems,
    buckets_in,
    keep_first,
    read_bucket,
    read_items,
    read_shared,
    scatter,
)
from fhir_vcf.population.patients import Job, PatientOutcome, evaluate_group
from fhir_vcf.sources.bulk_ndjson import BadLine, Chunk


@dataclass
class Stats:
    """What a run saw besides its results."""

    lines: int = 0
    unused: int = 0
    patients: int = 0
    skipped: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def add_read(self, items: ChunkItems) -> None:
        self.lines += items.lines
        self.unused += items.unused
        self.bad_lines.extend(items.bad)

    def add_outcome(self, outcome: PatientOutcome, patients: int) -> None:
        self.patients += patients
        self.skipped += outcome.skipped
        self.bad_lines.extend(outcome.bad_lines)
        self.errors.extend(outcome.errors)


def partitions_for(chunks: Sequence[Chunk], workers: int, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> int:
    """Enough partitions that each holds about `bucket_bytes` of NDJSON, and at least two per worker."""
    total = sum(c.length for c in chunks)
    return max(2 * workers, math.ceil(total / bucket_bytes), 1)


def write_results(path: Path, outcome: PatientOutcome) -> None:
    """A partition's results, sorted: `patient TAB procedure TAB row-json TAB evaluation-json` per line."""
    import json

    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for r in outcome.results:
            fh.write(f"{r.key[0]}\t{r.key[1]}\t{json.dumps(r.row, separators=(',', ':'))}\t{r.evaluation}\n")


def _bar(total: int, desc: str, unit: str, err: TextIO, show: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, file=err, disable=not show, dynamic_ncols=True, leave=False)


# --------------------------------------------------------------------------- local


_SHARED: dict[str, dict[str, bytes]] = {}


def _shared_of(work: Path) -> dict[str, bytes]:
    """The shared resources, read once per process."""
    key = str(work)
    if key not in _SHARED:
        _SHARED.clear()
        _SHARED[key] = read_shared(work)
    return _SHARED[key]


def _judge_bucket(folder: Path, work: Path, results: Path, job: Job) -> tuple[Path, PatientOutcome, int]:
    groups = read_bucket(folder)
    outcome = evaluate_group(groups.items(), _shared_of(work), job)
    path = results / f"{folder.name}.tsv"
    write_results(path, outcome)
    outcome.results = []
    return path, outcome, len(groups)


class LocalEngine:
    """Processes on this machine (default: one per core); one process runs in this one, no pool."""

    name = "local"

    def __init__(self, workers: int | None = None, *, progress: bool = True, err: TextIO = sys.stderr) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self.err = err

    def run(self, chunks: Sequence[Chunk], job: Job, work: Path) -> tuple[list[Path], Stats]:
        stats = Stats()
        buckets = partitions_for(chunks, self.workers)
        parts = work / "parts"
        results = work / "results"
        results.mkdir(parents=True, exist_ok=True)
        pool = (ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) if self.workers > 1 else None)
        try:
            with _bar(len(chunks), "reading", "chunk", self.err, self.progress) as bar:
                for items in self._map(pool, scatter, [(c, i, parts, buckets) for i, c in enumerate(chunks)]):
                    stats.add_read(items)
                    bar.update()
            folders = list(buckets_in(parts))
            files: list[Path] = []
            with _bar(len(folders), "judging", "partition", self.err, self.progress) as bar:
                for path, outcome, patients in self._map(pool, _judge_bucket,
                                                         [(f, parts, results, job) for f in folders]):
                    files.append(path)
                    stats.add_outcome(outcome, patients)
                    bar.update()
                    bar.set_postfix(patients=stats.patients)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return sorted(files), stats

    @staticmethod
    def _map(pool: ProcessPoolExecutor | None, fn: Any, calls: Iterable[tuple[Any, ...]]) -> Iterable[Any]:
        """Results as they complete (order does not matter: everything is sorted before it is written)."""
        if pool is None:
            for args in calls:
                yield fn(*args)
            return
        futures = [pool.submit(fn, *args) for args in calls]
        for future in as_completed(futures):
            yield future.result()


# --------------------------------------------------------------------------- dask


def _patient_lines(items: ChunkItems) -> list[tuple[str, tuple[str, int, bytes]]]:
    return [(p, (f, n, raw)) for p, f, n, raw in items.patients]


def _patient_key(item: tuple[str, Any]) -> str:
    return item[0]


def _counts(items: ChunkItems) -> tuple[int, int, list[BadLine]]:
    return items.lines, items.unused, items.bad


def _shared_dict(parts: Iterable[ChunkItems]) -> dict[str, bytes]:
    shared: dict[str, bytes] = {}
    for items in parts:
        for key, value in items.shared:
            keep_first(shared, key, value)
    return shared


def _merge_shared(dicts: Iterable[dict[str, bytes]]) -> dict[str, bytes]:
    shared: dict[str, bytes] = {}
    for d in dicts:
        for key, value in d.items():
            keep_first(shared, key, value)
    return shared


def _judge_partition(groups: Iterable[tuple[str, list[tuple[str, tuple[str, int, bytes]]]]],
                     shared: dict[str, bytes], job: Job) -> list[tuple[PatientOutcome, int]]:
    grouped = [(patient, [line for _, line in members]) for patient, members in groups]
    return [(evaluate_group(grouped, shared, job), len(grouped))]


def _write_partition(part: list[tuple[PatientOutcome, int]], index: int, results: str, tables: str,
                     criterion_ids: Sequence[str]) -> tuple[str, PatientOutcome, int]:
    (outcome, patients), = part
    path = Path(results) / f"p{index:05d}.tsv"
    write_results(path, outcome)
    write_parquet(Path(tables) / f"part-{index:05d}.parquet", [r.row for r in outcome.results], criterion_ids)
    outcome.results = []
    return str(path), outcome, patients


class DaskEngine:
    """A Dask distributed cluster: the one at `scheduler`, else a LocalCluster of `workers` processes."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None, *, progress: bool = True,
                 err: TextIO = sys.stderr, memory_limit: str = "4GiB") -> None:
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self.err = err
        self.memory_limit = memory_limit
        self.tables: Path | None = None  # where the partitioned Parquet goes; set by the run

    def run(self, chunks: Sequence[Chunk], job: Job, work: Path) -> tuple[list[Path], Stats]:
        import dask
        import dask.bag as db
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed

        stats = Stats()
        results = work / "results"
        results.mkdir(parents=True, exist_ok=True)
        tables = self.tables or work / "tables"
        tables.mkdir(parents=True, exist_ok=True)
        cluster = None
        try:
            if self.scheduler:
                client = Client(self.scheduler, timeout="20s")
            else:
                # Ports: the scheduler's and the workers' are picked free; ":0" does the same for the
                # scheduler's HTTP server (None would still try the fixed 8787).
                cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit=self.memory_limit,
                                       silence_logs=40, local_directory=str(work / "dask"))
                client = Client(cluster)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler ({type(exc).__name__}: {exc})") from None
        try:
            # One partition per chunk (about 16 MiB of NDJSON); the task shuffle keeps that count, so
            # a partition after the shuffle holds about as much as a chunk, whatever the population.
            read = db.from_sequence(list(chunks), npartitions=max(1, len(chunks))).map(read_items)
            shared = read.reduction(_shared_dict, _merge_shared)
            grouped = read.map(_patient_lines).flatten().groupby(_patient_key, shuffle="tasks")
            judged = grouped.map_partitions(_judge_partition, shared, job)
            writes = [dask.delayed(_write_partition)(part, i, str(results), str(tables), job.criterion_ids)
                      for i, part in enumerate(judged.to_delayed())]
            counts = read.map(_counts).to_delayed()
            futures = client.compute([*writes, *counts])
            files: list[Path] = []
            with _bar(len(writes), "judging", "partition", self.err, self.progress) as bar:
                for future in dask_completed(futures):
                    value = future.result()
                    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], PatientOutcome):
                        path, outcome, patients = value
                        files.append(Path(path))
                        stats.add_outcome(outcome, patients)
                        bar.update()
                        bar.set_postfix(patients=stats.patients)
                    else:
                        for lines, unused, bad in value:
                            stats.lines += lines
                            stats.unused += unused
                            stats.bad_lines.extend(bad)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return sorted(files), stats

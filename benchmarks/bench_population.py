"""Population throughput: patients per second per core, scaling from 1 to 2 workers on both engines,
and peak memory, for synthetic populations (default 10,000 patients; add 100000 for the big run).

    .venv/bin/python benchmarks/bench_population.py                           # 10k: screen+audit, 1 and 2 workers
    .venv/bin/python benchmarks/bench_population.py --patients 10000 100000 --workers 2 --modes screen audit

Each measurement runs in a fresh process (so peak memory is its own): the whole `fhir-vcf screen`
or `audit` of a folder, from reading the NDJSON to the merged outputs. Peak memory is sampled every
0.2 s over the process tree (the run, its pool processes or its LocalCluster's nannies and workers),
summed, and also reported for the largest single process. The target is a ratio measured in the same
run: 2 local workers judge at least 1.5x as many patients per second as 1 (on a 2-core machine that
nobody else is using; say so when it is shared). Populations are written once under --work and kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psutil

TARGET_SCALING = 1.5  # 2 workers vs 1, local engine, screen
AS_OF = date(2025, 6, 30)


def _tree_rss(root: psutil.Process) -> tuple[int, int]:
    total = biggest = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            rss = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += rss
        biggest = max(biggest, rss)
    return total, biggest


def measure_one(args: argparse.Namespace) -> None:
    """Run one configuration in this process; print one JSON line."""
    from fhir_vcf.population.run import make_engine, run
    from fhir_vcf.rules.policy import load_policies, load_policy

    me = psutil.Process()
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            total, biggest = _tree_rss(me)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], biggest)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    policy = load_policy("cms-lcd-pva", load_policies())
    engine = make_engine(args.engine, workers=args.one_workers, progress=False)
    started = time.perf_counter()
    report = run(args.mode, args.source, args.out, as_of=AS_OF, policy=policy, engine=engine,
                 err=open(os.devnull, "w"))  # noqa: SIM115
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    print(json.dumps({"patients": report.patients, "rows": report.rows, "seconds": round(seconds, 2),
                      "peak_tree_mb": round(peak[0] / 2**20), "peak_process_mb": round(peak[1] / 2**20)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", default=["local", "dask"], choices=["local", "dask"])
    parser.add_argument("--modes", nargs="+", default=["screen", "audit"], choices=["screen", "audit"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/fhir-vcf-bench"))
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--one-workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure_one(args)
        return 0

    from fhir_vcf.population.synth import write_population

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(f"machine: {cores} cores, load average {load:.2f} at start", flush=True)
    results = []
    for n in args.patients:
        source = args.work / f"pop-{n}"
        if not (source / "Patient.ndjson").exists():
            started = time.perf_counter()
            write_population(source, n, seed=1, as_of=AS_OF)
            print(f"synth {n:>7} patients: {time.perf_counter() - started:6.1f} s, "
                  f"{sum(p.stat().st_size for p in source.iterdir()) / 2**20:,.0f} MiB NDJSON", flush=True)
        for mode in args.modes:
            for engine in args.engines:
                for workers in args.workers:
                    out = args.work / f"out-{n}-{mode}-{engine}-{workers}"
                    cmd = [sys.executable, __file__, "--one", "--engine", engine, "--one-workers", str(workers),
                           "--mode", mode, "--source", str(source), "--out", str(out)]
                    line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
                    m = json.loads(line.splitlines()[-1])
                    m.update(n=n, mode=mode, engine=engine, workers=workers,
                             per_second=round(m["patients"] / m["seconds"], 1),
                             per_second_per_core=round(m["patients"] / m["seconds"] / workers, 1))
                    results.append(m)
                    print(f"{mode:6} {engine:5} {workers} worker(s) {n:>7} patients: {m['seconds']:8.1f} s "
                          f"{m['per_second']:8.1f} patients/s {m['per_second_per_core']:8.1f} /s/core "
                          f"peak {m['peak_tree_mb']:,} MiB (largest process {m['peak_process_mb']:,} MiB)",
                          flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    verdict = 0
    for n in args.patients:
        pair = {m["workers"]: m for m in results if m["n"] == n and m["engine"] == "local" and m["mode"] == "screen"}
        if 1 in pair and 2 in pair:
            ratio = pair[2]["per_second"] / pair[1]["per_second"]
            ok = ratio >= TARGET_SCALING
            verdict |= not ok
            print(f"target: local screen of {n} patients, 2 workers / 1 = {ratio:.2f}x >= {TARGET_SCALING}x: "
                  f"{'within' if ok else 'OVER'}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())

"""Prometheus metrics shared by every transport and the FHIR client.

Defined once at import so that several app instances (tests create many) share one registry
without "duplicated timeseries" errors.

Several worker processes (`fhir-vcf serve`: gunicorn). Each worker counts in its own memory, so
`/metrics` would show whichever worker answered. prometheus_client's multiprocess mode fixes that:
with `PROMETHEUS_MULTIPROC_DIR` set *before prometheus_client is first imported* (it picks its
value class at import time), every process writes its values to memory-mapped files in that
folder, and `exposition()` sums the files of every worker, living or dead (a counter must not go
down when gunicorn replaces a worker). `fhir_vcf.server.serve` sets the variable before anything
imports this module; outside `serve` (tests, `flask run`) the variable is unset and `exposition()`
is the plain registry of this process.

Counters and histograms need nothing more. A Gauge in multiprocess mode needs a
`multiprocess_mode` saying how the workers' values combine: `fhir_vcf_build_info` (1, labelled with
the version, as Prometheus' `*_build_info` convention has it) uses `max`, so every worker and the
master report the same one series.

Names follow Prometheus' conventions: base units in the name (`*_duration_seconds`), `_total` on
counters. The process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...)
that prometheus_client's default registry gives a single process are, in multiprocess mode, given
for every live process of the service (the gunicorn master and its workers, found through the
metric files in the folder), one series per process labelled `pid`: a per-process counter stays a
counter when a worker is replaced, which a sum over the living processes would not.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from fhir_vcf.version import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("fhir_vcf_http_requests_total", "HTTP requests handled", ["endpoint", "method", "status"])
LATENCY = Histogram("fhir_vcf_http_request_duration_seconds", "HTTP request duration", ["endpoint"])
DECISIONS = Counter("fhir_vcf_decisions_total", "Evaluation decisions", ["decision", "policy"])
FHIR_LATENCY = Histogram("fhir_vcf_fhir_call_duration_seconds", "Duration of calls to FHIR servers", ["upstream"])
FHIR_ERRORS = Counter("fhir_vcf_fhir_call_errors_total", "Failed calls to FHIR servers", ["upstream", "status"])
BUILD_INFO = Gauge(
    "fhir_vcf_build_info", "The running fhir-vcf release (always 1)", ["version", "python"],
    multiprocess_mode="max",
)
BUILD_INFO.labels(__version__, platform.python_version()).set(1)

_PID_IN_FILE = re.compile(r"_(\d+)\.db$")  # prometheus_client's per-process files: counter_1234.db


def multiprocess_dir() -> str | None:
    """The multiprocess folder when multiprocess mode is on (`PROMETHEUS_MULTIPROC_DIR`), else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> bytes:
    """The Prometheus text exposition: every worker's values summed in multiprocess mode, else
    this process's registry.

    In multiprocess mode a fresh registry with only the `MultiProcessCollector` is built per
    scrape (prometheus_client's documented recipe): the default registry would add this worker's
    own values a second time.
    """
    path = multiprocess_dir()
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        registry.register(ServiceProcesses(path))
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class ServiceProcesses(Collector):
    """`process_*` metrics of every live process of the service, one series per process (`pid`).

    The processes: this one, its parent (the gunicorn master) and its siblings (the other
    workers) that left a metric file in the multiprocess folder. Limiting them to this family
    keeps an unrelated process that happens to reuse a dead worker's pid out of the answer.
    """

    def __init__(self, path: str, proc: str = "/proc") -> None:
        self.path = Path(path)
        self.proc = Path(proc)

    def pids(self) -> list[int]:
        family = {os.getpid(), os.getppid()}
        found = {os.getpid()}
        for file in self.path.glob("*.db"):
            match = _PID_IN_FILE.search(file.name)
            if match:
                found.add(int(match.group(1)))
        return sorted(pid for pid in found if self._alive(pid) and (pid in family or self._parent(pid) == os.getppid()))

    def _alive(self, pid: int) -> bool:
        return (self.proc / str(pid) / "stat").exists()

    def _parent(self, pid: int) -> int | None:
        try:
            stat = (self.proc / str(pid) / "stat").read_text()
        except OSError:
            return None
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rsplit(")", 1)[-1].split()
        return int(fields[1]) if len(fields) > 1 else None

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.pids():
            for metric in _process_metrics(pid, self.proc):
                family = families.setdefault(metric.name, Metric(metric.name, metric.documentation, metric.type))
                for sample in metric.samples:
                    family.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()


def _process_metrics(pid: int, proc: Path) -> Iterable[Metric]:
    """prometheus_client's own process collector, for one pid (nothing when the process is gone)."""
    return ProcessCollector(pid=lambda: pid, proc=str(proc), registry=None).collect()


__all__ = [
    "BUILD_INFO",
    "DECISIONS",
    "FHIR_ERRORS",
    "FHIR_LATENCY",
    "LATENCY",
    "MULTIPROC_ENV",
    "REQUESTS",
    "ServiceProcesses",
    "exposition",
    "multiprocess_dir",
]

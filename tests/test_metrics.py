"""`/metrics` across gunicorn workers: prometheus_client's multiprocess mode.

prometheus_client picks its value class when it is first imported, so multiprocess mode is
tested in fresh interpreters: each subprocess below is one "worker" with `PROMETHEUS_MULTIPROC_DIR`
set before any import, sharing one folder as the workers of `fhir-vcf serve` do.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from fhir_vcf import create_app
from fhir_vcf.metrics import ServiceProcesses
from fhir_vcf.version import __version__

WORKER = textwrap.dedent(
    """
    import sys
    from fhir_vcf import create_app

    client = create_app({"database_url": "sqlite://"}).test_client()
    for _ in range(int(sys.argv[1])):
        assert client.get("/healthz").status_code == 200
    if sys.argv[2] == "scrape":
        response = client.get("/metrics")
        assert response.status_code == 200
        sys.stdout.write(response.get_data(as_text=True))
    """
)


def run_worker(calls: int, action: str, multiproc_dir: Path | None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_VCF_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    if multiproc_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(calls), action],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def sample(text: str, name: str, labels: str) -> float | None:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


HEALTHZ = 'endpoint="/healthz",method="GET",status="200"'


def test_metrics_are_summed_over_worker_processes(tmp_path: Path) -> None:
    run_worker(2, "exit", tmp_path)  # a worker that served two calls, then exited
    text = run_worker(3, "scrape", tmp_path)  # another worker answers the scrape
    assert sample(text, "fhir_vcf_http_requests_total", HEALTHZ) == 5.0
    assert sample(text, "fhir_vcf_http_request_duration_seconds_count", 'endpoint="/healthz"') == 5.0
    counter_files = sorted(tmp_path.glob("counter_*.db"))
    assert len(counter_files) == 2  # one file per worker process
    assert "python_info" not in text  # only the multiprocess collector: no per-process duplicates
    # process metrics for the live processes only, one series each: the exited worker is not one
    pids = set(re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\} ', text, re.MULTILINE))
    scraper = re.search(r'^process_start_time_seconds\{pid="(\d+)"\}', text, re.MULTILINE)
    assert scraper is not None and pids == {scraper.group(1)}
    exited = {f.stem.rsplit("_", 1)[1] for f in counter_files} - pids
    assert len(exited) == 1
    assert re.search(r'^process_cpu_seconds_total\{pid="\d+"\} ', text, re.MULTILINE)
    assert sample(text, "fhir_vcf_build_info", f'python="{platform.python_version()}",version="{__version__}"') == 1.0


def test_process_metrics_cover_the_parent_and_siblings_not_strangers(tmp_path: Path) -> None:
    """The gunicorn layout: a master with workers, each leaving metric files (the master's build-info
    gauge). Here this test process plays a worker: its parent is included, an unrelated live process
    (pid 1, init; or a child of ours, no sibling) with a planted file is not, nor a dead pid."""
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (os.getppid(), sibling.pid, 1, 999_999_999):
            (tmp_path / f"counter_{pid}.db").write_bytes(b"")
        collector = ServiceProcesses(str(tmp_path))
        found = collector.pids()
        assert os.getpid() in found and os.getppid() in found
        assert 1 not in found or os.getppid() == 1
        assert 999_999_999 not in found
        assert sibling.pid not in found
        names = {m.name for m in collector.collect()}
        assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= names
    finally:
        sibling.kill()
        sibling.wait()


def test_without_the_variable_each_process_counts_alone() -> None:
    text = run_worker(3, "scrape", None)
    assert sample(text, "fhir_vcf_http_requests_total", HEALTHZ) == 3.0
    assert "python_info" in text  # the plain default registry (with its platform collector)
    assert re.search(r"^process_resident_memory_bytes \S+$", text, re.MULTILINE)  # this process, unlabelled
    assert sample(text, "fhir_vcf_build_info", f'python="{platform.python_version()}",version="{__version__}"') == 1.0


def test_in_process_metrics_use_the_default_registry() -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    client = create_app({"database_url": "sqlite://"}).test_client()
    before = sample(client.get("/metrics").get_data(as_text=True), "fhir_vcf_http_requests_total", HEALTHZ) or 0.0
    client.get("/healthz")
    after = sample(client.get("/metrics").get_data(as_text=True), "fhir_vcf_http_requests_total", HEALTHZ)
    assert after == before + 1


def test_remembered_children_are_the_ones_labels_returns():
    """`ops._child` remembers `metric.labels(...)`: the very child prometheus_client keeps, so a count
    through it is the count of that series."""
    from fhir_vcf.metrics import DECISIONS, LATENCY, REQUESTS
    from fhir_vcf.service import ops

    for metric, labels in ((REQUESTS, ("/x", "GET", "200")), (LATENCY, ("/x",)), (DECISIONS, ("eligible", "p"))):
        assert ops._child(metric, *labels) is metric.labels(*labels)
        assert ops._child(metric, *labels) is ops._child(metric, *labels)
    before = REQUESTS.labels("/x", "GET", "200")._value.get()
    ops._child(REQUESTS, "/x", "GET", "200").inc()
    assert REQUESTS.labels("/x", "GET", "200")._value.get() == before + 1
    ops.record_decisions([{"decision": "eligible"}], "p")
    assert DECISIONS.labels("eligible", "p")._value.get() >= 1

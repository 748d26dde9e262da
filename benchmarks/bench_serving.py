"""The service over HTTP, as an EHR meets it: `fhir-vcf serve` (gunicorn, its own settings) on loopback.

    .venv/bin/python benchmarks/bench_serving.py                  # ~1-2 minutes; prints the table and ratios
    .venv/bin/python benchmarks/bench_serving.py --requests 100   # quicker, noisier

One order-select call with a 150-resource prefetch (a sample patient with a draft kyphoplasty order,
its dates moved to today, grown with three years of ordinary history: encounters, vital signs, lab
reports, prescriptions), sent over persistent HTTP connections at concurrency 1 and 8, against three
servers started in turn with the same gunicorn settings (`fhir_vcf.server.serve`, default workers
and threads, a fresh SQLite store, JSON logs at INFO to a file):

- `echo`: a Flask endpoint that only parses the same body and answers `{"cards": []}` (the floor:
  HTTP, gunicorn, Flask, one JSON parse);
- `stub`: the real service with the clinical work replaced (record building and the evaluation
  return what they returned for this request, precomputed): what the serving layer costs (body
  parse, request checks, cards, audit write, logs, metrics, GC pauses);
- `real`: the real service.

Goals (issue 11): real p95 <= 50 ms at concurrency 1 and 8; real throughput >= 25 % of echo's.
Besides wall-clock throughput, each server's CPU time per call (its worker processes' user +
system time over the concurrency-8 run, from /proc) is printed: on a machine shared with other
work, wall-clock figures move with the neighbours' load, CPU per call much less, and the
throughput a saturated server reaches is the inverse of it. Beside it, per call, what the
operating system counts of the workers: user and system time, minor page faults, and context
switches (waits: the thread blocked; preemptions: the scheduler took the CPU away). Measured in
the twelfth round: system time is 0.05-0.45 ms a call on all three servers and one to four
minor faults, so what separates them is user time (the real call's larger working set, refilled
from memory after whatever else ran between calls, runs slower per instruction than echo's parse).
`stub` shows the serving layer's share; `real - stub` is the evaluation's own cost (record
validation, mapping, rules), which the evaluation work of issue 11 items 1-2 cuts. Printed as
ratios measured in this run; nothing is asserted (exit 0), since the machine's load moves
absolute numbers. Ports: 18310-18312 (`--port`).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "eligible-requested-kyphoplasty-t12-l1.json"
SAMPLE_AS_OF = date(2025, 6, 30)
SERVICE = "vcf-order-select"
MODES = ("echo", "stub", "real")
TARGET_P95_MS = 50.0
TARGET_THROUGHPUT_SHARE = 0.25


# --- the request -----------------------------------------------------------------------------------


def _shift_dates(text: str, days: int) -> str:
    """Every YYYY-MM-DD in the JSON text moved by `days` (the sample keeps its shape, today's dates)."""

    def move(match: re.Match[str]) -> str:
        try:
            return (date.fromisoformat(match.group(0)) + timedelta(days=days)).isoformat()
        except ValueError:
            return match.group(0)

    return re.sub(r"\b\d{4}-\d{2}-\d{2}\b", move, text)


def _history(patient: str, today: date, count: int) -> list[dict[str, Any]]:
    """Three years of ordinary care the rules read past: visits, vitals, lab reports, prescriptions."""
    subject = {"reference": f"Patient/{patient}"}
    made: list[dict[str, Any]] = []
    for i in range(count):
        when = (today - timedelta(days=7 + (i * 1095) // max(count, 1))).isoformat()
        kind = i % 4
        if kind == 0:
            made.append({"resourceType": "Encounter", "id": f"hx-enc-{i}", "status": "finished",
                         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                         "type": [{"text": "Primary care follow-up"}], "subject": subject,
                         "period": {"start": f"{when}T09:00:00Z", "end": f"{when}T09:20:00Z"}})
        elif kind == 1:
            made.append({"resourceType": "Observation", "id": f"hx-hr-{i}", "status": "final",
                         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                   "code": "vital-signs"}]}],
                         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                                              "display": "Heart rate"}]},
                         "subject": subject, "effectiveDateTime": f"{when}T09:05:00Z",
                         "valueQuantity": {"value": 60 + i % 25, "unit": "/min", "system": "http://unitsofmeasure.org",
                                           "code": "/min"}})
        elif kind == 2:
            made.append({"resourceType": "DiagnosticReport", "id": f"hx-lab-{i}", "status": "final",
                         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                                   "code": "LAB"}]}],
                         "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2",
                                              "display": "CBC panel - Blood by Automated count"}]},
                         "subject": subject, "effectiveDateTime": f"{when}T08:00:00Z", "issued": f"{when}T15:00:00Z",
                         "conclusion": "Complete blood count within normal limits."})
        else:
            made.append({"resourceType": "MedicationRequest", "id": f"hx-rx-{i}",
                         "status": "completed" if i % 8 == 3 else "active", "intent": "order",
                         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                                   "code": "314076",
                                                                   "display": "lisinopril 10 MG Oral Tablet"}]},
                         "subject": subject, "authoredOn": when,
                         "dosageInstruction": [{"text": "10 mg by mouth once daily"}]})
    return made


def order_select_request(total: int = 150) -> bytes:
    """The order-select request body: the sample, moved to today, grown to `total` prefetched resources."""
    from fhir_vcf.evaluation import ordered_technique
    from fhir_vcf.service.cds_hooks import discovery_document
    from fhir_vcf.sources.hook_request import build_request
    from fhir_vcf.sources.memory import MemoryFhir

    today = date.today()
    bundle = json.loads(_shift_dates(SAMPLE.read_text(), (today - SAMPLE_AS_OF).days))
    store = MemoryFhir.from_bundles([bundle])
    patient = store.patients()[0]
    own = sum(len(store.resources(t)) for t in store.types)
    grown = MemoryFhir.from_bundles([bundle, *_history(patient, today, max(0, total - own))])
    service = next(s for s in discovery_document()["services"] if s["id"] == SERVICE)
    body = build_request(grown, patient, service, is_order=ordered_technique)
    held = sum(len(v.get("entry", [])) if v.get("resourceType") == "Bundle" else 1
               for v in body["prefetch"].values() if isinstance(v, dict))
    print(f"request: order-select, {held} prefetched resources, {len(json.dumps(body)) // 1024} KiB", flush=True)
    return json.dumps(body).encode()


# --- the servers (each in its own process: `--serve MODE`) ------------------------------------------


def _echo_app() -> Any:
    from flask import Flask, Response, request

    app = Flask("echo")

    @app.post("/cds-services/<service_id>")
    def echo(service_id: str) -> Response:
        json.loads(request.get_data())
        return Response('{"cards": []}', mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status": "ok"}', mimetype="application/json")

    return app


def _stub_clinical_work(body: bytes) -> None:
    """Replace record building and the evaluation with their precomputed results for `body`."""
    from fhir_vcf.service import cds_hooks

    request = json.loads(body)
    build = getattr(cds_hooks, "request_record", None) or cds_hooks.record_from_request
    built = build(context=request["context"], prefetch=request["prefetch"], fhir_server=None, token=None,
                  client_factory=lambda *a: None)
    record = getattr(built, "record", built)
    answers: dict[Any, str] = {}

    def evaluate(_record: Any, **options: Any) -> dict[str, Any]:
        key = options.get("request")
        if key not in answers:
            from fhir_vcf.evaluation import evaluate_record

            answers[key] = json.dumps(evaluate_record(record, **options))
        return json.loads(answers[key])

    cds_hooks.evaluate_record = evaluate
    name = "request_record" if hasattr(cds_hooks, "request_record") else "record_from_request"
    setattr(cds_hooks, name, lambda **_: built)


def serve_mode(mode: str, port: int, body_file: str) -> int:
    from fhir_vcf import server

    if mode == "echo":
        server.FhirVcfApplication.load = lambda self: _echo_app()  # type: ignore[method-assign]
    elif mode == "stub":
        _stub_clinical_work(Path(body_file).read_bytes())
    return server.serve("127.0.0.1", port)


# --- the load -------------------------------------------------------------------------------------


def _wait_free(port: int, timeout: float = 30.0) -> None:
    """Wait until nothing listens on `port` (the previous server's workers may still be leaving)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(0.2)
    raise RuntimeError(f"port {port} is still in use")


def _wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not become ready")


def load(port: int, body: bytes, *, concurrency: int, requests: int) -> tuple[list[float], float]:
    """(latencies in ms, requests per second) of `requests` calls spread over `concurrency` connections."""
    path = f"/cds-services/{SERVICE}"
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    lock = threading.Lock()
    per_worker = max(1, requests // concurrency)
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        try:
            for _ in range(per_worker):
                started = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                mine.append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    failures.append(str(response.status))
        except (OSError, http.client.HTTPException) as exc:
            failures.append(type(exc).__name__)
        finally:
            conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} call(s) failed: {sorted(set(failures))}")
    return latencies, len(latencies) / elapsed


def _worker_counts(master: int) -> dict[str, float]:
    """The gunicorn master's worker processes so far (Linux /proc): user and system CPU seconds, minor
    page faults, and voluntary / involuntary context switches summed over every thread."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = dict.fromkeys(("user", "system", "faults", "waits", "preempted"), 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != master:  # ppid
                continue
            switches = [(task / "status").read_text() for task in (entry / "task").iterdir()]
        except OSError:
            continue
        total["user"] += int(fields[11]) / ticks  # utime
        total["system"] += int(fields[12]) / ticks  # stime
        total["faults"] += int(fields[7])  # minflt
        for status in switches:
            total["waits"] += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
            total["preempted"] += int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    return total


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def measure(mode: str, port: int, body_file: Path, body: bytes, requests: int, workdir: Path) -> dict[str, float]:
    env = dict(os.environ)
    env.update({"FHIR_VCF_DATABASE_URL": f"sqlite:///{workdir / (mode + '.db')}", "FHIR_VCF_LOG_LEVEL": "INFO"})
    for name in ("FHIR_VCF_TRUSTED_ISSUERS", "FHIR_VCF_DEMO", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    _wait_free(port)
    log = (workdir / f"{mode}.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--port", str(port), "--body", str(body_file)],
        stdout=log, stderr=log, env=env, start_new_session=True,
    )
    try:
        _wait_ready(port)
        load(port, body, concurrency=8, requests=max(16, requests // 5))  # warm every worker
        one, _ = load(port, body, concurrency=1, requests=requests)
        before = _worker_counts(child.pid)
        eight, throughput = load(port, body, concurrency=8, requests=requests * 2)
        after = _worker_counts(child.pid)
        os_counts = {name: (after[name] - before[name]) / len(eight) for name in after}
    finally:
        child.send_signal(signal.SIGTERM)  # the gunicorn master we started stops its own workers
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
        log.close()
    return {"p50_1": statistics.median(one), "p95_1": p95(one), "p50_8": statistics.median(eight),
            "p95_8": p95(eight), "rps_8": throughput, "cpu_ms": (os_counts["user"] + os_counts["system"]) * 1000,
            "user_ms": os_counts["user"] * 1000, "sys_ms": os_counts["system"] * 1000, "faults": os_counts["faults"],
            "waits": os_counts["waits"], "preempted": os_counts["preempted"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="calls per concurrency level (default 200)")
    parser.add_argument("--port", type=int, default=18310, help="first of three loopback ports (default 18310)")
    parser.add_argument("--resources", type=int, default=150)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve_mode(args.serve, args.port, args.body)

    body = order_select_request(args.resources)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        body_file = workdir / "request.json"
        body_file.write_bytes(body)
        for offset, mode in enumerate(args.modes.split(",")):
            results[mode] = measure(mode, args.port + offset, body_file, body, args.requests, workdir)
            r = results[mode]
            print(f"{mode:>5}: c=1 p50 {r['p50_1']:7.1f} ms  p95 {r['p95_1']:7.1f} ms | "
                  f"c=8 p50 {r['p50_8']:7.1f} ms  p95 {r['p95_8']:7.1f} ms | {r['rps_8']:7.1f} calls/s | "
                  f"CPU {r['cpu_ms']:6.2f} ms/call", flush=True)
            print(f"{'':>5}  a call: user {r['user_ms']:.2f} ms, system {r['sys_ms']:.2f} ms, "
                  f"{r['faults']:.1f} minor faults, {r['waits']:.1f} waits + {r['preempted']:.1f} preemptions "
                  "(context switches)", flush=True)
    echo, real = results.get("echo"), results.get("real")
    stub = results.get("stub")
    if echo and real:
        share = real["rps_8"] / echo["rps_8"]
        print(f"real throughput / echo: {share:.1%} wall clock, {echo['cpu_ms'] / real['cpu_ms']:.1%} by CPU per call "
              f"(goal >= {TARGET_THROUGHPUT_SHARE:.0%})")
    if echo and stub:
        print(f"stub throughput / echo: {stub['rps_8'] / echo['rps_8']:.1%} wall clock, "
              f"{echo['cpu_ms'] / stub['cpu_ms']:.1%} by CPU per call (the serving layer alone)")
    if stub and real:
        print(f"the evaluation's own CPU (real - stub): {real['cpu_ms'] - stub['cpu_ms']:.1f} ms/call; "
              f"the serving layer's (stub - echo): {stub['cpu_ms'] - (echo or stub)['cpu_ms']:.1f} ms/call")
    if real:
        worst = max(real["p95_1"], real["p95_8"])
        verdict = "within" if worst <= TARGET_P95_MS else "over"
        print(f"real p95: {real['p95_1']:.1f} ms at c=1, {real['p95_8']:.1f} ms at c=8 "
              f"(goal <= {TARGET_P95_MS:.0f} ms: {verdict})")
    if stub:
        print(f"stub p95: {stub['p95_1']:.1f} ms at c=1, {stub['p95_8']:.1f} ms at c=8 (the serving layer's tail)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

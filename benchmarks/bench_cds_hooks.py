"""Speed target for a CDS Hooks call: the spec asks services to "respond quickly (on the order of
500 ms)"; Da Vinci CRD allows 5 s. This measures the service's own share, in-process, with full
prefetch (no FHIR server round trips): parsing, record building, evaluation, cards, audit write.

    .venv/bin/python benchmarks/bench_cds_hooks.py        # prints timings, exits 1 over target

The FHIR fetches for absent prefetch keys are bounded separately by the client's timeouts and the
3.5 s fetch budget (fhir_vcf/sources/prefetch.py), and are not measured here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fhir_vcf import create_app
from fhir_vcf.replay import build_request
from fhir_vcf.sources.memory import MemoryFhir

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "eligible-requested-kyphoplasty-t12-l1.json"
TARGET_MS = 500.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"database_url": f"sqlite:///{tmp}/bench.db"})
        client = app.test_client()
        services = {s["hook"]: s for s in client.get("/cds-services").get_json()["services"]}
        store = MemoryFhir.from_bundles([json.loads(SAMPLE.read_text())])
        patient = store.patients()[0].split("/", 1)[-1]
        worst = 0.0
        for hook in ("patient-view", "order-sign"):
            service = services[hook]
            body = build_request(store, patient, service)
            url = f"/cds-services/{service['id']}"
            assert client.post(url, json=body).status_code == 200  # warm up
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = client.post(url, json=body)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            median = statistics.median(times)
            worst = max(worst, median)
            print(f"{hook:>13}: median {median:6.2f} ms   p95 {statistics.quantiles(times, n=20)[-1]:6.2f} ms")
        app.extensions["fhir_vcf"].store.dispose()
    verdict = "within" if worst < TARGET_MS else "OVER"
    print(f"target: median < {TARGET_MS:.0f} ms per call with full prefetch: {verdict}")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())

"""What showing an evaluation costs the service: rendering the explanation page, and keeping it.

    .venv/bin/python benchmarks/bench_page.py          # prints timings and the page weight; exit 1 if OVER

Measured on the 100-resource record of bench_evaluate.py, against that record's own load+evaluate
time in the same run (a ratio, so a busy machine moves both sides alike):

- render: the evaluation object to the HTML page (Jinja2, inline CSS, the SVG timeline);
- keep: encrypt (Fernet) and insert one kept evaluation, then read and decrypt it (SQLite in memory).

Targets: rendering costs less than half of load+evaluate, keeping less than load+evaluate, and the
page weighs under 100 KB (a printable summary, not a web application). The browser's side (render
and print in Chromium) is measured by tests/test_browser.py; see docs/explanation-pages.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluate import AS_OF, hundred_resource_bundle, timed

from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.kept import KeptEvaluations
from fhir_vcf.outputs.page import render_page
from fhir_vcf.record import load_document
from fhir_vcf.rules.policy import load_policies
from fhir_vcf.store import Store

RENDER_RATIO = 0.5
KEEP_RATIO = 1.0
WEIGHT_KB = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()

    bundle = hundred_resource_bundle()
    policy = load_policies()["cms-lcd-pva"]

    def both() -> dict:
        (rec,) = load_document(bundle, source="benchmark")
        return evaluate_record(rec, as_of=AS_OF, policy=policy)

    evaluation = both()
    store = Store("sqlite://")
    kept = KeptEvaluations(store, [Fernet.generate_key().decode()], retention=timedelta(days=7))

    def keep_and_read() -> None:
        kept.get(kept.keep(evaluation, source="bench"))

    page = render_page([evaluation])
    keep_and_read()
    baseline = statistics.median(timed(both, args.repeat))
    render = statistics.median(timed(lambda: render_page([evaluation]), args.repeat))
    keep = statistics.median(timed(keep_and_read, args.repeat))
    weight = len(page.encode("utf-8")) / 1024
    store.dispose()

    print(f"record: {len(bundle['entry'])} resources; {args.repeat} runs each")
    print(f" load+evaluate: median {baseline:6.2f} ms (baseline)")
    print(f"   render page: median {render:6.2f} ms  ({render / baseline:.2f} x baseline, target < {RENDER_RATIO})")
    print(f"keep and read: median {keep:6.2f} ms  ({keep / baseline:.2f} x baseline, target < {KEEP_RATIO})")
    print(f"   page weight: {weight:.1f} KB (target < {WEIGHT_KB} KB)")
    ok = render / baseline < RENDER_RATIO and keep / baseline < KEEP_RATIO and weight < WEIGHT_KB
    print("within" if ok else "OVER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

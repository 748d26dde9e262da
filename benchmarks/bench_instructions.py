"""What one order-select call costs in CPU instructions, against the parse-only floor (valgrind callgrind).

    .venv/bin/python benchmarks/bench_instructions.py             # ~10 minutes; needs valgrind
    .venv/bin/python benchmarks/bench_instructions.py --calls 5   # quicker (the counts barely move)

On a machine shared with other work, seconds move with the neighbours' load from run to run by more
than a round of work moves them (docs/performance.md); instructions do not: the same code, input and
environment count the same whatever else the machine does. Each figure here is the difference of
two runs of one process that differ only in the number of calls, so start-up, imports, migrations
and the warm-up cancel out. The calls are made in-process, straight into the WSGI app as gunicorn
calls it (`WsgiCaller`: no sockets, no HTTP parsing, not Flask's test client), after a worker's
warm-up (`fhir_vcf.server.warm_and_freeze`), each run with a store of its own, JSON logs at INFO (as
bench_serving.py's servers) and string hashing fixed (`PYTHONHASHSEED=0`:
with a random seed, dict and set layouts move a count by a few per cent from run to run):

- `echo`: bench_serving.py's floor, a Flask endpoint that only parses the body;
- `same patient`: bench_serving.py's order-select request (150 prefetched resources), repeated,
  as bench_serving.py sends it;
- `new patients`: the sample patients under `samples/`, grown the same way to 150 resources with
  a draft kyphoplasty order where they have none, each called once: what a service seeing one
  patient after another pays (what it remembers of short texts, which recur across patients, still
  helps; a repeated request no longer does). The first half of them warm up what is built once per
  process at a type's or a pattern's first use; the second half are counted.

Printed: instructions per call and echo's share of each (by instructions, the throughput a
saturated server would reach against the echo server's if every instruction took as long; issue
11's goal is for the served figure, >= 25 % by wall clock and CPU, which reads lower than this one:
the real call's instructions run on a working set larger than the caches, more slowly than echo's). Until the
ninth round the calls went through Flask's test client, whose own work (~0.5 M instructions a
call) is not a server's. Nothing is asserted (exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import bench_serving

ROOT = Path(__file__).resolve().parent.parent
WARM_CALLS = 5
DRAFT_ORDER_CODE = {"system": "http://www.ama-assn.org/go/cpt", "code": "22513",
                    "display": "Percutaneous vertebral augmentation, thoracic"}


def new_patient_requests(total: int = 150) -> list[bytes]:
    """One order-select request per sample patient, dates moved to today, grown to `total` resources."""
    from fhir_vcf.evaluation import ordered_technique
    from fhir_vcf.service.cds_hooks import discovery_document
    from fhir_vcf.sources.hook_request import build_request
    from fhir_vcf.sources.memory import MemoryFhir

    today = date.today()
    service = next(s for s in discovery_document()["services"] if s["id"] == bench_serving.SERVICE)
    bodies = []
    for sample in sorted((ROOT / "samples").glob("*.json")):
        if sample.name == "expected.json":
            continue
        shift = (today - bench_serving.SAMPLE_AS_OF).days
        bundle = json.loads(bench_serving._shift_dates(sample.read_text(), shift))
        store = MemoryFhir.from_bundles([bundle])
        patient = store.patients()[0]
        if not any(ordered_technique(r) for r in store.resources("ServiceRequest")):
            bundle.setdefault("entry", []).append({"resource": {
                "resourceType": "ServiceRequest", "id": "bench-draft-order", "status": "draft", "intent": "order",
                "code": {"coding": [DRAFT_ORDER_CODE]}, "subject": {"reference": f"Patient/{patient}"},
                "authoredOn": today.isoformat()}})
            store = MemoryFhir.from_bundles([bundle])
        own = sum(len(store.resources(t)) for t in store.types)
        grown = MemoryFhir.from_bundles([bundle, *bench_serving._history(patient, today, max(0, total - own))])
        bodies.append(json.dumps(build_request(grown, patient, service, is_order=ordered_technique)).encode())
    return bodies


# --- one counted process (`--run MODE --calls N`, under valgrind) ------------------------------------


def run(mode: str, calls: int, bodies_file: Path) -> None:
    bodies = [body.encode() for body in json.loads(bodies_file.read_text())]
    if mode == "echo":
        app: Any = bench_serving._echo_app()
    else:
        from fhir_vcf.app import create_app
        from fhir_vcf.server import ReadBody, warm_and_freeze

        app = create_app()
        warm_and_freeze(app)
        app.wsgi_app = ReadBody(app.wsgi_app, app.extensions["fhir_vcf"].settings.max_body_bytes)  # as served
    client = WsgiCaller(app)
    url = f"/cds-services/{bench_serving.SERVICE}"
    for _ in range(WARM_CALLS):
        _post(client, url, bodies[0])
    if mode == "new":  # the first half warms what is built at a type's or a pattern's first use
        warm, counted = _halves(bodies[1:])
        for body in warm:
            _post(client, url, body)
        for body in counted[:calls]:
            _post(client, url, body)
        return
    for _ in range(calls):
        _post(client, url, bodies[0])


def _halves(bodies: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    return bodies[: len(bodies) // 2], bodies[len(bodies) // 2:]


class WsgiCaller:
    """Calls a WSGI app as gunicorn does: one environ in, the answer's bytes read. Not Flask's test
    client, which builds a werkzeug request and response object around each call (~0.5 M
    instructions that no server spends)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def post(self, url: str, body: bytes) -> tuple[str, bytes]:
        environ = {
            "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": url, "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "18310", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:18310", "HTTP_CONNECTION": "keep-alive",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        status: list[str] = []

        def start_response(line: str, _headers: Any, _exc_info: Any = None) -> None:
            status.append(line)

        answer = self.app(environ, start_response)
        try:
            data = b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        return status[0], data


def _post(client: WsgiCaller, url: str, body: bytes) -> None:
    status, answer = client.post(url, body)
    if not status.startswith("200"):
        raise SystemExit(f"{url} answered {status}: {answer[:300]!r}")


# --- the measurement -----------------------------------------------------------------------------


def instructions(mode: str, calls: int, bodies_file: Path, workdir: Path) -> int:
    """Instructions of one process making `calls` calls (its own store and working directory)."""
    where = Path(tempfile.mkdtemp(dir=workdir))
    out = where / "callgrind.out"
    env = {**os.environ, "FHIR_VCF_DATABASE_URL": f"sqlite:///{where / 'store.db'}", "FHIR_VCF_LOG_LEVEL": "INFO",
           "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])}
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
               "--run", mode, "--calls", str(calls), "--bodies", str(bodies_file)]
    done = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} with {calls} calls failed:\n{done.stderr[-2000:]}")
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no instruction total in {out}")


def per_call(mode: str, calls: int, bodies_file: Path, workdir: Path) -> float:
    base = 0 if mode == "new" else 2
    more, fewer = (instructions(mode, n, bodies_file, workdir) for n in (base + calls, base))
    return (more - fewer) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10, help="counted calls of each kind (default 10, at most 12)")
    parser.add_argument("--run", choices=("echo", "same", "new"), help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run, args.calls, Path(args.bodies))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2

    with contextlib.redirect_stdout(io.StringIO()):
        same = bench_serving.order_select_request()
        new = new_patient_requests()
    if args.calls > len(_halves(new)[1]):
        parser.error(f"--calls: at most {len(_halves(new)[1])} (one new patient a call)")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        workdir = Path(tmp)
        same_file, new_file = workdir / "same.json", workdir / "new.json"
        same_file.write_text(json.dumps([same.decode()]))
        new_file.write_text(json.dumps([same.decode(), *(b.decode() for b in new)]))  # [0]: the warm-up
        echo = per_call("echo", args.calls, same_file, workdir)
        print(f"echo (parse only):        {echo / 1e6:6.2f} M instructions a call", flush=True)
        for label, mode, bodies in (("same patient, repeated:", "same", same_file),
                                    ("new patients, each once:", "new", new_file)):
            cost = per_call(mode, args.calls, bodies, workdir)
            print(f"{label:<25} {cost / 1e6:6.2f} M instructions a call; echo / it: {echo / cost:.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

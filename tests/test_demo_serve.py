"""`fhir-vcf serve --demo` for real (gunicorn, two workers), as a newcomer runs it from another folder.

The banner comes once every worker is up, below the start-up lines; its commands work as printed
(full paths, no as-of date); the log lines that follow are those of the requests made with it. The
demo's CORS, CarePlan write-back and per-process metrics are checked across the two workers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((ROOT / "samples" / "expected.json").read_text())
BANNER_END = "-" * 78


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def program() -> str:
    script = Path(sys.executable).parent / "fhir-vcf"
    return str(script) if script.is_file() else ""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    if not program():
        pytest.skip("the fhir-vcf console script is not installed beside this interpreter")
    elsewhere = tmp_path_factory.mktemp("newcomer")  # not the repository: paths must not be relative to it
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_VCF_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["FHIR_VCF_DATABASE_URL"] = f"sqlite:///{elsewhere / 'demo.db'}"
    log = (elsewhere / "stderr.log").open("w+")
    process = subprocess.Popen([program(), "serve", "--demo", "--workers", "2", "--port", str(port)],
                               cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        deadline = time.monotonic() + 60
        while (elsewhere / "stderr.log").read_text().count(BANNER_END) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("serve --demo printed no banner:\n" + (elsewhere / "stderr.log").read_text()[-3000:])
            time.sleep(0.2)
        yield SimpleNamespace(base=f"http://127.0.0.1:{port}", folder=elsewhere, env=env,
                              stderr=lambda: (elsewhere / "stderr.log").read_text())
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def banner_of(text: str) -> str:
    start = text.index(BANNER_END)
    return text[start: text.index(BANNER_END, start + 1) + len(BANNER_END)]


def test_the_banner_follows_the_start_up_and_requests_follow_the_banner(served: SimpleNamespace) -> None:
    assert requests.get(served.base + "/healthz", timeout=10).status_code == 200
    time.sleep(0.5)
    text = served.stderr()
    before, _, after = text.partition(banner_of(text))
    assert before.count("Booting worker") == 2, "both workers booted above the banner"
    assert text.count(BANNER_END) == 2, "printed once"
    lines = [json.loads(line) for line in after.splitlines() if line.startswith("{")]
    assert lines and {line["logger"] for line in lines} <= {"fhir_vcf.request", "gunicorn.error"}
    assert "demo FHIR endpoint serving" not in after and "alembic" not in after  # no worker start-up chatter


def test_the_banner_commands_work_as_printed(served: SimpleNamespace) -> None:
    banner = banner_of(served.stderr())
    assert program() in banner and str(ROOT / "samples") in banner  # full paths
    assert "asOf" not in banner  # as a real EHR: no as-of date
    # the no-prefetch hook call: the service fetches the record from the demo endpoint
    call = re.search(r"-d '(\{.*?\})' (\S+)", banner)
    assert call is not None
    cards = requests.post(call.group(2), json=json.loads(call.group(1)), timeout=30).json()["cards"]
    (expected,) = EXPECTED["eligible-requested-kyphoplasty-t12-l1.json"].values()
    assert cards[0]["extension"]["fhir-vcf"]["decision"] == expected["decision"]
    evaluation = re.search(r"REST API evaluation\s+curl -s (\S+)", banner)
    assert evaluation is not None
    assert requests.get(evaluation.group(1), timeout=30).json()["decision"] == expected["decision"]
    # the replay command, exactly as printed (continuation lines joined), from another folder
    replay = banner[banner.index(program() + " replay"):].split("\n\n")[0].replace("\\\n", " ")
    argv = shlex.split(replay)
    done = subprocess.run([*argv[:2], *argv[2:]], cwd=served.folder, env=served.env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"^\d+ passed, 0 failed", done.stdout, re.MULTILINE)


def test_cors_write_back_and_metrics_across_workers(served: SimpleNamespace) -> None:
    preflight = requests.options(served.base + "/cds-services/vcf-patient-view", timeout=10, headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    url = served.base + "/api/v1/patients/p-moreau/careplans"
    first = requests.post(url, timeout=30)
    assert first.status_code == 201, first.text
    for _ in range(4):  # whichever worker answers, the plan is there and is not written twice
        again = requests.post(url, timeout=30)
        assert again.status_code == 200 and again.json()["carePlan"]["id"] == first.json()["carePlan"]["id"]
    metrics = requests.get(served.base + "/metrics", timeout=10).text
    pids = set(re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\}', metrics, re.MULTILINE))
    assert len(pids) == 3, "the master and both workers"
    assert re.search(r'^fhir_vcf_build_info\{python="[^"]+",version="[^"]+"\} 1\.0$', metrics, re.MULTILINE)
    assert "fhir_vcf_http_request_duration_seconds_bucket" in metrics
